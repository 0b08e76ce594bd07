"""What starts a run of a watched pipeline: new data, an alert that started firing, a schedule.

A trigger is a small object over state it does not keep itself: the watcher stores each
trigger's state in the pipeline's state row (:mod:`modelyard.registry.sql.pipeline_store`),
so several watchers, or a restarted one, agree on what was handled.

* ``due(state, now)`` -> the reason to run now, or None;
* ``handled(state, now)`` -> the state once a run takes over what is due (recorded when the
  run is claimed, so a run that then fails does not retrigger on the same cause);
* ``prime(state, now)`` -> the state a watcher starts from (a schedule starts counting from
  the first look).

>>> cron = CronTrigger("0 3 * * *", tz=dt.UTC)
>>> start = dt.datetime(2026, 1, 1, 2, 0, tzinfo=dt.UTC).timestamp()
>>> state = cron.prime({}, start)
>>> cron.due(state, start + 1800) is None, cron.due(state, start + 3600)
(True, 'schedule 0 3 * * *: due at 2026-01-01 03:00:00+00:00')
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from modelyard.pipelines.sources import DataFile, list_files

if TYPE_CHECKING:
    from modelyard._client import Client
    from modelyard.monitoring.alerts import AlertState
    from modelyard.pipelines.spec import PipelineSpec

__all__ = ["AlertTrigger", "CronTrigger", "NewDataTrigger", "Trigger", "build_triggers"]

_SHOWN_FILES = 3


class Trigger(Protocol):
    """One cause of runs; ``key`` names its part of the pipeline's state."""

    key: str
    poll_s: float
    """How often the watcher should ask ``due``."""

    def due(self, state: Mapping[str, Any], now: float) -> str | None: ...

    def handled(self, state: Mapping[str, Any], now: float) -> dict[str, Any]: ...

    def prime(self, state: Mapping[str, Any], now: float) -> dict[str, Any]: ...


class NewDataTrigger:
    """Due when a file under ``uri`` is one no earlier run saw (new, or rewritten: its size
    or modification time changed). A pipeline that never ran sees every file as new.

    A new file written less than ``settle_s`` ago may still be being copied in: the trigger
    waits until every new file has been left alone that long (object stores, whose objects
    appear whole, give no modification time that is that recent for long).

    State: ``{"seen": {uri: token}}``, the files present when the last run was claimed.
    """

    key = "new_data"

    def __init__(self, uri: str, *, poll_s: float = 60.0, settle_s: float = 2.0,
                 lister: Callable[[str], list[DataFile]] = list_files,
                 clock: Callable[[], float] = time.time) -> None:
        self.uri = uri
        self.poll_s = poll_s
        self.settle_s = settle_s
        self.lister = lister
        self.clock = clock

    def _listing(self) -> dict[str, str]:
        return {f.uri: f.token for f in self.lister(self.uri)}

    def _new(self, state: Mapping[str, Any]) -> list[DataFile]:
        seen = state.get("seen") or {}
        return [f for f in self.lister(self.uri) if seen.get(f.uri) != f.token]

    def new_files(self, state: Mapping[str, Any]) -> list[str]:
        """Files not seen by an earlier run, sorted."""
        return sorted(f.uri for f in self._new(state))

    def due(self, state: Mapping[str, Any], now: float) -> str | None:
        files = self._new(state)
        # The file system's clock, not the watcher's (which tests may fix): same machine.
        wall = self.clock()
        if any(f.modified is not None and wall - f.modified < self.settle_s for f in files):
            return None  # still being written: look again next poll
        new = sorted(f.uri for f in files)
        if not new:
            return None
        names = ", ".join(u.rsplit("/", 1)[-1] for u in new[:_SHOWN_FILES])
        more = f" and {len(new) - _SHOWN_FILES} more" if len(new) > _SHOWN_FILES else ""
        return f"new data: {len(new)} file(s) ({names}{more})"

    def handled(self, state: Mapping[str, Any], now: float) -> dict[str, Any]:
        return {"seen": self._listing(), "handled_at": now}

    def prime(self, state: Mapping[str, Any], now: float) -> dict[str, Any]:
        return dict(state)


class AlertTrigger:
    """Due when an alert of the model (any rule, or one of ``rules``) is firing and started
    firing after the last firing a run handled.

    ``states`` returns the alert states monitoring keeps (``MetricStore.alert_states``).
    State: ``{"handled_since": t}``, when the newest handled firing began.
    """

    key = "alert"

    def __init__(self, model: str, states: Callable[[], Iterable[AlertState]], *,
                 rules: Iterable[str] | None = None, poll_s: float = 30.0) -> None:
        self.model = model
        self.states = states
        self.rules = frozenset(rules) if rules is not None else None
        self.poll_s = poll_s

    def _firing(self, state: Mapping[str, Any]) -> list[AlertState]:
        after = state.get("handled_since")
        found = [s for s in self.states()
                 if s.model == self.model and s.status == "firing" and s.since is not None
                 and (self.rules is None or s.rule in self.rules)
                 and (after is None or s.since > float(after))]
        return sorted(found, key=lambda s: (s.since or 0.0, s.rule))

    def due(self, state: Mapping[str, Any], now: float) -> str | None:
        firing = self._firing(state)
        if not firing:
            return None
        return "alert: " + ", ".join(
            f"{s.rule} firing since {_when(s.since or 0.0)}" for s in firing)

    def handled(self, state: Mapping[str, Any], now: float) -> dict[str, Any]:
        firing = self._firing(state)
        newest = max((s.since or 0.0 for s in firing), default=None)
        previous = state.get("handled_since")
        if newest is None:
            return dict(state)
        return {"handled_since": newest if previous is None else max(newest, float(previous))}

    def prime(self, state: Mapping[str, Any], now: float) -> dict[str, Any]:
        return dict(state)


class CronTrigger:
    """Due when a time of the cron ``schedule`` has come since the last run it started (or,
    before any, since the watcher first looked). Several missed times make one run.

    ``tz``: the zone the schedule is read in (default: the machine's local time, as cron).
    State: ``{"after": t}``.
    """

    key = "cron"

    def __init__(self, schedule: str, *, tz: dt.tzinfo | None = None,
                 poll_s: float = 30.0) -> None:
        self.schedule = schedule
        self.tz = tz
        self.poll_s = poll_s

    def next_time(self, after: float) -> float:
        """The first scheduled time strictly after ``after`` (seconds since the epoch)."""
        from croniter import croniter

        start = dt.datetime.fromtimestamp(after, self.tz or dt.UTC)
        if self.tz is None:
            start = start.astimezone()  # local time, as cron reads a schedule
        return float(croniter(self.schedule, start).get_next(float))

    def due(self, state: Mapping[str, Any], now: float) -> str | None:
        after = state.get("after")
        if after is None:
            return None  # not primed: the watcher starts counting at its first look
        at = self.next_time(float(after))
        if at > now:
            return None
        return f"schedule {self.schedule}: due at {_when(at, self.tz)}"

    def handled(self, state: Mapping[str, Any], now: float) -> dict[str, Any]:
        return {"after": now}

    def prime(self, state: Mapping[str, Any], now: float) -> dict[str, Any]:
        return dict(state) if state.get("after") is not None else {"after": now}


def build_triggers(spec: PipelineSpec, client: Client) -> list[Trigger]:
    """The triggers a pipeline's ``triggers:`` section asks for."""
    out: list[Trigger] = []
    spec_triggers = spec.triggers
    if spec_triggers.new_data is not None:
        uri = spec_triggers.new_data.uri or spec.data.path
        assert uri is not None  # the spec checks it
        out.append(NewDataTrigger(spec.resolve(uri), poll_s=spec_triggers.new_data.poll_s,
                                  settle_s=spec_triggers.new_data.settle_s))
    if spec_triggers.alert is not None:
        from modelyard.monitoring.metric_store import MetricStore

        metrics = MetricStore(client.store.engine)
        rules = spec_triggers.alert.rules

        def states() -> Iterable[AlertState]:
            return metrics.alert_states(spec.model).values()

        out.append(AlertTrigger(spec.model, states,
                                rules=None if rules == "any" else list(rules),
                                poll_s=spec_triggers.alert.poll_s))
    if spec_triggers.cron is not None:
        out.append(CronTrigger(spec_triggers.cron))
    return out


def _when(ts: float, tz: dt.tzinfo | None = None) -> str:
    moment = dt.datetime.fromtimestamp(ts, tz or dt.UTC)
    if tz is None:
        moment = moment.astimezone()
    return str(moment.replace(microsecond=0))
