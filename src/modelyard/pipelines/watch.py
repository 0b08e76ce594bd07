"""Running pipelines: once (``modelyard pipeline run``), or as a daemon that runs them when a
trigger says so (``modelyard pipeline watch``).

One run at a time per pipeline, across processes and machines: a run needs the pipeline's
*lease* (a row in the registry database, see :mod:`modelyard.registry.sql.pipeline_store`),
renewed by a heartbeat while the run lasts. A watcher judges its triggers, then claims the
lease *and* marks the triggers handled in one transaction that fails if another watcher
changed the state meanwhile: the same new file or alert never starts two runs.

A failed run is recorded and the watcher carries on. SIGTERM or SIGINT stops the watcher
after the current run (a second one interrupts the run).

>>> result = watch(load_spec("pipeline.yaml"), client, max_runs=1)      # doctest: +SKIP
>>> [o.run.status for o in result.outcomes]                             # doctest: +SKIP
['passed']
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

from modelyard.errors import (
    ConflictError,
    InvalidInputError,
    ModelyardError,
    StoreUnavailableError,
)
from modelyard.pipelines.run import Progress, RunOutcome, run_pipeline
from modelyard.pipelines.triggers import Trigger, build_triggers
from modelyard.registry.sql.pipeline_store import SqlPipelineStore

if TYPE_CHECKING:
    from modelyard._client import Client
    from modelyard.pipelines.spec import PipelineSpec

__all__ = ["WatchResult", "held_lease", "new_owner", "run_once", "watch"]

log = logging.getLogger("modelyard.pipelines.watch")

DEFAULT_LEASE_S = 60.0
"""A watcher's lease lasts this long without a heartbeat (renewed every third of it)."""


def new_owner() -> str:
    """An id for this process's lease: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class WatchResult:
    """What a watcher did before it stopped, and why it stopped."""

    outcomes: list[RunOutcome] = field(default_factory=list)
    stopped_by: str = ""
    """``max-runs``, ``timeout``, ``signal`` or ``stop``."""


@contextlib.contextmanager
def held_lease(store: SqlPipelineStore, pipeline: str, owner: str, *, ttl_s: float,
               granted: bool = False,
               triggers: Mapping[str, Any] | None = None) -> Iterator[None]:
    """Hold the pipeline's lease for the block, renewing it from a heartbeat thread; release
    it after. ``granted``: the caller claimed it already; ``triggers``: trigger state to
    record with the claim."""
    if not granted:
        claim = store.claim(pipeline, owner, ttl_s=ttl_s, triggers=triggers)
        if not claim.granted:
            raise ConflictError(
                f"Pipeline {pipeline!r} is running in another process ({claim.holder}).",
                hint="Wait for its run to finish ('modelyard pipeline runs'), or stop that "
                     "watcher.")
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(ttl_s / 3):
            try:
                if not store.renew(pipeline, owner, ttl_s=ttl_s):
                    log.warning("Lost the lease of pipeline %s (expired and taken over).",
                                pipeline)
                    return
            except ModelyardError as exc:  # the database was briefly unreachable: retry
                log.warning("Could not renew the lease of pipeline %s: %s", pipeline, exc)

    heart = threading.Thread(target=beat, name=f"modelyard-lease-{pipeline}", daemon=True)
    heart.start()
    try:
        yield
    finally:
        stop.set()
        heart.join()
        try:
            store.release(pipeline, owner)
        except ModelyardError as exc:  # it expires on its own
            log.warning("Could not release the lease of pipeline %s: %s", pipeline, exc)


def run_once(spec: PipelineSpec, client: Client, *, trigger: str = "manual",
             owner: str | None = None, ttl_s: float = DEFAULT_LEASE_S,
             progress: Progress | None = None) -> RunOutcome:
    """Run the pipeline now under its lease (:class:`ConflictError` while another process
    runs it). The files it reads count as seen by the new-data trigger: a watcher started
    later does not retrain on them again."""
    store = SqlPipelineStore(client.store.engine)
    owner = owner or new_owner()
    with held_lease(store, spec.name, owner, ttl_s=ttl_s,
                    triggers=_seen_now(spec, client, store)):
        return run_pipeline(spec, client, trigger=trigger, store=store, progress=progress,
                            on_start=lambda run_id: store.attach_run(spec.name, owner, run_id))


def watch(spec: PipelineSpec, client: Client, *, poll_s: float | None = None,
          max_runs: int | None = None, timeout_s: float | None = None,
          owner: str | None = None, ttl_s: float = DEFAULT_LEASE_S,
          triggers: Sequence[Trigger] | None = None, stop: threading.Event | None = None,
          on_run: Callable[[RunOutcome], None] | None = None,
          on_start: Callable[[str], None] | None = None,
          progress: Progress | None = None, handle_signals: bool = True,
          clock: Callable[[], float] = time.time) -> WatchResult:
    """Watch the pipeline's triggers and run it when one is due, until ``max_runs`` runs,
    ``timeout_s`` seconds, a signal, or ``stop`` is set.

    ``poll_s``: how often to look (default: the most frequent trigger's ``poll_s``).
    ``on_start`` gets each run's trigger reason before the run, ``on_run`` each outcome.
    """
    store = SqlPipelineStore(client.store.engine)
    triggers = list(triggers if triggers is not None else build_triggers(spec, client))
    if not triggers:
        raise InvalidInputError(
            f"The pipeline {spec.source!r} has no triggers to watch.",
            hint="Add a 'triggers:' section (new_data, alert, cron), or run it once with "
                 "'modelyard pipeline run'.")
    interval = poll_s if poll_s is not None else min(t.poll_s for t in triggers)
    owner = owner or new_owner()
    stop = stop or threading.Event()
    result = WatchResult()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    _prime(store, spec.name, triggers, clock())
    with _stop_on_signals(stop, enabled=handle_signals) as signalled:
        while True:
            if stop.is_set():
                result.stopped_by = "signal" if signalled else "stop"
                break
            if deadline is not None and time.monotonic() >= deadline:
                result.stopped_by = "timeout"
                break
            try:
                outcome = _poll(spec, client, store, triggers, owner, ttl_s, clock, on_start,
                                progress)
            except StoreUnavailableError as exc:  # the database is down for a while: wait
                log.warning("Pipeline %s: %s; looking again in %g s.", spec.name, exc,
                            interval)
                outcome = None
            if outcome is not None:
                result.outcomes.append(outcome)
                if on_run is not None:
                    on_run(outcome)
                if max_runs is not None and len(result.outcomes) >= max_runs:
                    result.stopped_by = "max-runs"
                    break
                continue  # look again at once: more may have become due during the run
            wait = interval if deadline is None else max(
                0.0, min(interval, deadline - time.monotonic()))
            stop.wait(wait)
    return result


def _seen_now(spec: PipelineSpec, client: Client,
              store: SqlPipelineStore) -> dict[str, Any] | None:
    """The new-data trigger's state once a run reads the files there now (None: no such
    trigger, or the files cannot be listed: the run itself will say why)."""
    found = [t for t in build_triggers(spec, client) if t.key == "new_data"]
    if not found:
        return None
    saved = (store.get_state(spec.name).get("triggers") or {}).get("new_data") or {}
    try:
        return {"new_data": found[0].handled(saved, time.time())}
    except ModelyardError:
        return None


def _prime(store: SqlPipelineStore, pipeline: str, triggers: Sequence[Trigger],
           now: float) -> None:
    saved = store.get_state(pipeline).get("triggers") or {}
    primed = {t.key: t.prime(saved.get(t.key) or {}, now) for t in triggers}
    if any(primed[k] != (saved.get(k) or {}) for k in primed):
        store.save_triggers(pipeline, primed, now=now)


def _poll(spec: PipelineSpec, client: Client, store: SqlPipelineStore,
          triggers: Sequence[Trigger], owner: str, ttl_s: float, clock: Callable[[], float],
          on_start: Callable[[str], None] | None,
          progress: Progress | None) -> RunOutcome | None:
    """Judge the triggers; if any is due, claim the run and run it."""
    state = store.get_state(spec.name)
    saved = state.get("triggers") or {}
    now = clock()
    reasons: list[str] = []
    handled: dict[str, Any] = {}
    for trigger in triggers:
        current = saved.get(trigger.key) or {}
        try:
            reason = trigger.due(current, now)
            if reason is not None:
                handled[trigger.key] = trigger.handled(current, now)
        except ModelyardError as exc:  # a listing or a read failed: look again next poll
            log.warning("Pipeline %s: the %s trigger could not be checked: %s", spec.name,
                        trigger.key, exc)
            continue
        if reason is not None:
            reasons.append(reason)
    if not reasons:
        return None
    claim = store.claim(spec.name, owner, ttl_s=ttl_s, now=now,
                        expected_rev=int(state.get("rev", 0)), triggers=handled)
    if not claim.granted:
        if claim.holder is not None:
            log.info("Pipeline %s is due (%s) but %s is running it.", spec.name,
                     "; ".join(reasons), claim.holder)
        return None  # or another watcher handled these triggers first
    trigger_text = "; ".join(reasons)
    if on_start is not None:
        on_start(trigger_text)
    with held_lease(store, spec.name, owner, ttl_s=ttl_s, granted=True):
        return run_pipeline(spec, client, trigger=trigger_text[:256], store=store,
                            progress=progress,
                            on_start=lambda run_id: store.attach_run(spec.name, owner, run_id))


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event, *, enabled: bool) -> Iterator[list[int]]:
    """SIGTERM/SIGINT set ``stop`` (the watcher ends after the current run); a second signal
    raises KeyboardInterrupt to interrupt the run itself. Only in the main thread, where
    Python delivers signals. Yields the signals received."""
    received: list[int] = []
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        if len(received) > 1:
            raise KeyboardInterrupt
        log.warning("Received %s: stopping after the current run (again to interrupt it).",
                    signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
