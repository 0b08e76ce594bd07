"""Data retention for the inference log: delete what is older than the retention period.

``modelyard logs prune`` runs :func:`prune_logs` once; ``modelyard serve`` with
``security.log_retention_days`` set runs a :class:`RetentionLoop` (once at start, then daily).
Parquet logs lose whole ``date=`` partitions (a day is deleted once all of it is past the
cutoff), SQL logs lose rows. Every run that is not a dry run is reported to ``record`` (the
CLI and the server append a ``logs.prune`` entry to the audit log with what was deleted).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelyard.core.periodic import PeriodicTask
from modelyard.errors import InvalidInputError
from modelyard.monitoring.log_store import LogStore

__all__ = ["DAY_S", "PruneResult", "RetentionLoop", "prune_logs"]

log = logging.getLogger("modelyard.monitoring.retention")

DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What one retention run deleted (or, with ``dry_run``, would delete)."""

    before: float
    """The cutoff: data older than this (seconds since the epoch) is deleted."""
    dry_run: bool
    inferences: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.inferences and not self.feedback

    def totals(self) -> dict[str, int]:
        """Per kind: partitions and files deleted (Parquet), rows deleted (SQL)."""
        out: dict[str, int] = {}
        for kind, items in (("inferences", self.inferences), ("feedback", self.feedback)):
            out[f"{kind}_partitions"] = sum(1 for i in items if "date" in i)
            out[f"{kind}_files"] = sum(int(i.get("files", 0)) for i in items)
            out[f"{kind}_rows"] = sum(int(i.get("rows", 0)) for i in items)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the audit entry's ``after`` and ``logs prune --json``)."""
        return {"before": self.before, "cutoff": _iso(self.before), "dry_run": self.dry_run,
                "totals": self.totals(), "inferences": self.inferences,
                "feedback": self.feedback}


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def prune_logs(store: LogStore, *, older_than_s: float, now: float | None = None,
               dry_run: bool = False,
               record: Callable[[PruneResult], object] | None = None) -> PruneResult:
    """Delete inference-log and feedback data older than ``older_than_s`` seconds.

    >>> from modelyard.monitoring.log_store import ParquetLogStore
    >>> prune_logs(ParquetLogStore("/tmp/yard/logs"), older_than_s=30 * DAY_S)  # doctest: +SKIP
    """
    if older_than_s <= 0:
        raise InvalidInputError(
            f"The retention period must be positive. Got {older_than_s} seconds instead.",
            hint="Pass a duration such as 30d.")
    before = (time.time() if now is None else now) - older_than_s
    deleted = store.prune(before, dry_run=dry_run)
    result = PruneResult(before=before, dry_run=dry_run,
                         inferences=list(deleted.get("inferences", [])),
                         feedback=list(deleted.get("feedback", [])))
    if record is not None and not dry_run:
        record(result)
    return result


class RetentionLoop(PeriodicTask):
    """Prunes the inference log in a background thread: once at start, then every
    ``every_s`` (a day). Satisfies the server's ``Background`` protocol.

    Only runs that deleted something are passed to ``record``: several server processes
    (``--workers``) each run the loop, and the ones that find nothing left to delete should
    not fill the audit log with empty entries."""

    def __init__(self, store: LogStore, *, older_than_s: float, every_s: float = DAY_S,
                 record: Callable[[PruneResult], object] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__("modelyard-retention", every_s, run_at_start=True)
        self.store = store
        self.older_than_s = older_than_s
        self.record = record
        self.clock = clock
        self.runs = 0
        self.last: PruneResult | None = None

    def run_once(self) -> PruneResult | None:
        """One pruning run; a failure is logged (the next run tries again), never raised."""
        try:
            self.last = prune_logs(self.store, older_than_s=self.older_than_s,
                                   now=self.clock(), record=self._record)
        except Exception:
            log.exception("Pruning the inference log failed; trying again in %.0f s.",
                          self.every_s)
            return None
        finally:
            self.runs += 1
        if not self.last.empty:
            log.info("Pruned the inference log before %s: %s", _iso(self.last.before),
                     self.last.totals())
        return self.last

    def _record(self, result: PruneResult) -> None:
        if self.record is not None and not result.empty:
            self.record(result)
