"""The transport-free data plane that REST and gRPC both call.

resolve the model and version -> validate against the signature -> batch -> predict ->
pick the outputs asked for -> hand an inference record to the sink. No disk or database I/O
happens here: models are resolved and loaded by the pool, in threads, off the request path.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelyard.core.inference import (
    BatchRef,
    FeedbackSink,
    InferenceRecord,
    InferenceSink,
    NullSink,
)
from modelyard.core.signature import ColumnSpec, Schema, TensorSpec
from modelyard.errors import InvalidInputError, ModelyardError, NotFoundError, UnavailableError
from modelyard.serving.batcher import BATCH_KEY, n_rows
from modelyard.serving.metrics import ServingMetrics
from modelyard.serving.pool import DeploymentSpec, Loaded, ModelPool
from modelyard.settings import ServingSettings

__all__ = ["DataPlane", "ModelMetadata", "Prediction", "RequestTimeoutError"]

SERVER_NAME = "modelyard"


class RequestTimeoutError(ModelyardError):
    """The answer did not come within the per-request timeout (HTTP 504)."""


@dataclass(frozen=True, slots=True)
class Prediction:
    model_name: str
    model_version: int
    request_id: str
    outputs: dict[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    name: str
    versions: list[str]
    platform: str
    inputs: tuple[ColumnSpec | TensorSpec, ...]
    input_kind: str
    outputs: tuple[TensorSpec, ...]


def new_request_id() -> str:
    return uuid.uuid4().hex


class DataPlane:
    """Everything a transport needs: infer, health, metadata, the model repository."""

    def __init__(self, pool: ModelPool, settings: ServingSettings,
                 metrics: ServingMetrics, sink: InferenceSink | None = None,
                 version: str = "0") -> None:
        self.pool = pool
        self.settings = settings
        self.metrics = metrics
        self.sink: InferenceSink = sink or NullSink()
        self.server_version = version

    # -- inference -----------------------------------------------------------------------
    async def infer(self, name: str, data: Any, *, version: int | None = None,
                    request_id: str | None = None, route: str = "v2",
                    outputs: list[str] | None = None) -> Prediction:
        """Predict for ``data`` (named columns or one array) with model ``name``."""
        started = time.perf_counter()
        arrived = time.time()
        request_id = request_id or new_request_id()
        loaded = self.pool.get(name) if version is None else await self.pool.get_version(
            name, version)
        try:
            wanted = self._wanted(loaded, outputs)
            prepared = loaded.model.prepare(data)
            timeout = loaded_timeout(loaded, self.pool, self.settings)
            future = loaded.batcher.enqueue(prepared, n_rows(prepared))
            # A timer on the future itself: cheaper than asyncio.wait_for, which wraps every
            # request in extra futures and callbacks on this hot path.
            timer = asyncio.get_running_loop().call_later(timeout, _expire, future, name,
                                                          timeout)
            try:
                result = await future
            finally:
                timer.cancel()
        except ModelyardError as exc:
            # Failures are logged too (without outputs), so error rates come from the log.
            self.sink.emit(InferenceRecord(
                request_id=request_id, model=name, version=loaded.version.version,
                timestamp=arrived, inputs=None, outputs={},
                latency_ms=(time.perf_counter() - started) * 1000.0, route=route,
                error=type(exc).__name__))
            raise
        picked = {k: result[k] for k in wanted}
        latency = time.perf_counter() - started
        self.sink.emit(InferenceRecord(
            request_id=request_id, model=name, version=loaded.version.version,
            timestamp=arrived, inputs=prepared, outputs=picked, latency_ms=latency * 1000.0,
            route=route, batch=batch_of(result)))
        return Prediction(name, loaded.version.version, request_id, picked)

    def feedback(self, name: str, body: Any) -> int:
        """Queue ground-truth labels for model ``name``; return how many were accepted."""
        from modelyard.monitoring.feedback import feedback_from_json

        if name not in self.pool.deployments:
            raise NotFoundError(
                f"This server serves no model {name!r}; it serves "
                f"{sorted(self.pool.deployments)}.",
                hint="Send feedback to the model that made the predictions.")
        if not isinstance(self.sink, FeedbackSink):
            raise UnavailableError(
                "This server keeps no inference log, so it cannot take feedback.",
                hint="Start it with monitoring.log_enabled=true, or record labels with "
                     "'modelyard feedback NAME labels.csv'.")
        table = feedback_from_json(body)
        self.sink.add_feedback(name, table)
        return int(table.num_rows)

    @staticmethod
    def _wanted(loaded: Loaded, outputs: list[str] | None) -> tuple[str, ...]:
        if not outputs:
            return loaded.outputs
        unknown = [o for o in outputs if o not in loaded.outputs]
        if unknown:
            raise InvalidInputError(
                f"Model {loaded.version.name!r} has no output(s) {unknown}; its outputs are "
                f"{list(loaded.outputs)}."
            )
        return tuple(outputs)

    # -- health and metadata ---------------------------------------------------------------
    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return self.pool.is_ready()

    def model_ready(self, name: str, version: int | None = None) -> bool:
        if version is None:
            return self.pool.is_ready(name)
        return self.pool.has_version(name, version)

    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": self.server_version,
                "extensions": ["binary_tensor_data", "model_repository"]}

    async def model_metadata(self, name: str, version: int | None = None) -> ModelMetadata:
        loaded = self.pool.get(name) if version is None else await self.pool.get_version(
            name, version)
        sig = loaded.version.signature
        schema = sig.inputs if sig is not None else Schema("tensors")
        specs: tuple[ColumnSpec | TensorSpec, ...] = (
            schema.columns if schema.kind == "columns" else schema.tensors)
        predict = TensorSpec("predict", "float64", (-1,))
        if sig is not None and sig.outputs is not None and sig.outputs.kind == "tensors":
            first = sig.outputs.tensors[0]
            predict = TensorSpec("predict", first.dtype, first.shape)
        outputs = [predict]
        if "predict_proba" in loaded.outputs:
            classes = getattr(loaded.model.predictor, "classes", None)
            width = len(classes) if classes is not None else -1
            outputs.append(TensorSpec("predict_proba", "float64", (-1, width)))
        return ModelMetadata(name=name, versions=[str(loaded.version.version)],
                             platform=loaded.version.format, inputs=specs,
                             input_kind=schema.kind, outputs=tuple(outputs))

    # -- repository extension ----------------------------------------------------------------
    def repository_index(self) -> list[dict[str, Any]]:
        out = []
        for name, dep in sorted(self.pool.deployments.items()):
            state = "READY" if dep.current else ("UNAVAILABLE" if dep.error else "LOADING")
            entry: dict[str, Any] = {"name": name, "state": state, "reason": dep.error or ""}
            if dep.current is not None:
                entry["version"] = str(dep.current.version.version)
            out.append(entry)
        return out

    async def load_model(self, name: str, ref: str | None = None) -> None:
        await self.pool.add(DeploymentSpec.from_ref(ref or f"models:/{name}/latest", name=name))

    async def unload_model(self, name: str) -> None:
        await self.pool.remove(name)


def batch_of(answer: dict[str, Any]) -> BatchRef | None:
    """The batch a request was answered in (the batcher puts it in the answer dict)."""
    batch = answer.get(BATCH_KEY)
    return batch if isinstance(batch, BatchRef) else None


def _expire(future: asyncio.Future[Any], name: str, timeout: float) -> None:
    if not future.done():
        future.set_exception(RequestTimeoutError(
            f"Model {name!r} did not answer within {timeout:g} s.",
            hint="Retry later, or raise serving.request_timeout_s.",
        ))


def loaded_timeout(loaded: Loaded, pool: ModelPool, settings: ServingSettings) -> float:
    dep = pool.deployments.get(loaded.batcher.name)
    if dep is not None and dep.spec.timeout_s is not None:
        return dep.spec.timeout_s
    return settings.request_timeout_s
