"""Rollouts in the registry database: start, follow, advance, promote, roll back, abort.

Every change is one write transaction that also moves the aliases it implies and appends the
audit entry, so a rollout, its alias history and the audit log never disagree:

* start: alias ``challenger`` -> the challenger version;
* advance: an ``challenger`` alias event (same version) whose reason names the new step;
* promote: the champion alias (``production``) -> the challenger, ``challenger`` deleted;
* roll back or abort: ``challenger`` deleted; the champion alias never moved.

Decisions made by server processes are conditional on the state they saw (the rollout still
active, at the step they judged), so when several processes judge the same rollout only the
first decision lands and the others get None.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, insert, select, update

from modelyard.core.entities import Status
from modelyard.core.names import validate_alias
from modelyard.core.rollout import Rollout, RolloutMode, RolloutPolicy, RolloutState
from modelyard.errors import ConflictError, InvalidInputError, NotFoundError
from modelyard.registry.sql.audit import append_audit
from modelyard.registry.sql.engine import write_connection
from modelyard.registry.sql.loop_tables import rollouts
from modelyard.registry.sql.schema import aliases, registered_models
from modelyard.registry.sql.store import SqlRegistryStore, _now

__all__ = ["CHALLENGER_ALIAS", "SqlRolloutStore"]

CHALLENGER_ALIAS = "challenger"
"""The alias a rollout's challenger holds while the rollout is active."""

_ACTIVE = RolloutState.ACTIVE.value


class SqlRolloutStore:
    """The ``rollouts`` table, working with the registry store that owns the aliases."""

    def __init__(self, registry: SqlRegistryStore) -> None:
        self.registry = registry
        self.engine = registry.engine

    # -- reading -------------------------------------------------------------------------
    def active(self, name: str) -> Rollout | None:
        """The model's active rollout, if any (one indexed query: servers poll this)."""
        with self.registry._read() as conn:
            row = conn.execute(select(rollouts).where(and_(
                rollouts.c.model == name, rollouts.c.state == _ACTIVE))
                .order_by(rollouts.c.id.desc()).limit(1)).first()
        return _to_rollout(row) if row is not None else None

    def history(self, name: str, limit: int | None = None) -> list[Rollout]:
        """The model's rollouts, newest first."""
        query = select(rollouts).where(rollouts.c.model == name).order_by(rollouts.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self.registry._read() as conn:
            self.registry._model_row(conn, name)
            return [_to_rollout(r) for r in conn.execute(query).all()]

    def get(self, rollout_id: int) -> Rollout:
        with self.registry._read() as conn:
            row = conn.execute(select(rollouts).where(rollouts.c.id == rollout_id)).first()
        if row is None:
            raise NotFoundError(f"There is no rollout {rollout_id}.",
                                hint="Run 'modelyard rollout status NAME'.")
        return _to_rollout(row)

    # -- changes -------------------------------------------------------------------------
    def start(self, name: str, challenger: int, *, mode: RolloutMode | str,
              policy: RolloutPolicy, actor: str, alias: str = "production",
              weight: float | None = None, reason: str = "") -> Rollout:
        """Start a rollout of ``challenger`` against the version ``alias`` points to."""
        validate_alias(alias)
        mode = _mode(mode)
        first = policy.first_weight(mode) if weight is None else float(weight)
        if mode != RolloutMode.SHADOW and not 0.0 < first <= 1.0:
            raise InvalidInputError(
                f"A {mode} rollout's weight must be in (0, 1]. Got {first} instead.",
                hint="Pass --weight 0.1 for 10% of the traffic.")
        if mode == RolloutMode.SHADOW:
            first = 0.0
        now = time.time()
        with write_connection(self.engine) as conn:
            model = self.registry._model_row(conn, name)
            # Lock the model's row so that two concurrent starts cannot both pass the
            # one-active-rollout check on PostgreSQL.
            conn.execute(select(registered_models.c.id).where(
                registered_models.c.id == model.id).with_for_update())
            version_row = self.registry._version_row(conn, model, challenger)
            if version_row.status != Status.READY.value:
                raise ConflictError(
                    f"Version {challenger} of {name!r} is {version_row.status}; only a ready "
                    "version can be rolled out.",
                    hint=f"Restore it first: modelyard archive {name} {challenger} --restore")
            champion = self.registry._alias_map(conn, model.id).get(alias)
            if champion is None:
                raise ConflictError(
                    f"Model {name!r} has no {alias!r} version to roll out against.",
                    hint=f"Make version {challenger} the champion directly: modelyard alias "
                         f"set {name} {alias} {challenger}")
            if champion == challenger:
                raise ConflictError(
                    f"Version {challenger} of {name!r} already is {alias!r}; a rollout needs "
                    "a different challenger.", hint="Register a new version first.")
            running = conn.execute(select(rollouts.c.id, rollouts.c.challenger).where(and_(
                rollouts.c.model == name, rollouts.c.state == _ACTIVE))).first()
            if running is not None:
                raise ConflictError(
                    f"Model {name!r} already has an active rollout (#{running.id}, challenger "
                    f"version {running.challenger}); a model has at most one challenger.",
                    hint=f"Finish it first: modelyard rollout promote {name}, or "
                         f"modelyard rollout abort {name}")
            inserted = conn.execute(insert(rollouts).values(
                model=name, alias=alias, champion=champion, challenger=challenger,
                mode=mode.value, weight=first, step=0, policy=policy.to_dict(),
                state=_ACTIVE, started_at=now, step_started_at=now, updated_at=now,
                actor=actor, reason=reason)).inserted_primary_key
            assert inserted is not None
            rollout_id = int(inserted[0])
            share = "a copy of every request" if mode == RolloutMode.SHADOW else f"{first:.0%}"
            why = (f"rollout #{rollout_id} started: {mode} with {share} against {alias} "
                   f"version {champion}" + (f"; {reason}" if reason else ""))
            self._move(conn, model, CHALLENGER_ALIAS, challenger, actor, why, name)
            rollout = self._get(conn, rollout_id)
            append_audit(conn, actor=actor, action="rollout.start",
                         target=f"models:/{name}/{challenger}", model=name,
                         after=rollout.to_dict(), at=now)
            return rollout

    def advance(self, rollout_id: int, *, expected_step: int, weight: float, reason: str,
                actor: str) -> Rollout | None:
        """Move to the next step (if the rollout is still active at ``expected_step``)."""
        def change(conn: Connection, r: Rollout, model: Row[Any], now: float) -> Rollout:
            conn.execute(update(rollouts).where(rollouts.c.id == r.id).values(
                step=r.step + 1, weight=weight, step_started_at=now, updated_at=now,
                reason=reason))
            self._move(conn, model, CHALLENGER_ALIAS, r.challenger, actor,
                       f"rollout #{r.id} advanced to {reason}", r.name)
            return self._get(conn, r.id)

        return self._decide(rollout_id, "rollout.advance", actor, change,
                            expected_step=expected_step)

    def promote(self, rollout_id: int, *, reason: str, actor: str,
                expected_step: int | None = None) -> Rollout | None:
        """Make the challenger the champion: the champion alias moves to it."""
        def change(conn: Connection, r: Rollout, model: Row[Any], now: float) -> Rollout:
            why = f"rollout #{r.id} promoted version {r.challenger}: {reason}"
            self._move(conn, model, r.alias, r.challenger, actor, why, r.name)
            self._drop_challenger(conn, model, r, actor, why)
            return self._finish(conn, r, RolloutState.PROMOTED, reason, now)

        return self._decide(rollout_id, "rollout.promote", actor, change,
                            expected_step=expected_step)

    def rollback(self, rollout_id: int, *, reason: str, actor: str,
                 expected_step: int | None = None) -> Rollout | None:
        """Take the challenger out of traffic because it did worse than the champion."""
        def change(conn: Connection, r: Rollout, model: Row[Any], now: float) -> Rollout:
            self._drop_challenger(conn, model, r, actor,
                                  f"rollout #{r.id} rolled back version {r.challenger}: "
                                  f"{reason}")
            return self._finish(conn, r, RolloutState.ROLLED_BACK, reason, now)

        return self._decide(rollout_id, "rollout.rollback", actor, change,
                            expected_step=expected_step)

    def abort(self, rollout_id: int, *, reason: str, actor: str) -> Rollout | None:
        """Stop the rollout by hand; the champion keeps serving."""
        def change(conn: Connection, r: Rollout, model: Row[Any], now: float) -> Rollout:
            self._drop_challenger(conn, model, r, actor,
                                  f"rollout #{r.id} aborted: {reason or 'by ' + actor}")
            return self._finish(conn, r, RolloutState.ABORTED, reason or f"aborted by {actor}",
                                now)

        return self._decide(rollout_id, "rollout.abort", actor, change)

    # -- helpers -------------------------------------------------------------------------
    def _decide(self, rollout_id: int, action: str, actor: str, change: Any, *,
                expected_step: int | None = None) -> Rollout | None:
        now = time.time()
        with write_connection(self.engine) as conn:
            # FOR UPDATE: on PostgreSQL, concurrent deciders queue here and the later ones see
            # the first one's decision (SQLite's write transaction is exclusive already).
            row = conn.execute(select(rollouts).where(rollouts.c.id == rollout_id)
                               .with_for_update()).first()
            if row is None:
                raise NotFoundError(f"There is no rollout {rollout_id}.")
            before = _to_rollout(row)
            if not before.active or (expected_step is not None
                                     and before.step != expected_step):
                return None  # decided already (by another process or a person)
            model = self.registry._model_row(conn, before.name)
            after: Rollout = change(conn, before, model, now)
            append_audit(conn, actor=actor, action=action,
                         target=f"models:/{before.name}/{before.challenger}",
                         model=before.name, before=before.to_dict(), after=after.to_dict(),
                         at=now)
            return after

    def _finish(self, conn: Connection, r: Rollout, state: RolloutState, reason: str,
                now: float) -> Rollout:
        conn.execute(update(rollouts).where(rollouts.c.id == r.id).values(
            state=state.value, updated_at=now, reason=reason))
        return self._get(conn, r.id)

    def _get(self, conn: Connection, rollout_id: int) -> Rollout:
        return _to_rollout(conn.execute(
            select(rollouts).where(rollouts.c.id == rollout_id)).one())

    def _move(self, conn: Connection, model: Row[Any], alias: str, version: int, actor: str,
              reason: str, name: str) -> None:
        previous = self.registry._alias_map(conn, model.id).get(alias)
        now = _now()
        if previous is None:
            conn.execute(insert(aliases).values(model_id=model.id, alias=alias,
                                                version=version, updated_at=now))
        else:
            conn.execute(update(aliases).where(and_(aliases.c.model_id == model.id,
                                                    aliases.c.alias == alias))
                         .values(version=version, updated_at=now))
        # The rollout's own audit entry records the decision; the alias event its reason.
        self.registry._record(conn, model.id, alias, previous, version, actor, now, reason)

    def _drop_challenger(self, conn: Connection, model: Row[Any], r: Rollout, actor: str,
                         reason: str) -> None:
        previous = self.registry._alias_map(conn, model.id).get(CHALLENGER_ALIAS)
        if previous is None:
            return  # someone deleted it by hand; the rollout still ends
        conn.execute(delete(aliases).where(and_(aliases.c.model_id == model.id,
                                                aliases.c.alias == CHALLENGER_ALIAS)))
        self.registry._record(conn, model.id, CHALLENGER_ALIAS, previous, None, actor, _now(),
                              reason)


def _mode(mode: RolloutMode | str) -> RolloutMode:
    try:
        return RolloutMode(mode)
    except ValueError:
        raise InvalidInputError(
            f"The rollout mode must be one of {[m.value for m in RolloutMode]}. Got {mode!r} "
            "instead.", hint="Pass --mode canary, shadow or ab.") from None


def _to_rollout(row: Row[Any]) -> Rollout:
    return Rollout(
        id=int(row.id), name=row.model, alias=row.alias, champion=int(row.champion),
        challenger=int(row.challenger), mode=RolloutMode(row.mode), weight=float(row.weight),
        step=int(row.step), policy=RolloutPolicy.from_dict(row.policy),
        state=RolloutState(row.state), started_at=float(row.started_at),
        step_started_at=float(row.step_started_at), updated_at=float(row.updated_at),
        actor=row.actor, reason=row.reason)
