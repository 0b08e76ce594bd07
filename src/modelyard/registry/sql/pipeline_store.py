"""Retraining pipeline runs and each pipeline's trigger state and lease, in the registry
database (tables from migration 0004, :mod:`.loop_tables`).

A run is inserted as ``running`` when it starts and finished once, as ``passed``,
``rejected`` or ``failed``, in one transaction with its audit entry (``pipeline.run``).

A pipeline's state row holds what its triggers have seen (files, alert firings, cron times)
and a *lease*: the watcher that holds an unexpired lease is the only one running the
pipeline. Claiming is one write transaction that checks the lease and the state revision the
caller judged its triggers on, so two watchers of one pipeline never run it at once, and a
trigger is never handled twice. A watcher that dies stops renewing; once its lease expires
another takes over and records the run it left behind as failed.

>>> store = SqlPipelineStore(client.store.engine)                            # doctest: +SKIP
>>> run_id = store.start_run(pipeline="fraud-retrain", model="fraud", trigger="manual",
...                          params={})                                     # doctest: +SKIP
>>> store.finish_run(run_id, status="passed", actor="ann", log="...").status  # doctest: +SKIP
'passed'
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Row, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import InterfaceError, OperationalError

from modelyard.errors import InvalidInputError, NotFoundError
from modelyard.registry.sql.audit import append_audit
from modelyard.registry.sql.engine import connect_error, write_connection
from modelyard.registry.sql.loop_tables import pipeline_runs, pipeline_state

__all__ = ["FINAL_STATUSES", "Claim", "PipelineRun", "SqlPipelineStore"]

FINAL_STATUSES = ("passed", "rejected", "failed")
"""How a run can end: its candidate passed the gates, failed a gate, or the run raised."""

_MAX_LOG = 1_000_000  # characters of a run's log kept (its tail): a chatty train function


@dataclass(frozen=True, slots=True)
class PipelineRun:
    """One recorded run of a pipeline."""

    id: int
    pipeline: str
    model: str
    trigger: str
    status: str
    started_at: float
    finished_at: float | None
    data: dict[str, Any] | None
    params: dict[str, Any]
    candidate_metrics: dict[str, float]
    champion_metrics: dict[str, float]
    gates: dict[str, Any]
    version: int | None
    champion_version: int | None
    log: str
    error: str | None

    @property
    def duration_s(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "pipeline": self.pipeline, "model": self.model,
                "trigger": self.trigger, "status": self.status,
                "started_at": self.started_at, "finished_at": self.finished_at,
                "data": self.data, "params": dict(self.params),
                "candidate_metrics": dict(self.candidate_metrics),
                "champion_metrics": dict(self.champion_metrics), "gates": self.gates,
                "version": self.version, "champion_version": self.champion_version,
                "log": self.log, "error": self.error}


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of :meth:`SqlPipelineStore.claim`."""

    granted: bool
    state: dict[str, Any]
    """The pipeline's state after the claim (or as found, when refused)."""

    holder: str | None = None
    """Refused: the watcher holding the lease (None when the state changed instead)."""


class SqlPipelineStore:
    """The ``pipeline_runs`` and ``pipeline_state`` tables of one registry database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- runs ------------------------------------------------------------------------------
    def start_run(self, *, pipeline: str, model: str, trigger: str, params: Mapping[str, Any],
                  now: float | None = None) -> int:
        """Record a run as ``running``; return its id (audited when it finishes)."""
        with write_connection(self.engine) as conn:
            inserted = conn.execute(insert(pipeline_runs).values(
                pipeline=pipeline, model=model, trigger=trigger[:256], status="running",
                started_at=time.time() if now is None else now, finished_at=None, data=None,
                params=dict(params), candidate_metrics={}, champion_metrics={}, gates={},
                version=None, champion_version=None, log="", error=None,
            )).inserted_primary_key
        assert inserted is not None
        return int(inserted[0])

    def finish_run(self, run_id: int, *, status: str, actor: str, log: str,
                   data: Mapping[str, Any] | None = None,
                   candidate_metrics: Mapping[str, float] | None = None,
                   champion_metrics: Mapping[str, float] | None = None,
                   gates: Mapping[str, Any] | None = None, version: int | None = None,
                   champion_version: int | None = None, error: str | None = None,
                   now: float | None = None) -> PipelineRun:
        """Record how a run ended and append its audit entry, in one transaction."""
        if status not in FINAL_STATUSES:
            raise InvalidInputError(f"A run ends as one of {FINAL_STATUSES}. Got {status!r}.")
        at = time.time() if now is None else now
        with write_connection(self.engine) as conn:
            row = conn.execute(select(pipeline_runs).where(pipeline_runs.c.id == run_id)
                               .with_for_update()).first()
            if row is None:
                raise _no_run(run_id)
            conn.execute(update(pipeline_runs).where(pipeline_runs.c.id == run_id).values(
                status=status, finished_at=at, data=dict(data) if data is not None else None,
                candidate_metrics=_numbers(candidate_metrics),
                champion_metrics=_numbers(champion_metrics), gates=dict(gates or {}),
                version=version, champion_version=champion_version,
                log=log[-_MAX_LOG:], error=error))
            append_audit(conn, actor=actor, action="pipeline.run",
                         target=f"pipeline:{row.pipeline}#{run_id}", model=row.model,
                         after={"run": run_id, "status": status, "trigger": row.trigger,
                                "version": version, "champion_version": champion_version,
                                "data": _fingerprint_of(data), "error": _first_line(error)},
                         at=at)
            finished = conn.execute(
                select(pipeline_runs).where(pipeline_runs.c.id == run_id)).one()
        return _to_run(finished)

    def get_run(self, run_id: int) -> PipelineRun:
        """The run ``run_id``; :class:`NotFoundError` if there is none."""
        with self._read() as conn:
            row = conn.execute(select(pipeline_runs).where(pipeline_runs.c.id == run_id)).first()
        if row is None:
            raise _no_run(run_id)
        return _to_run(row)

    def list_runs(self, *, pipeline: str | None = None, model: str | None = None,
                  limit: int | None = None) -> list[PipelineRun]:
        """Runs, newest first."""
        query = select(pipeline_runs).order_by(pipeline_runs.c.id.desc())
        if pipeline is not None:
            query = query.where(pipeline_runs.c.pipeline == pipeline)
        if model is not None:
            query = query.where(pipeline_runs.c.model == model)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [_to_run(r) for r in conn.execute(query).all()]

    # -- trigger state and the lease -------------------------------------------------------
    def get_state(self, pipeline: str) -> dict[str, Any]:
        """The pipeline's state (``{}`` before its first claim): ``rev``, ``triggers``,
        ``lease``."""
        with self._read() as conn:
            value = conn.execute(select(pipeline_state.c.state).where(
                pipeline_state.c.pipeline == pipeline)).scalar()
        return dict(value) if value else {}

    def claim(self, pipeline: str, owner: str, *, ttl_s: float, now: float | None = None,
              expected_rev: int | None = None,
              triggers: Mapping[str, Any] | None = None,
              run_id: int | None = None) -> Claim:
        """Take the pipeline's lease for ``owner`` (refused while another owner's lease is
        unexpired) and, with ``triggers``, record that this run handles them.

        ``expected_rev``: the state revision the caller's triggers were judged on; if the
        state moved since (another watcher handled them), nothing changes. A lease left
        behind by a dead watcher is taken over; its run, still ``running``, is recorded as
        failed.
        """
        at = time.time() if now is None else now
        with write_connection(self.engine) as conn:
            state = self._locked_state(conn, pipeline, at)
            lease = state.get("lease") or {}
            held = lease.get("owner") not in (None, owner) and float(
                lease.get("expires_at") or 0) > at
            if held:
                return Claim(False, state, holder=str(lease["owner"]))
            if expected_rev is not None and int(state.get("rev", 0)) != expected_rev:
                return Claim(False, state)
            abandoned = lease.get("run_id") if lease.get("owner") not in (None, owner) else None
            if abandoned is not None:
                self._fail_abandoned(conn, int(abandoned), str(lease.get("owner")), at)
            new = dict(state)
            new["rev"] = int(state.get("rev", 0)) + 1
            if triggers is not None:
                new["triggers"] = {**(state.get("triggers") or {}), **dict(triggers)}
            new["lease"] = {"owner": owner, "acquired_at": at, "expires_at": at + ttl_s,
                            "run_id": run_id}
            self._write_state(conn, pipeline, new, at)
            return Claim(True, new)

    def attach_run(self, pipeline: str, owner: str, run_id: int) -> None:
        """Note in the lease which run it covers (so a takeover can fail it)."""
        self._update_lease(pipeline, owner, lambda lease, _at: {**lease, "run_id": run_id})

    def renew(self, pipeline: str, owner: str, *, ttl_s: float,
              now: float | None = None) -> bool:
        """Extend ``owner``'s lease; False when it no longer holds it."""
        return self._update_lease(pipeline, owner,
                                  lambda lease, at: {**lease, "expires_at": at + ttl_s}, now)

    def release(self, pipeline: str, owner: str, *, now: float | None = None) -> bool:
        """Give the lease up (False when ``owner`` did not hold it)."""
        return self._update_lease(pipeline, owner, lambda _lease, _at: None, now)

    def save_triggers(self, pipeline: str, triggers: Mapping[str, Any], *,
                      now: float | None = None) -> dict[str, Any]:
        """Merge trigger state (a watcher's first look, before anything is due)."""
        at = time.time() if now is None else now
        with write_connection(self.engine) as conn:
            state = self._locked_state(conn, pipeline, at)
            new = {**state, "rev": int(state.get("rev", 0)) + 1,
                   "triggers": {**(state.get("triggers") or {}), **dict(triggers)}}
            self._write_state(conn, pipeline, new, at)
            return new

    # -- helpers ---------------------------------------------------------------------------
    def _read(self) -> Any:
        try:
            return self.engine.connect()
        except (OperationalError, InterfaceError) as exc:
            raise connect_error(self.engine, exc) from exc

    def _update_lease(self, pipeline: str, owner: str, change: Any,
                      now: float | None = None) -> bool:
        at = time.time() if now is None else now
        with write_connection(self.engine) as conn:
            state = self._locked_state(conn, pipeline, at)
            lease = state.get("lease") or {}
            if lease.get("owner") != owner:
                return False
            new = {**state, "lease": change(lease, at)}
            self._write_state(conn, pipeline, new, at)
            return True

    def _locked_state(self, conn: Any, pipeline: str, at: float) -> dict[str, Any]:
        """The state row, created if missing and locked for this transaction (PostgreSQL:
        FOR UPDATE; SQLite's write transaction is exclusive already)."""
        row = conn.execute(select(pipeline_state.c.state).where(
            pipeline_state.c.pipeline == pipeline).with_for_update()).first()
        if row is not None:
            return dict(row.state or {})
        # A concurrent first claim may insert it meanwhile: insert or do nothing, then lock.
        values = {"pipeline": pipeline, "state": {}, "updated_at": at}
        stmt = (pg_insert(pipeline_state) if conn.dialect.name == "postgresql"
                else sqlite_insert(pipeline_state))
        conn.execute(stmt.values(**values).on_conflict_do_nothing(index_elements=["pipeline"]))
        row = conn.execute(select(pipeline_state.c.state).where(
            pipeline_state.c.pipeline == pipeline).with_for_update()).one()
        return dict(row.state or {})

    def _write_state(self, conn: Any, pipeline: str, state: dict[str, Any], at: float) -> None:
        conn.execute(update(pipeline_state).where(pipeline_state.c.pipeline == pipeline)
                     .values(state=state, updated_at=at))

    def _fail_abandoned(self, conn: Any, run_id: int, owner: str, at: float) -> None:
        row = conn.execute(select(pipeline_runs).where(pipeline_runs.c.id == run_id)).first()
        if row is None or row.status != "running":
            return
        error = (f"The watcher {owner} stopped renewing its lease during this run "
                 "(killed or hung); another watcher took over.")
        conn.execute(update(pipeline_runs).where(pipeline_runs.c.id == run_id).values(
            status="failed", finished_at=at, error=error, log=row.log + "\n" + error))
        append_audit(conn, actor=owner, action="pipeline.run",
                     target=f"pipeline:{row.pipeline}#{run_id}", model=row.model,
                     after={"run": run_id, "status": "failed", "trigger": row.trigger,
                            "version": None, "champion_version": row.champion_version,
                            "data": None, "error": error}, at=at)


def _no_run(run_id: int) -> NotFoundError:
    return NotFoundError(f"There is no pipeline run {run_id}.",
                         hint="Run 'modelyard pipeline runs' to see the runs.")


def _numbers(values: Mapping[str, float] | None) -> dict[str, float | None]:
    # JSON has no NaN: a metric that could not be computed is stored as null.
    out: dict[str, float | None] = {}
    for key, value in (values or {}).items():
        number = None if value is None else float(value)
        out[str(key)] = number if number is not None and math.isfinite(number) else None
    return out


def _fingerprint_of(data: Mapping[str, Any] | None) -> str | None:
    fp = (data or {}).get("fingerprint") or {}
    return fp.get("sha256") if isinstance(fp, Mapping) else None


def _first_line(text: str | None) -> str | None:
    return None if text is None else (text.strip().splitlines() or [""])[0][:500]


def _to_run(row: Row[Any]) -> PipelineRun:
    return PipelineRun(
        id=int(row.id), pipeline=row.pipeline, model=row.model, trigger=row.trigger,
        status=row.status, started_at=float(row.started_at),
        finished_at=None if row.finished_at is None else float(row.finished_at),
        data=dict(row.data) if row.data is not None else None, params=dict(row.params or {}),
        candidate_metrics={k: (float("nan") if v is None else float(v))
                           for k, v in (row.candidate_metrics or {}).items()},
        champion_metrics={k: (float("nan") if v is None else float(v))
                          for k, v in (row.champion_metrics or {}).items()},
        gates=dict(row.gates or {}), version=row.version,
        champion_version=row.champion_version, log=row.log or "", error=row.error)
