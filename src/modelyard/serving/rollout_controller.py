"""The rollout controller: the part of the server that drives rollouts with no person involved.

Every ``serving.rollout_check_s`` it judges each rollout the pool routes traffic for, with
:func:`modelyard.core.rollout.decide` over the live statistics the data plane keeps
(:mod:`modelyard.serving.rollout_stats`). A decision other than ``hold`` is written to the
registry through the source (``decide_rollout``, in a thread), which moves the aliases and
records the reason in the alias history and the audit log; the pool then follows it at once
(a promoted challenger becomes the champion without a reload, a rolled back one is drained and
released). When several server processes judge the same rollout, the registry takes the first
decision and the others get None: they re-read the rollout and follow it.

A registry error never stops the server: it is logged and the rollout judged again at the
next check.

>>> controller = RolloutController(pool, client, every_s=1.0, metrics=metrics)  # doctest: +SKIP
>>> controller.start()                     # on the server's event loop  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable

from modelyard.core.rollout import Decision, decide
from modelyard.serving.metrics import ServingMetrics
from modelyard.serving.pool import Deployment, ModelPool
from modelyard.serving.rollout_stats import CHALLENGER, CHAMPION
from modelyard.serving.source import RolloutSource

__all__ = ["RolloutController", "server_actor"]

log = logging.getLogger("modelyard.serving.rollout")


def server_actor() -> str:
    """How the alias history and the audit log name this server process.

    >>> server_actor().startswith("server:")
    True
    """
    return f"server:{socket.gethostname()}:{os.getpid()}"


class RolloutController:
    """Judges the pool's rollouts every ``every_s`` seconds and applies the decisions."""

    def __init__(self, pool: ModelPool, source: RolloutSource, *, every_s: float,
                 metrics: ServingMetrics, actor: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.pool = pool
        self.source = source
        self.every_s = every_s
        self.metrics = metrics
        self.actor = actor or server_actor()
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self._last_error: dict[str, str] = {}

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Start checking (call on the server's event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name="rollout-controller")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            await self.tick()

    # -- judging -----------------------------------------------------------------------------
    async def tick(self) -> dict[str, Decision]:
        """Judge every routed rollout once; returns the decisions by deployment name."""
        decided: dict[str, Decision] = {}
        for name, dep in list(self.pool.routed.items()):
            try:
                decision = await self.judge(name, dep)
            except Exception as exc:  # the registry may be briefly unreachable: next tick
                message = f"Could not apply the rollout decision for {name!r}: {exc}"
                if self._last_error.get(name) != message:
                    log.warning("%s (retrying every %g s)", message, self.every_s)
                self._last_error[name] = message
                continue
            self._last_error.pop(name, None)
            if decision is not None:
                decided[name] = decision
        return decided

    async def judge(self, name: str, dep: Deployment) -> Decision | None:
        """Decide for one deployment's rollout and, unless holding, apply the decision."""
        rollout, stats = dep.rollout, dep.rollout_stats
        if rollout is None or stats is None or stats.rollout_id != rollout.id:
            return None
        decision = decide(rollout, stats.version_stats(CHAMPION),
                          stats.version_stats(CHALLENGER),
                          step_requests=stats.step_requests(rollout.step), now=self.clock())
        dep.decision = decision
        if decision.action == "hold":
            return decision
        log.info("Rollout #%s of %r (version %s against %s): %s: %s", rollout.id, name,
                 rollout.challenger, rollout.champion, decision.action, decision.reason)
        after = await asyncio.to_thread(self.source.decide_rollout, rollout, decision,
                                        actor=self.actor)
        if after is None:
            # Someone decided first (another server process, or a person): follow the
            # registry. refresh() also swaps a promoted challenger in without reloading it.
            log.info("Rollout #%s of %r was decided elsewhere first; following the registry",
                     rollout.id, name)
            await self.pool.refresh(name)
            return decision
        self.metrics.rollout_decisions.labels(name, decision.action).inc()
        await self.pool.apply_rollout(name, after)
        if after.active:
            dep.decision = decision  # kept for GET .../rollout until the next check
        return decision
