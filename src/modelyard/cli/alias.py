"""``modelyard alias set|delete|history``."""

from __future__ import annotations

import typer

from modelyard.cli.context import client_of
from modelyard.cli.render import console, print_json, print_table, when
from modelyard.core.entities import AliasChange

__all__ = ["app", "describe_change"]

app = typer.Typer(help="Move, remove and audit aliases such as @production.",
                  no_args_is_help=True)


def describe_change(change: AliasChange) -> str:
    before = "nothing" if change.from_version is None else f"version {change.from_version}"
    after = "nothing" if change.to_version is None else f"version {change.to_version}"
    return f"{change.name}@{change.alias}: {before} -> {after}"


@app.command("set")
def set_alias(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Argument(..., help="Alias, e.g. production."),
    version: int = typer.Argument(..., help="Version number.", min=1),
    reason: str = typer.Option("", "--reason", help="Why, recorded in the alias history."),
) -> None:
    """Point an alias at a version.

    Example: modelyard alias set fraud production 3 --reason "beats v2 on recall"
    """
    change = client_of(ctx).set_alias(name, alias, version, reason=reason)
    console.print(describe_change(change))


@app.command("delete")
def delete_alias(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Argument(..., help="Alias to remove."),
    reason: str = typer.Option("", "--reason", help="Why, recorded in the alias history."),
) -> None:
    """Remove an alias (the move is recorded).

    Example: modelyard alias delete fraud staging
    """
    change = client_of(ctx).delete_alias(name, alias, reason=reason)
    console.print(describe_change(change))


@app.command("history")
def history(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    alias: str | None = typer.Option(None, "--alias", help="Only this alias."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Every alias move: who, when, from which version to which, and why.

    Example: modelyard alias history fraud --alias production
    """
    changes = client_of(ctx).alias_history(name, alias)
    if json:
        print_json([c.to_dict() for c in changes])
        return
    print_table(
        f"Alias history of {name}",
        ["when", "alias", "from", "to", "by", "reason"],
        [(when(c.at), c.alias, c.from_version, c.to_version, c.actor, c.reason)
         for c in changes],
    )
