"""The Typer app and the entry point that turns errors into one line and an exit code."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer
from rich.markup import escape

from modelyard.cli import (
    alias,
    audit,
    batch,
    data,
    db,
    export,
    feedback,
    keys,
    lifecycle,
    logs,
    models,
    monitor,
    pipeline,
    register,
    rollout,
    scan,
    security,
    serve,
    sign,
    ui,
    validate,
)
from modelyard.cli.context import State
from modelyard.cli.errors import INTERNAL, exit_code
from modelyard.cli.render import err_console
from modelyard.errors import ModelyardError

__all__ = ["app", "main"]

app = typer.Typer(
    name="modelyard",
    help="Register, validate, serve and monitor ML models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(models.app, name="models")
app.add_typer(alias.app, name="alias")
app.add_typer(db.app, name="db")
app.add_typer(data.app, name="data")
app.command("register")(register.register)
app.command("rollback")(lifecycle.rollback)
app.command("archive")(lifecycle.archive)
app.command("delete")(lifecycle.delete)
app.command("serve")(serve.serve)
app.add_typer(monitor.app, name="monitor")
app.add_typer(feedback.app, name="feedback")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(keys.app, name="keys")
app.add_typer(security.app, name="security")
app.command("sign")(sign.sign)
app.command("verify")(sign.verify)
app.command("batch")(batch.batch)
app.add_typer(audit.app, name="audit")
app.add_typer(logs.app, name="logs")
app.add_typer(export.app, name="export")
app.command("scan")(scan.scan)
app.add_typer(rollout.app, name="rollout")
app.command("validate")(validate.validate)
app.command("ui")(ui.ui)


@app.callback()
def _root(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    from modelyard.settings import Settings

    state = State(settings=Settings(), debug=debug)
    ctx.obj = state
    # Runs on success and on errors: closes the pooled database connections the client opened.
    ctx.call_on_close(state.close)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return (and, as a script, exit with) its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        app(args=args, prog_name="modelyard", standalone_mode=True)
    except SystemExit as done:
        return int(done.code or 0) if not isinstance(done.code, str) else 1
    except ModelyardError as exc:
        if debug:
            raise
        # Messages quote user text (paths, reasons, model errors): never read it as markup.
        err_console.print(f"[bold red]Error:[/] {escape(exc.message)}", soft_wrap=True)
        if exc.hint:
            err_console.print(f"[dim]Hint:[/] {escape(exc.hint)}", soft_wrap=True)
        return exit_code(exc)
    except KeyboardInterrupt:
        err_console.print("Interrupted.")
        return 130
    except Exception as exc:
        if debug:
            raise
        err_console.print(
            f"[bold red]Internal error:[/] {type(exc).__name__}: {escape(str(exc))}",
            soft_wrap=True,
        )
        err_console.print("[dim]Hint:[/] Re-run with --debug for the traceback and report it.")
        return INTERNAL
    return 0


def run() -> None:
    sys.exit(main())
