"""The rollout controller over a fake registry: it rolls a failing challenger back, walks a
good one through its steps to promotion (swapped in, not reloaded), follows a decision made
elsewhere, holds with a reason, and survives registry errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import numpy as np
import pytest
from tests.unit.serving.rollout_fakes import Boom, Const, FakeRegistry, eventually, plane_over

from modelyard.core.rollout import RolloutState
from modelyard.serving.dataplane import DataPlane
from modelyard.serving.rollout_controller import RolloutController

ROW = np.zeros((1, 3))


async def _load(plane: DataPlane, n: int) -> None:
    for _ in range(n):
        # The failing challenger's answers: counted, not this helper's business.
        with contextlib.suppress(Exception):
            await plane.infer("m", ROW)


def _controller(plane: DataPlane, registry: FakeRegistry, every_s: float = 3600.0
                ) -> RolloutController:
    return RolloutController(plane.pool, registry, every_s=every_s, metrics=plane.metrics)


def test_a_failing_challenger_is_rolled_back_with_the_reason() -> None:
    async def scenario() -> None:
        registry = FakeRegistry({1: Const(0), 2: Boom()})
        registry.start(2, "canary", weight=0.5, judge_after=10, min_requests=1000)
        plane = await plane_over(registry)
        controller = _controller(plane, registry)
        await _load(plane, 60)
        decided = await controller.tick()
        assert decided["m"].action == "rollback"
        assert decided["m"].reason.startswith("error rate 100.0% against the champion's 0.0%")
        [(decision, actor)] = registry.decided
        assert decision.action == "rollback"
        assert actor is not None
        assert actor.startswith("server:")
        assert registry.rollout is not None
        assert registry.rollout.state == RolloutState.ROLLED_BACK
        dep = plane.pool.deployments["m"]
        assert (dep.challenger, dep.rollout, plane.pool.routed) == (None, None, {})
        assert {(await plane.infer("m", ROW)).model_version for _ in range(20)} == {1}
        text = plane.metrics.render().decode()
        assert 'modelyard_rollout_decisions_total{action="rollback",model="m"} 1.0' in text
        assert 'modelyard_rollout_weight{model="m"} 0.0' in text
        await plane.pool.stop()

    asyncio.run(scenario())


def test_a_good_challenger_advances_step_by_step_and_is_promoted() -> None:
    async def scenario() -> None:
        registry = FakeRegistry({1: Const(0), 2: Const(0)})
        registry.start(2, "canary", steps=(0.2, 0.5, 1.0), min_requests=5, judge_after=5,
                       latency_slack_ms=1000.0)
        plane = await plane_over(registry)
        controller = _controller(plane, registry)
        actions = []
        weights = []
        for _ in range(100):
            rollout = plane.pool.deployments["m"].rollout
            if rollout is None:
                break
            weights.append(rollout.weight)
            await _load(plane, 20)
            decision = (await controller.tick())["m"]
            if decision.action != "hold":
                actions.append(decision.action)
        assert actions == ["advance", "advance", "promote"]
        assert sorted(set(weights)) == [0.2, 0.5, 1.0]
        assert registry.aliases["production"] == 2
        dep = plane.pool.deployments["m"]
        assert dep.current is not None
        assert dep.current.version.version == 2
        assert registry.loads == [1, 2]  # promoted without a reload
        assert {(await plane.infer("m", ROW)).model_version for _ in range(10)} == {2}
        await plane.pool.stop()

    asyncio.run(scenario())


def test_holding_keeps_the_reason_for_the_status_route() -> None:
    async def scenario() -> None:
        registry = FakeRegistry({1: Const(0), 2: Const(0)})
        registry.start(2, "canary", weight=0.5, min_requests=1000)
        plane = await plane_over(registry)
        controller = _controller(plane, registry)
        await _load(plane, 10)
        assert (await controller.tick())["m"].action == "hold"
        status = plane.rollout_status("m")
        assert status["decision"]["action"] == "hold"
        assert status["reason"].startswith("step 1: ")
        assert status["stats"]["champion"]["requests"] + status["stats"]["challenger"][
            "requests"] == 10
        assert registry.decided == []
        await plane.pool.stop()

    asyncio.run(scenario())


def test_a_decision_made_elsewhere_first_is_followed() -> None:
    async def scenario() -> None:
        registry = FakeRegistry({1: Const(0), 2: Const(0)})
        rollout = registry.start(2, "canary", steps=(0.2, 0.5, 1.0), min_requests=5,
                                 judge_after=5, latency_slack_ms=1000.0)
        plane = await plane_over(registry)
        controller = _controller(plane, registry)
        await _load(plane, 60)
        from modelyard.core.rollout import Decision

        # Another server process advanced it a moment ago: ours is refused (None).
        registry.decide_rollout(rollout, Decision("advance", "elsewhere", weight=0.5))
        decision = (await controller.tick())["m"]
        assert decision.action == "advance"
        assert [d.reason for d, _ in registry.decided] == ["elsewhere"]
        dep = plane.pool.deployments["m"]
        assert dep.rollout is not None
        assert (dep.rollout.step, dep.rollout.weight) == (1, 0.5)
        assert "m" in plane.pool.routed
        # Counted by the process whose decision landed, not by this one.
        assert 'modelyard_rollout_decisions_total{action="advance"' not in (
            plane.metrics.render().decode())
        await plane.pool.stop()

    asyncio.run(scenario())


def test_registry_errors_are_logged_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        registry = FakeRegistry({1: Const(0), 2: Boom()})
        registry.start(2, "canary", weight=0.5, judge_after=10)
        plane = await plane_over(registry)
        controller = _controller(plane, registry)
        await _load(plane, 60)
        registry.fail_decisions = True
        with caplog.at_level(logging.WARNING, logger="modelyard.serving.rollout"):
            assert await controller.tick() == {}
            assert await controller.tick() == {}
        warnings = [r for r in caplog.records if "registry down" in r.getMessage()]
        assert len(warnings) == 1  # once, not on every check
        assert "m" in plane.pool.routed
        registry.fail_decisions = False
        assert (await controller.tick())["m"].action == "rollback"
        assert plane.pool.routed == {}
        await plane.pool.stop()

    asyncio.run(scenario())


def test_the_controller_drives_rollouts_on_its_own() -> None:
    async def scenario() -> None:
        registry = FakeRegistry({1: Const(0), 2: Boom()})
        registry.start(2, "canary", weight=0.5, judge_after=10)
        plane = await plane_over(registry)
        controller = _controller(plane, registry, every_s=0.05)
        controller.start()
        await _load(plane, 60)
        await eventually(lambda: plane.pool.routed == {})
        await controller.stop()
        assert registry.rollout is not None
        assert registry.rollout.state == RolloutState.ROLLED_BACK
        await plane.pool.stop()

    asyncio.run(scenario())
