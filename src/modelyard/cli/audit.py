"""``modelyard audit``, ``audit verify`` and ``audit head``: read and check the audit log."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import orjson
import typer

from modelyard.cli.context import client_of
from modelyard.cli.render import console, err_console, print_json, print_table
from modelyard.errors import InvalidInputError
from modelyard.monitoring.windows import parse_duration
from modelyard.registry.sql.audit import SqlAuditLog
from modelyard.security.audit import parse_head

__all__ = ["app", "parse_since"]

app = typer.Typer(
    help="The tamper-evident audit log: who changed what, when, from what to what.",
    invoke_without_command=True,
)


def parse_since(text: str, *, now: float | None = None) -> float:
    """Seconds since the epoch for ``--since``: a duration back from now (``7d``, ``12h``) or
    an ISO date/time (``2024-05-01``, ``2024-05-01T12:00``; without a zone, UTC).

    >>> parse_since("1h", now=7200.0)
    3600.0
    """
    try:
        return (time.time() if now is None else now) - parse_duration(text)
    except InvalidInputError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(
            f"--since {text!r} is neither a duration nor an ISO date.",
            hint="Write a duration back from now (30m, 12h, 7d) or a date (2024-05-01 or "
            "2024-05-01T12:00, UTC unless a zone is given).") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _log(ctx: typer.Context) -> SqlAuditLog:
    return SqlAuditLog(client_of(ctx).store.engine)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@app.callback()
def audit(
    ctx: typer.Context,
    model: str | None = typer.Option(None, "--model", help="Only entries about this model."),
    since: str | None = typer.Option(
        None, "--since", help="Only entries from this time on: 7d, 12h, or an ISO date (UTC)."),
    action: str | None = typer.Option(
        None, "--action",
        help="Only this action (alias.set); a trailing '.' or '*' matches a prefix (alias.*)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the newest N entries."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List audit entries, oldest first: sequence number, time (UTC), actor, action, target,
    before and after.

    Example: modelyard audit --model fraud --since 7d --action 'alias.*'
    """
    if ctx.invoked_subcommand is not None:
        return
    entries = _log(ctx).entries(model=model, action=action, limit=limit,
                                since=parse_since(since) if since is not None else None)
    if json:
        print_json([e.to_dict() for e in entries])
        return
    print_table(
        "Audit log",
        ["seq", "when (UTC)", "actor", "action", "target", "before", "after"],
        [(e.seq, _utc(e.ts), e.actor, e.action, e.target, _cell(e.before), _cell(e.after))
         for e in entries],
    )


@app.command("verify")
def verify(
    ctx: typer.Context,
    expect_head: str | None = typer.Option(
        None, "--expect-head",
        help="The SEQ:HASH 'modelyard audit head' printed earlier and kept outside the "
        "database: also detects deleted newest entries and a rewritten log."),
    json: bool = typer.Option(False, "--json", help="Print the verdict as JSON."),
) -> None:
    """Recompute every hash and link of the chain; exit 1 naming the first bad entry.

    Example: modelyard audit verify --expect-head 42:9f86d081884c7d65...
    """
    anchor = parse_head(expect_head) if expect_head is not None else None
    verdict = _log(ctx).verify(expect_head=anchor)
    if json:
        print_json({"ok": verdict.ok, "count": verdict.count, "head_seq": verdict.head_seq,
                    "head_hash": verdict.head_hash, "bad_seq": verdict.bad_seq,
                    "problem": verdict.problem, "reason": verdict.reason})
    elif verdict.ok:
        console.print(f"chain intact, {verdict.count} entries")
    else:
        err_console.print(f"[bold red]Audit log tampered:[/] {verdict.summary()}",
                          soft_wrap=True)
    if not verdict.ok:
        raise typer.Exit(1)


@app.command("head")
def head(ctx: typer.Context) -> None:
    """Print the newest entry's SEQ:HASH. Keep it outside the database (a ticket, another
    machine, a signed commit) and pass it to 'audit verify --expect-head' later.

    Example: modelyard audit head >> /secure/elsewhere/audit-anchors.txt
    """
    entry = _log(ctx).head()
    if entry is None:
        raise InvalidInputError("The audit log is empty: there is no head to anchor yet.",
                                hint="Make a change first (e.g. modelyard register).")
    console.print(f"{entry.seq}:{entry.hash}")
