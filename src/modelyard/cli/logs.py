"""``modelyard logs prune``: apply the retention period to the inference log and feedback."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer

from modelyard.cli.context import State
from modelyard.cli.render import console, print_json, print_table
from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    from modelyard._client import Client
    from modelyard.monitoring.retention import PruneResult
    from modelyard.settings import Settings

__all__ = ["app", "prune_recorder"]

app = typer.Typer(help="The inference log on disk: retention.", no_args_is_help=True)


def prune_recorder(settings: Settings, client: Client,
                   uri: str) -> Callable[[PruneResult], object]:
    """What records a retention run: a ``logs.prune`` audit entry with what was deleted."""
    from modelyard.registry.sql.audit import SqlAuditLog

    audit = SqlAuditLog(client.store.engine)
    actor = settings.actor()

    def record(result: PruneResult) -> object:
        return audit.append(actor=actor, action="logs.prune", target=f"logs:{uri}",
                            after=result.to_dict())

    return record


@app.command("prune")
def prune(
    ctx: typer.Context,
    older_than: str | None = typer.Option(
        None, "--older-than",
        help="Delete data older than this (30d, 12h); default: security.log_retention_days."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be deleted."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Delete inference-log and feedback partitions older than the retention period (Parquet:
    whole days; SQL: rows) and record the run in the audit log.

    Example: modelyard logs prune --older-than 30d --dry-run
    """
    from modelyard.monitoring.log_store import open_log_store
    from modelyard.monitoring.retention import DAY_S, prune_logs
    from modelyard.monitoring.windows import parse_duration

    state: State = ctx.obj
    settings = state.settings
    if older_than is not None:
        seconds = parse_duration(older_than)
    elif settings.security.log_retention_days is not None:
        seconds = settings.security.log_retention_days * DAY_S
    else:
        raise InvalidInputError(
            "No retention period: pass --older-than or set security.log_retention_days.",
            hint="e.g. modelyard logs prune --older-than 30d, or "
                 "MODELYARD_SECURITY__LOG_RETENTION_DAYS=30.")
    if seconds <= 0:
        raise InvalidInputError(f"--older-than must be positive. Got {older_than!r} instead.",
                                hint="e.g. --older-than 30d")
    client = state.client()
    uri = settings.resolved_log_uri()
    store = open_log_store(uri, engine=client.store.engine if uri == "sql" else None)
    result = prune_logs(store, older_than_s=seconds, dry_run=dry_run,
                        record=prune_recorder(settings, client, uri))
    if json:
        print_json(result.to_dict())
        return
    verb = "Would delete" if dry_run else "Deleted"
    rows: list[tuple[Any, ...]] = [
        ("inferences", i["model"], i.get("version", ""), i.get("date", ""),
         i.get("files", i.get("rows", ""))) for i in result.inferences]
    rows += [("feedback", i["model"], "", i.get("date", ""), i.get("files", i.get("rows", "")))
             for i in result.feedback]
    cutoff = result.to_dict()["cutoff"]
    if not rows:
        console.print(f"Nothing older than {cutoff} in {uri}.", markup=False)
        return
    unit = "rows" if uri == "sql" else "files"
    print_table(f"{verb} (older than {cutoff})", ["kind", "model", "version", "date", unit],
                rows)
