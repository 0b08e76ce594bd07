"""``modelyard rollback``, ``archive`` and ``delete``."""

from __future__ import annotations

import typer

from modelyard.cli.alias import describe_change
from modelyard.cli.context import client_of
from modelyard.cli.render import console

__all__ = ["archive", "delete", "rollback"]


def rollback(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Option("production", "--alias", help="Alias to move back."),
    reason: str = typer.Option("", "--reason", help="Why, recorded in the alias history."),
) -> None:
    """Move an alias back to the version it pointed to before.

    Example: modelyard rollback fraud --alias production
    """
    change = client_of(ctx).rollback(name, alias, reason=reason)
    console.print(f"Rolled back {describe_change(change)}")


def archive(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    version: int | None = typer.Argument(None, help="Version; omit to archive the model."),
    restore: bool = typer.Option(False, "--restore", help="Un-archive instead."),
) -> None:
    """Archive a model or one version (hidden from listings, kept on disk).

    Example: modelyard archive fraud 2
    """
    client = client_of(ctx)
    verb = "Restored" if restore else "Archived"
    if version is None:
        client.archive_model(name, restore=restore)
        console.print(f"{verb} model {name}.")
    else:
        client.archive_version(name, version, restore=restore)
        console.print(f"{verb} version {version} of {name}.")


def delete(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    version: int | None = typer.Argument(None, help="Version; omit to delete the whole model."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a model or one version. Version numbers are never reused.

    Example: modelyard delete fraud 2 --yes
    """
    client = client_of(ctx)
    what = f"version {version} of model {name!r}" if version else f"model {name!r}"
    # Look it up first so a typo fails with "not found" before we ask.
    if version is None:
        client.get_model(name)
    else:
        client.get_version(name, version)
    if not yes and not typer.confirm(f"Delete {what}?", default=False):
        console.print("Nothing deleted.")
        raise typer.Exit(1)
    if version is None:
        client.delete_model(name)
    else:
        client.delete_version(name, version)
    console.print(f"Deleted {what}.")
