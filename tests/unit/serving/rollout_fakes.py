"""An in-memory registry that serves tiny models and keeps one rollout, for unit tests of
rollout routing, statistics and the controller (the integration tests use the real one)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from modelyard.core.entities import Lineage, ModelVersion, Status
from modelyard.core.inference import InferenceRecord
from modelyard.core.references import ModelRef
from modelyard.core.rollout import (
    Decision,
    Rollout,
    RolloutMode,
    RolloutPolicy,
    RolloutState,
)
from modelyard.runtimes.model import Model
from modelyard.serving.dataplane import DataPlane
from modelyard.serving.metrics import ServingMetrics
from modelyard.serving.pool import DeploymentSpec, ModelPool
from modelyard.settings import ServingSettings


def rows_of(data: Any) -> int:
    if isinstance(data, dict):
        return len(next(iter(data.values())))
    return len(np.asarray(data))


class Const:
    """Answers ``value`` for every row."""

    def __init__(self, value: int, delay_s: float = 0.0) -> None:
        self.value = value
        self.delay_s = delay_s

    def predict(self, data: Any) -> np.ndarray:
        if self.delay_s:
            time.sleep(self.delay_s)
        return np.full(rows_of(data), self.value, dtype=np.int64)


class Boom:
    def predict(self, data: Any) -> np.ndarray:
        raise RuntimeError("boom")


class FakeRegistry:
    """Versions of one model ``m``, its aliases and at most one rollout; counts loads."""

    def __init__(self, predictors: dict[int, Any], *, production: int = 1) -> None:
        self.predictors = predictors
        self.aliases = {"production": production}
        self.rollout: Rollout | None = None
        self.loads: list[int] = []
        self.decided: list[tuple[Decision, str | None]] = []
        self.fail_reads = False
        self.fail_decisions = False
        self.unloadable: set[int] = set()
        self.read_delay_s = 0.0

    # -- ModelSource ---------------------------------------------------------------------
    def resolve(self, ref: str | ModelRef) -> ModelVersion:
        parsed = ref if isinstance(ref, ModelRef) else ModelRef.parse(ref)
        version = parsed.version or self.aliases[parsed.alias or "production"]
        return ModelVersion(name=parsed.name, version=version, format="pyfunc",
                            status=Status.READY, created_at=datetime.now(UTC), created_by="t",
                            artifact_digest="x", size_bytes=1, signature=None,
                            lineage=Lineage())

    def load(self, ref: str | ModelRef) -> Model:
        version = self.resolve(ref)
        if version.version in self.unloadable:
            raise OSError(f"artifact of version {version.version} is missing")
        self.loads.append(version.version)
        return Model(self.predictors[version.version], version)

    # -- RolloutSource -------------------------------------------------------------------
    def start(self, challenger: int, mode: str = "canary", weight: float = 0.5,
              **policy: Any) -> Rollout:
        if "steps" in policy:
            weight = policy["steps"][0]
        steps = policy.pop("steps", (weight,) if mode != "shadow" else (1.0,))
        now = time.time()
        self.rollout = Rollout(
            id=(self.rollout.id + 1 if self.rollout else 1), name="m", alias="production",
            champion=self.aliases["production"], challenger=challenger,
            mode=RolloutMode(mode), weight=0.0 if mode == "shadow" else weight, step=0,
            policy=RolloutPolicy(steps=tuple(steps), **policy), state=RolloutState.ACTIVE,
            started_at=now, step_started_at=now, updated_at=now, actor="tester")
        return self.rollout

    def active_rollout(self, name: str) -> Rollout | None:
        if self.fail_reads:
            raise ConnectionError("registry down")
        time.sleep(self.read_delay_s)  # called in a thread: a slow registry
        r = self.rollout
        return r if r is not None and r.active and r.name == name else None

    def decide_rollout(self, rollout: Rollout, decision: Decision, *,
                       actor: str | None = None) -> Rollout | None:
        if self.fail_decisions:
            raise ConnectionError("registry down")
        current = self.rollout
        if current is None or not current.active or current.step != rollout.step:
            return None
        self.decided.append((decision, actor))
        now = time.time()
        if decision.action == "advance":
            assert decision.weight is not None
            after = dataclasses.replace(current, step=current.step + 1, weight=decision.weight,
                                        step_started_at=now, reason=decision.reason)
        elif decision.action == "promote":
            self.aliases["production"] = current.challenger
            after = dataclasses.replace(current, state=RolloutState.PROMOTED,
                                        reason=decision.reason)
        else:
            after = dataclasses.replace(current, state=RolloutState.ROLLED_BACK,
                                        reason=decision.reason)
        self.rollout = after
        return after


class ListSink:
    def __init__(self) -> None:
        self.records: list[InferenceRecord] = []
        self.feedback: list[Any] = []

    def emit(self, record: InferenceRecord) -> None:
        self.records.append(record)

    def add_feedback(self, model: str, table: Any) -> None:
        self.feedback.append(table)


async def plane_over(registry: FakeRegistry, *, ref: str = "models:/m@production",
                     sink: ListSink | None = None, source: Any = None,
                     **settings: Any) -> DataPlane:
    """A started pool (no alias polling unless asked) and a data plane over ``registry`` (or
    ``source``, a wrapper of it)."""
    serving = ServingSettings(grpc_port=None, **{"alias_poll_s": 3600.0, **settings})
    metrics = ServingMetrics()
    pool = ModelPool(source or registry, serving, metrics,
                     [DeploymentSpec.from_ref(ref, name="m")])
    await pool.start()
    return DataPlane(pool, serving, metrics, sink=sink)


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    import asyncio

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not hold in time")
        await asyncio.sleep(0.01)
