"""``modelyard db upgrade|current``."""

from __future__ import annotations

import typer

from modelyard.cli.context import State
from modelyard.cli.render import console

__all__ = ["app"]

app = typer.Typer(help="Manage the registry database schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(ctx: typer.Context) -> None:
    """Create or migrate the registry database to the newest schema.

    Example: MODELYARD_DATABASE_URL=postgresql://me@db/yard modelyard db upgrade
    """
    from modelyard.registry.sql.engine import make_engine
    from modelyard.registry.sql.engine import upgrade as run_upgrade

    state: State = ctx.obj
    engine = make_engine(state.settings.resolved_database_url())
    try:
        revision = run_upgrade(engine)
    finally:
        engine.dispose()
    console.print(f"Database at schema revision {revision}.")


@app.command("current")
def current(ctx: typer.Context) -> None:
    """Print the schema revision of the registry database.

    Example: modelyard db current
    """
    from modelyard.registry.sql.engine import connect_error, current_revision, make_engine

    state: State = ctx.obj
    engine = make_engine(state.settings.resolved_database_url())
    try:
        with engine.connect() as conn:
            console.print(f"Database at schema revision {current_revision(conn)}.")
    except Exception as exc:
        raise connect_error(engine, exc) from exc
    finally:
        engine.dispose()
