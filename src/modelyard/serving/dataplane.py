"""The transport-free data plane that REST and gRPC both call.

resolve the model and version -> validate against the signature -> batch -> predict ->
pick the outputs asked for -> hand an inference record to the sink. No disk or database I/O
happens here: models are resolved and loaded by the pool, in threads, off the request path.

During a rollout (the pool lists the deployment in ``pool.routed``) a request may go to the
challenger instead: ``canary`` by the rollout's weight, ``ab`` the same but sticky by a header
or an input column, ``shadow`` never (the champion answers; the challenger gets a copy in the
background, logged under the same request id and compared). Both versions' requests, errors,
latencies, agreement and, once labels arrive, accuracy are counted for the rollout controller.
Without a rollout the only cost is one truthiness check of that dict.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
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
from modelyard.core.rollout import Rollout, RolloutMode, sticky_bucket
from modelyard.core.signature import ColumnSpec, Schema, TensorSpec
from modelyard.errors import (
    InvalidInputError,
    ModelyardError,
    NotFoundError,
    PredictionError,
    RequestTimeoutError,
    UnavailableError,
)
from modelyard.serving.batcher import n_rows
from modelyard.serving.metrics import ServingMetrics
from modelyard.serving.pool import Deployment, DeploymentSpec, Loaded, ModelPool
from modelyard.serving.rollout_stats import (
    CHALLENGER,
    CHAMPION,
    SHADOW,
    Role,
    RolloutStats,
    agree,
    is_server_error,
    labels_of,
)
from modelyard.settings import ServingSettings

__all__ = ["DataPlane", "HeaderLookup", "ModelMetadata", "Prediction", "RequestTimeoutError",
           "version_of_error"]

SERVER_NAME = "modelyard"

log = logging.getLogger("modelyard.serving")

HeaderLookup = Callable[[str], str | None]
"""A request's header (REST) or metadata (gRPC) value by lower-case name; the data plane asks
only when an ``ab`` rollout is sticky by a header."""


@dataclass(slots=True)
class Prediction:
    """What an inference answered. Not frozen: one is made per request, and a frozen
    dataclass's ``__init__`` costs several times more; treat it as read-only."""

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


class _RequestIds:
    """32 hex digits, unique across processes and restarts: 64 random bits drawn once per
    process (again in a forked child), then a counter. A syscall per request
    (``os.urandom``) was 1.5% of a busy server's core; this is a format of an int."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count(int.from_bytes(os.urandom(4), "big"))

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.counter) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


new_request_id = _RequestIds()
"""A new request id (when the client sent none)."""


class DataPlane:
    """Everything a transport needs: infer, health, metadata, the model repository."""

    def __init__(self, pool: ModelPool, settings: ServingSettings,
                 metrics: ServingMetrics, sink: InferenceSink | None = None,
                 version: str = "0") -> None:
        self.pool = pool
        self.settings = settings
        self.metrics = metrics
        self.sink: InferenceSink = sink or NullSink()
        self._logging = not isinstance(self.sink, NullSink)
        """False: no record is built for a sink that drops it (the log is off)."""
        self.server_version = version
        self.rng = random.Random()
        """Draws canary (and unkeyed ab) requests; tests may seed it."""
        self._shadows: set[asyncio.Task[None]] = set()

    # -- inference -----------------------------------------------------------------------
    async def infer(self, name: str, data: Any, *, version: int | None = None,
                    request_id: str | None = None, route: str = "v2",
                    outputs: list[str] | None = None,
                    headers: HeaderLookup | None = None) -> Prediction:
        """Predict for ``data`` (named columns or one array) with model ``name``.

        ``headers`` lets an ``ab`` rollout sticky by a header read it.

        >>> await plane.infer("iris", np.array([[5.1, 3.5, 1.4, 0.2]]))  # doctest: +SKIP
        Prediction(model_name='iris', model_version=1, request_id='...', outputs={...})
        """
        if version is None and self.pool.routed:
            dep = self.pool.routed.get(name)
            if dep is not None and dep.challenger is not None:
                return await self._infer_rollout(dep, name, data, request_id or new_request_id(),
                                                 route, outputs, headers)
        started = time.perf_counter()
        arrived = time.time() if self._logging else 0.0  # only the log's records need it
        request_id = request_id or new_request_id()
        loaded = self.pool.get(name) if version is None else await self.pool.get_version(
            name, version)
        picked, _ = await self._answer(loaded, name, data, request_id, route, outputs, started,
                                       arrived)
        return Prediction(name, loaded.version.version, request_id, picked)

    async def _answer(self, loaded: Loaded, name: str, data: Any, request_id: str, route: str,
                      outputs: list[str] | None, started: float,
                      arrived: float) -> tuple[dict[str, np.ndarray], BatchRef]:
        """Validate, batch and predict with ``loaded``; record the answer (or the failure)."""
        try:
            wanted = self._wanted(loaded, outputs) if outputs else loaded.outputs
            prepared = loaded.model.prepare(data)
            # The batcher answers a request it could not predict in time with a
            # RequestTimeoutError (serving.request_timeout_s, or the deployment's timeout_s).
            try:
                batch = await loaded.batcher.enqueue(prepared, n_rows(prepared))
            except ModelyardError:
                raise
            except Exception as exc:  # the model's own code raised: a prediction error
                raise _prediction_error(loaded, exc) from exc
        except ModelyardError as exc:
            _tag(exc, loaded.version.version)
            # Failures are logged too (without outputs), so error rates come from the log.
            if self._logging:
                self.sink.emit(InferenceRecord(
                    request_id=request_id, model=name, version=loaded.version.version,
                    timestamp=arrived, inputs=None, outputs={},
                    latency_ms=(time.perf_counter() - started) * 1000.0, route=route,
                    error=type(exc).__name__))
            raise
        start, stop, every = batch.start, batch.stop, batch.outputs
        picked = {k: every[k][start:stop] for k in wanted}
        if self._logging:
            self.sink.emit(InferenceRecord(
                request_id=request_id, model=name, version=loaded.version.version,
                timestamp=arrived, inputs=prepared, outputs=picked,
                latency_ms=(time.perf_counter() - started) * 1000.0, route=route,
                batch=batch))
        return picked, batch

    # -- rollouts ----------------------------------------------------------------------------
    async def _infer_rollout(self, dep: Deployment, name: str, data: Any, request_id: str,
                             route: str, outputs: list[str] | None,
                             headers: HeaderLookup | None) -> Prediction:
        # Taken together, now: a decision may change the deployment while this request runs.
        rollout, champion, challenger, stats = (dep.rollout, dep.current, dep.challenger,
                                                dep.rollout_stats)
        if rollout is None or champion is None or challenger is None or stats is None:
            # A decision changed the deployment between the lookup and here (the pool keeps
            # ``routed`` in step, but never trust a snapshot): the champion answers.
            loaded = self.pool.get(name)
            started, arrived = time.perf_counter(), time.time()
            picked, _ = await self._answer(loaded, name, data, request_id, route, outputs,
                                           started, arrived)
            return Prediction(name, loaded.version.version, request_id, picked)
        if rollout.mode == RolloutMode.SHADOW:
            picked, batch = await self._observed(champion, CHAMPION, stats, rollout, name,
                                                 data, request_id, route, outputs)
            self._send_shadow(challenger, stats, rollout, name, data, request_id, route,
                              rows_of(batch, "predict"))
            return Prediction(name, champion.version.version, request_id, picked)
        if self._to_challenger(rollout, data, headers):
            loaded, role = challenger, CHALLENGER
        else:
            loaded, role = champion, CHAMPION
        picked, _ = await self._observed(loaded, role, stats, rollout, name, data, request_id,
                                         route, outputs)
        return Prediction(name, loaded.version.version, request_id, picked)

    def _to_challenger(self, rollout: Rollout, data: Any, headers: HeaderLookup | None) -> bool:
        if rollout.mode == RolloutMode.AB and rollout.policy.sticky is not None:
            key = sticky_key(rollout.policy.sticky, data, headers)
            if key is not None:
                return sticky_bucket(key) < rollout.weight
        return self.rng.random() < rollout.weight

    async def _observed(self, loaded: Loaded, role: Role, stats: RolloutStats,
                        rollout: Rollout, name: str, data: Any, request_id: str, route: str,
                        outputs: list[str] | None
                        ) -> tuple[dict[str, np.ndarray], BatchRef]:
        """:meth:`_answer`, counted in the rollout's statistics."""
        started = time.perf_counter()
        arrived = time.time()
        try:
            picked, batch = await self._answer(loaded, name, data, request_id, route, outputs,
                                               started, arrived)
        except Exception as exc:
            if is_server_error(exc):  # bad input says nothing about the version
                stats.observe(role, time.perf_counter() - started, error=True,
                              step=rollout.step)
                self.metrics.rollout_request(name, loaded.version.version, role)
            raise
        stats.observe(role, time.perf_counter() - started, step=rollout.step)
        self.metrics.rollout_request(name, loaded.version.version, role)
        predict = rows_of(batch, "predict")
        if predict is not None:
            stats.remember(request_id, role, predict)
        return picked, batch

    def _send_shadow(self, challenger: Loaded, stats: RolloutStats, rollout: Rollout,
                     name: str, data: Any, request_id: str, route: str,
                     champion_predict: Any) -> None:
        if len(self._shadows) >= self.settings.shadow_max_inflight:
            stats.shadow_skipped += 1
            self.metrics.shadow_skipped.labels(name).inc()
            return
        task = asyncio.get_running_loop().create_task(self._shadow(
            challenger, stats, rollout, name, data, request_id, route, champion_predict))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def _shadow(self, challenger: Loaded, stats: RolloutStats, rollout: Rollout,
                      name: str, data: Any, request_id: str, route: str,
                      champion_predict: Any) -> None:
        """The challenger's copy of a request the champion answered: logged under the same
        request id, compared, counted; its failures never reach the client."""
        started = time.perf_counter()
        arrived = time.time()
        version = challenger.version.version
        try:
            _, batch = await self._answer(challenger, name, data, request_id, route, None,
                                          started, arrived)
        except Exception:
            # Even bad input counts here: the champion took that very input.
            stats.observe(CHALLENGER, time.perf_counter() - started, error=True,
                          step=rollout.step)
            self.metrics.rollout_request(name, version, SHADOW)
            return
        stats.observe(CHALLENGER, time.perf_counter() - started, step=rollout.step)
        self.metrics.rollout_request(name, version, SHADOW)
        predict = rows_of(batch, "predict")
        if predict is not None:
            stats.remember(request_id, CHALLENGER, predict)
            if champion_predict is not None:
                stats.compare(agree(champion_predict, predict))

    async def stop_shadows(self, timeout: float) -> None:
        """Let pending shadow copies finish (up to ``timeout`` s), then cancel the rest."""
        pending = list(self._shadows)
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=timeout)
        for task in late:
            task.cancel()

    def rollout_status(self, name: str) -> dict[str, Any]:
        """The deployment's active rollout, its live statistics and the last decision (what
        ``GET /v2/models/{name}/rollout`` answers); NotFoundError when there is none."""
        dep = self.pool.deployment(name)
        rollout, stats = dep.rollout, dep.rollout_stats
        if rollout is None or stats is None:
            raise NotFoundError(
                f"Model {name!r} has no active rollout on this server.",
                hint=f"Start one: modelyard rollout start {dep.spec.ref.name} --challenger "
                     "VERSION")
        decision = dep.decision
        return {
            "name": name,
            "rollout": rollout.to_dict(),
            "challenger_loaded": dep.challenger is not None,
            "error": dep.rollout_error,
            "stats": stats.to_dict(rollout.step),
            "shadow_skipped": stats.shadow_skipped,
            "decision": None if decision is None else {
                "action": decision.action, "reason": decision.reason,
                "weight": decision.weight},
            "reason": decision.reason if decision is not None else rollout.reason,
        }

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
        stats = self.pool.deployments[name].rollout_stats
        if stats is not None:  # a rollout compares the versions' accuracy on these labels
            stats.label(*labels_of(table))
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
            entry: dict[str, Any] = {"name": name, "state": state,
                                     "reason": dep.error or dep.rollout_error or ""}
            if dep.current is not None:
                entry["version"] = str(dep.current.version.version)
                if dep.current.served_by is not None:
                    entry["served_by"] = dep.current.served_by.uri
            if dep.rollout is not None:
                entry["rollout"] = {"id": dep.rollout.id, "mode": str(dep.rollout.mode),
                                    "challenger": dep.rollout.challenger,
                                    "weight": dep.rollout.weight,
                                    "loaded": dep.challenger is not None}
            out.append(entry)
        return out

    async def load_model(self, name: str, ref: str | None = None) -> None:
        await self.pool.add(DeploymentSpec.from_ref(ref or f"models:/{name}/latest", name=name))

    async def unload_model(self, name: str) -> None:
        await self.pool.remove(name)


def rows_of(batch: BatchRef, output: str) -> np.ndarray | None:
    """A request's rows of one output of the batch it was answered in (None: no such
    output)."""
    values = batch.outputs.get(output)
    return None if values is None else values[batch.start:batch.stop]


def sticky_key(sticky: str, data: Any, headers: HeaderLookup | None) -> str | None:
    """An ``ab`` request's key: the header named by ``header:NAME``, or the first row's value
    of the input column named by ``column:NAME``; None when the request has none.

    >>> sticky_key("column:user", {"user": np.array([7, 8])}, None)
    '7'
    >>> sticky_key("header:X-User-ID", None, {"x-user-id": "u1"}.get)
    'u1'
    """
    kind, _, field = sticky.partition(":")
    if kind == "header":
        return headers(field.lower()) if headers is not None else None
    if isinstance(data, Mapping) or hasattr(data, "columns"):
        try:
            column = data[field]
        except (KeyError, IndexError, TypeError):
            return None
        values = np.asarray(column).reshape(-1)
        if values.size:
            first = values[0]
            return str(first.item() if isinstance(first, np.generic) else first)
    return None


def version_of_error(exc: BaseException) -> int | None:
    """The version that failed a request, when one had been chosen (transports answer it in
    an ``x-model-version`` header, so a client can tell a challenger's failures)."""
    version = getattr(exc, "model_version", None)
    return version if isinstance(version, int) else None


def _tag(exc: BaseException, version: int) -> None:
    exc.model_version = version  # type: ignore[attr-defined]  # read by version_of_error


def _prediction_error(loaded: Loaded, exc: Exception) -> PredictionError:
    if not loaded.reported:  # the traceback once per loaded version, not per request
        loaded.reported = True
        log.error("Model %s raised while predicting", loaded.version.uri, exc_info=exc)
    return PredictionError(
        f"Model {loaded.version.uri} raised {type(exc).__name__} while predicting: {exc}",
        hint="Check the model's predict on this input; the server log has the traceback.")
