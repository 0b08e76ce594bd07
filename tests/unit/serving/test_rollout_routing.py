"""Rollout routing in the data plane and rollout following in the pool, over a fake registry:
canary shares, ab stickiness by header and by column, shadow copies (same request id, never
the client's business, bounded), challenger loading and failing to load, promotion without a
reload, and explicit-version deployments that ignore rollouts."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import numpy as np
import pytest
from tests.unit.serving.rollout_fakes import (
    Boom,
    Const,
    FakeRegistry,
    ListSink,
    eventually,
    plane_over,
)

from modelyard.core.rollout import RolloutState
from modelyard.errors import PredictionError
from modelyard.serving.dataplane import sticky_key, version_of_error

ROW = np.zeros((1, 3))


def test_no_rollout_keeps_the_fast_path_and_routes_nothing() -> None:
    async def scenario() -> None:
        registry = FakeRegistry({1: Const(0), 2: Const(1)})
        plane = await plane_over(registry)
        assert plane.pool.routed == {}
        prediction = await plane.infer("m", ROW)
        assert prediction.model_version == 1
        assert registry.loads == [1]
        await plane.pool.stop()

    asyncio.run(scenario())


def test_canary_sends_the_weight_of_the_traffic_to_the_challenger() -> None:
    async def scenario() -> None:
        registry = FakeRegistry({1: Const(0), 2: Const(1)})
        registry.start(2, "canary", weight=0.3)
        plane = await plane_over(registry)
        assert "m" in plane.pool.routed
        plane.rng = random.Random(7)
        seen = Counter()
        for _ in range(2000):
            p = await plane.infer("m", ROW)
            assert int(p.outputs["predict"][0]) == p.model_version - 1  # who answered is who said
            seen[p.model_version] += 1
        assert 0.26 < seen[2] / 2000 < 0.34, seen
        stats = plane.pool.deployments["m"].rollout_stats
        assert stats is not None
        assert stats.version_stats("challenger").requests == seen[2]
        assert stats.version_stats("champion").requests == seen[1]
        assert stats.step_requests(0) == seen[2]
        text = plane.metrics.render().decode()
        assert f'modelyard_rollout_requests_total{{model="m",role="challenger",version="2"}} ' \
               f'{float(seen[2])}' in text
        assert 'modelyard_rollout_weight{model="m"} 0.3' in text
        await plane.pool.stop()

    asyncio.run(scenario())


def test_ab_is_sticky_by_header() -> None:
    async def scenario() -> None:
        registry = FakeRegistry({1: Const(0), 2: Const(1)})
        registry.start(2, "ab", weight=0.5, sticky="header:X-User-ID")
        plane = await plane_over(registry)
        by_user: dict[str, set[int]] = {}
        for round_ in range(5):
            for user in range(40):
                headers = {"x-user-id": f"user-{user}"}
                p = await plane.infer("m", ROW, headers=headers.get)
                by_user.setdefault(f"user-{user}", set()).add(p.model_version)
            assert round_ >= 0
        assert all(len(v) == 1 for v in by_user.values()), by_user
        versions = Counter(next(iter(v)) for v in by_user.values())
        assert min(versions[1], versions[2]) > 5, versions  # both sides have users
        # No key: drawn at random, so both sides get some.
        unkeyed = Counter([(await plane.infer("m", ROW)).model_version for _ in range(200)])
        assert min(unkeyed[1], unkeyed[2]) > 40, unkeyed
        await plane.pool.stop()

    asyncio.run(scenario())


def test_ab_is_sticky_by_input_column() -> None:
    async def scenario() -> None:
        registry = FakeRegistry({1: Const(0), 2: Const(1)})
        registry.start(2, "ab", weight=0.5, sticky="column:customer")
        plane = await plane_over(registry)
        by_customer: dict[int, set[int]] = {}
        for _ in range(4):
            for customer in range(30):
                data = {"customer": np.array([customer, 999]), "x": np.array([0.5, 0.1])}
                p = await plane.infer("m", data)
                by_customer.setdefault(customer, set()).add(p.model_version)
        assert all(len(v) == 1 for v in by_customer.values()), by_customer
        assert {next(iter(v)) for v in by_customer.values()} == {1, 2}
        await plane.pool.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize(("sticky", "data", "headers", "key"), [
    ("header:X-User-ID", None, {"x-user-id": "u1"}, "u1"),
    ("header:X-User-ID", None, {}, None),
    ("header:X-User-ID", None, None, None),
    ("column:user", {"user": np.array([7, 8])}, None, "7"),
    ("column:user", {"user": np.array(["a", "b"], dtype=object)}, None, "a"),
    ("column:user", {"other": np.array([1])}, None, None),
    ("column:user", np.zeros((2, 3)), None, None),
    ("column:user", {"user": np.array([])}, None, None),
], ids=["header", "header-missing", "no-headers", "column-int", "column-str",
        "column-missing", "tensor-input", "no-rows"])
def test_sticky_key(sticky: str, data: object, headers: dict[str, str] | None,
                    key: str | None) -> None:
    assert sticky_key(sticky, data, None if headers is None else headers.get) == key


def test_shadow_answers_with_the_champion_and_logs_both_under_one_request_id() -> None:
    async def scenario() -> None:
        registry = FakeRegistry({1: Const(1), 2: Const(1)})
        registry.start(2, "shadow")
        sink = ListSink()
        plane = await plane_over(registry, sink=sink)
        for i in range(30):
            p = await plane.infer("m", ROW, request_id=f"r{i}", route="v1")
            assert p.model_version == 1
        await eventually(lambda: len(sink.records) == 60)
        by_id: dict[str, list[int]] = {}
        for r in sink.records:
            assert r.route == "v1"
            by_id.setdefault(r.request_id, []).append(r.version)
        assert all(sorted(v) == [1, 2] for v in by_id.values())
        stats = plane.pool.deployments["m"].rollout_stats
        assert stats is not None
        challenger = stats.version_stats("challenger")
        assert (challenger.requests, challenger.compared, challenger.agreed) == (30, 30, 30)
        assert stats.version_stats("champion").requests == 30
        assert 'role="shadow"' in plane.metrics.render().decode()
        await plane.pool.stop()

    asyncio.run(scenario())


def test_shadow_failures_never_reach_the_client_and_copies_are_bounded() -> None:
    async def scenario() -> None:
        registry = FakeRegistry({1: Const(0), 2: Boom(), 3: Const(0, delay_s=0.2)})
        registry.start(2, "shadow")
        plane = await plane_over(registry)
        for _ in range(10):
            assert (await plane.infer("m", ROW)).model_version == 1
        stats = plane.pool.deployments["m"].rollout_stats
        assert stats is not None
        await eventually(lambda: stats.version_stats("challenger").requests == 10)
        assert stats.version_stats("challenger").errors == 10
        await plane.pool.stop()

        registry.start(3, "shadow")  # a slow challenger: copies beyond 2 pending are skipped
        plane = await plane_over(registry, shadow_max_inflight=2)
        answers = await asyncio.gather(*(plane.infer("m", ROW) for _ in range(10)))
        assert {a.model_version for a in answers} == {1}
        slow = plane.pool.deployments["m"].rollout_stats
        assert slow is not None
        assert slow.shadow_skipped == 8
        assert 'modelyard_rollout_shadow_skipped_total{model="m"} 8.0' in (
            plane.metrics.render().decode())
        await plane.stop_shadows(timeout=5)
        await plane.pool.stop()

    asyncio.run(scenario())


def test_a_failing_challenger_is_counted_and_its_errors_say_its_version() -> None:
    async def scenario() -> None:
        registry = FakeRegistry({1: Const(0), 2: Boom()})
        registry.start(2, "canary", weight=0.5)
        sink = ListSink()
        plane = await plane_over(registry, sink=sink)
        failed = answered = 0
        errors: list[PredictionError] = []
        for _ in range(100):
            try:
                p = await plane.infer("m", ROW)
            except PredictionError as exc:
                errors.append(exc)
                failed += 1
            else:
                assert p.model_version == 1
                answered += 1
        assert {version_of_error(e) for e in errors} == {2}
        assert all("raised RuntimeError while predicting: boom" in str(e) for e in errors)
        stats = plane.pool.deployments["m"].rollout_stats
        assert stats is not None
        assert stats.version_stats("challenger").errors == failed > 20
        assert stats.version_stats("champion").errors == 0
        assert stats.version_stats("champion").requests == answered
        errors = [r for r in sink.records if r.error]
        assert len(errors) == failed
        assert {(r.version, r.error) for r in errors} == {(2, "PredictionError")}
        await plane.pool.stop()

    asyncio.run(scenario())


def test_a_challenger_that_fails_to_load_is_reported_and_the_champion_serves() -> None:
    async def scenario() -> None:
        registry = FakeRegistry({1: Const(0), 2: Const(1)})
        registry.unloadable.add(2)
        registry.start(2, "canary", weight=0.9)
        plane = await plane_over(registry)
        assert plane.pool.routed == {}
        assert {(await plane.infer("m", ROW)).model_version for _ in range(20)} == {1}
        entry = plane.repository_index()[0]
        assert entry["state"] == "READY"
        assert "version 2 of rollout #1, failed to load: artifact of version 2 is missing" in (
            entry["reason"])
        assert entry["rollout"]["loaded"] is False
        status = plane.rollout_status("m")
        assert status["challenger_loaded"] is False
        assert "failed to load" in status["error"]
        await plane.pool.stop()

    asyncio.run(scenario())


def test_promotion_swaps_the_loaded_challenger_in_and_rollback_retires_it() -> None:
    async def scenario() -> None:
        registry = FakeRegistry({1: Const(0), 2: Const(1), 3: Const(2)})
        rollout = registry.start(2, "canary", weight=0.5)
        plane = await plane_over(registry)
        pool = plane.pool
        assert registry.loads == [1, 2]
        from modelyard.core.rollout import Decision

        after = registry.decide_rollout(rollout, Decision("promote", "good"))
        await pool.apply_rollout("m", after)
        dep = pool.deployments["m"]
        assert dep.current is not None
        assert dep.current.version.version == 2
        assert (dep.challenger, dep.rollout, pool.routed) == (None, None, {})
        await pool.refresh("m")  # the next poll finds the alias on 2: nothing to load
        assert registry.loads == [1, 2]
        assert {(await plane.infer("m", ROW)).model_version for _ in range(10)} == {2}

        rollout = registry.start(3, "canary", weight=0.5)
        await pool.refresh("m")
        assert registry.loads == [1, 2, 3]
        assert "m" in pool.routed
        challenger = dep.challenger
        assert challenger is not None
        after = registry.decide_rollout(rollout, Decision("rollback", "bad"))
        assert after is not None
        assert after.state == RolloutState.ROLLED_BACK
        await pool.apply_rollout("m", after)
        assert (dep.challenger, pool.routed) == (None, {})
        assert {(await plane.infer("m", ROW)).model_version for _ in range(10)} == {2}
        await eventually(lambda: challenger.batcher._executor._shutdown)  # drained, released
        await pool.stop()

    asyncio.run(scenario())


def test_requests_during_a_promotion_found_by_polling_never_fail() -> None:
    """Another process promotes: the poll finds the alias on the challenger and swaps it in,
    then reads the rollout from a slow registry. Requests arriving meanwhile are answered
    (found by CI: they once met a routed deployment without its challenger)."""
    async def scenario() -> None:
        from modelyard.core.rollout import Decision

        registry = FakeRegistry({1: Const(0), 2: Const(1)})
        rollout = registry.start(2, "canary", weight=0.5)
        plane = await plane_over(registry)
        registry.decide_rollout(rollout, Decision("promote", "good"))  # elsewhere
        registry.read_delay_s = 0.2
        refresh = asyncio.create_task(plane.pool.refresh("m"))
        answers = []
        while not refresh.done():
            answers.append((await plane.infer("m", ROW)).model_version)
        assert await refresh
        assert len(answers) > 3
        assert set(answers) <= {1, 2}
        assert answers[-1] == 2
        assert plane.pool.routed == {}
        await plane.pool.stop()

    asyncio.run(scenario())


def test_explicit_version_deployments_ignore_rollouts() -> None:
    async def scenario() -> None:
        registry = FakeRegistry({1: Const(0), 2: Const(1)})
        registry.start(2, "canary", weight=1.0)
        plane = await plane_over(registry, ref="models:/m/1")
        assert plane.pool.routed == {}
        assert registry.loads == [1]
        assert {(await plane.infer("m", ROW)).model_version for _ in range(10)} == {1}
        await plane.pool.stop()

    asyncio.run(scenario())


def test_a_registry_error_while_following_keeps_the_state() -> None:
    async def scenario() -> None:
        registry = FakeRegistry({1: Const(0), 2: Const(1)})
        registry.start(2, "canary", weight=0.5)
        plane = await plane_over(registry)
        registry.fail_reads = True
        await plane.pool.refresh("m")
        dep = plane.pool.deployments["m"]
        assert "m" in plane.pool.routed
        assert dep.rollout_error is not None
        assert "registry down" in dep.rollout_error
        await plane.pool.stop()

    asyncio.run(scenario())


class _NoRollouts:
    """A source that only resolves and loads (most test fakes): it gets no rollouts."""

    def __init__(self, registry: FakeRegistry) -> None:
        self.registry = registry

    def resolve(self, ref: object) -> object:
        return self.registry.resolve(ref)  # type: ignore[arg-type]

    def load(self, ref: object) -> object:
        return self.registry.load(ref)  # type: ignore[arg-type]


def test_rollout_sources_and_signed_sources() -> None:
    from modelyard.serving.source import SignedSource, rollout_source

    registry = FakeRegistry({1: Const(0), 2: Const(1)})
    plain = _NoRollouts(registry)
    assert rollout_source(registry) is registry
    assert rollout_source(plain) is None
    assert rollout_source(SignedSource(plain, lambda v: None)) is None  # type: ignore[arg-type]
    signed = SignedSource(registry, lambda v: None)
    assert rollout_source(signed) is signed
    rollout = registry.start(2, "canary", weight=0.5)
    assert signed.active_rollout("m") == rollout


def test_the_challenger_loads_through_the_signature_check() -> None:
    from modelyard.errors import UnsafeModelError
    from modelyard.serving.source import SignedSource

    def check(version: object) -> None:
        if getattr(version, "version", None) == 2:
            raise UnsafeModelError("Version 2 of 'm' is not signed by a trusted key.")

    async def scenario() -> None:
        registry = FakeRegistry({1: Const(0), 2: Const(1)})
        registry.start(2, "canary", weight=1.0)
        plane = await plane_over(registry, source=SignedSource(registry, check))
        assert plane.pool.routed == {}
        assert registry.loads == [1]  # refused before a byte of version 2 was read
        dep = plane.pool.deployments["m"]
        assert dep.rollout_error is not None
        assert "not signed by a trusted key" in dep.rollout_error
        assert {(await plane.infer("m", ROW)).model_version for _ in range(10)} == {1}
        await plane.pool.stop()

    asyncio.run(scenario())
