"""``modelyard keys create|list|revoke``: API keys for the server (docs/security-auth.md)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import typer

from modelyard.cli.context import State
from modelyard.cli.render import console, err_console, print_json
from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    from modelyard.registry.sql.key_store import SqlKeyStore

__all__ = ["app"]

app = typer.Typer(help="Create, list and revoke the API keys servers accept.",
                  no_args_is_help=True)


def _store(ctx: typer.Context) -> SqlKeyStore:
    from modelyard.registry.sql.key_store import SqlKeyStore  # SQLAlchemy: only when needed

    state: State = ctx.obj
    return SqlKeyStore(state.client().store.engine)


def _models(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names:
        raise InvalidInputError(f"--models needs comma-separated model names. Got {text!r}.",
                                hint="Example: --models fraud,churn")
    return names


@app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Option(..., "--name", help="Who or what uses the key (ci-deploy)."),
    role: str = typer.Option(..., "--role",
                             help="viewer, predictor, deployer or admin."),
    models: str | None = typer.Option(
        None, "--models", help="Limit the key to these models (comma-separated)."),
    expires: str | None = typer.Option(
        None, "--expires", help="Lifetime: 90d, 12h, 2w, 1y (default: no expiry)."),
    json: bool = typer.Option(False, "--json", help="Print the key and its record as JSON."),
) -> None:
    """Create an API key and print it once: only a salted hash is stored.

    The key alone goes to standard output, so a script can capture it.

    Example: modelyard keys create --name ci --role predictor --models fraud --expires 90d
    """
    from modelyard.security.keys import parse_lifetime

    state: State = ctx.obj
    now = time.time()
    expires_at = now + parse_lifetime(expires) if expires is not None else None
    issued = _store(ctx).create(name=name, role=role, actor=state.settings.actor(),
                                models=_models(models), expires_at=expires_at, now=now)
    rec = issued.record
    if json:
        print_json({"key": issued.token, **rec.public_dict(now)})
        return
    scope = "every model" if rec.models is None else "models " + ", ".join(rec.models)
    until = "" if rec.expires_at is None else (
        f", expires {rec.public_dict(now)['expires_at']}")
    err_console.print(
        f"Created API key {rec.key_id} '{rec.name}' (role {rec.role.label}, {scope}{until}). "
        "Store it now: it is not shown again.", soft_wrap=True, markup=False)
    console.file.write(issued.token + "\n")


@app.command("list")
def list_keys(
    ctx: typer.Context,
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Every key: id, name, role, models, expiry and state. Never a secret or a hash.

    Example: modelyard keys list
    """
    now = time.time()
    shown = [k.public_dict(now) for k in _store(ctx).list_keys()]
    if json:
        print_json(shown)
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(title="API keys", title_justify="left")
    table.add_column("key id", no_wrap=True, min_width=16)  # what 'keys revoke' takes: whole
    for column in ("name", "role", "models", "created", "by", "expires", "state"):
        table.add_column(column)
    for k in shown:
        # Text, not str: names are user text that must not parse as markup.
        table.add_row(*(Text(v) for v in (
            k["key_id"], k["name"], k["role"],
            "all" if k["models"] is None else ",".join(k["models"]),
            k["created_at"][:10], k["created_by"], (k["expires_at"] or "never")[:10],
            k["state"])))
    console.print(table)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    key_id: str = typer.Argument(..., help="The key id (from 'keys list')."),
) -> None:
    """Revoke a key. Running servers refuse it within their refresh interval (a few seconds).

    Example: modelyard keys revoke 4f0c2a91d3b7e655
    """
    from modelyard.security.keys import split_token

    state: State = ctx.obj
    parts = split_token(key_id)  # a whole key pasted by mistake: revoke it all the same
    rec = _store(ctx).revoke(parts[0] if parts else key_id, actor=state.settings.actor())
    console.print(f"Revoked API key {rec.key_id} '{rec.name}'. Servers refuse it within "
                  f"{state.settings.serving.alias_poll_s:g} s.", markup=False)
