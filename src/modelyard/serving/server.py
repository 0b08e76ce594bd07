"""Assemble a server from settings: pool, data plane, REST app, gRPC server; and run it.

``build_app`` is what tests and ``modelyard serve`` both use.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from modelyard.core.inference import InferenceSink, ManagedSink
from modelyard.serving.auth import Guard
from modelyard.serving.dataplane import DataPlane
from modelyard.serving.http.app import RestApp
from modelyard.serving.metrics import ServingMetrics
from modelyard.serving.pool import DeploymentSpec, ModelPool
from modelyard.serving.rollout_controller import RolloutController
from modelyard.serving.source import ModelSource, rollout_source
from modelyard.settings import ServingSettings

if TYPE_CHECKING:
    from modelyard.security.tls import TlsFiles

__all__ = ["Server", "build_app", "specs_from_settings"]

log = logging.getLogger("modelyard.serving")


@dataclass
class Server:
    app: RestApp
    plane: DataPlane
    pool: ModelPool
    grpc_port: int | None = None
    rollouts: RolloutController | None = None
    """Drives the rollouts of the served models (None: the source has no rollouts)."""


def specs_from_settings(settings: ServingSettings) -> list[DeploymentSpec]:
    return [
        DeploymentSpec.from_ref(
            d.model, name=d.name, batching=d.batching or settings.batching,
            replicas=d.replicas, timeout_s=d.timeout_s, prefer_onnx=d.prefer_onnx)
        for d in settings.deployments
    ]


class Background(Protocol):
    """A service that runs beside the server (the monitoring loop): started after startup,
    closed on shutdown."""

    def start(self) -> None: ...

    def close(self, timeout: float | None = None) -> None: ...


def tune_collector(young_threshold: int) -> None:
    """Garbage collection for a server whose models are loaded.

    The imported frameworks and loaded models are millions of long-lived objects; a full
    collection walking them stalls every request for tens of ms (the p99 of a busy server):
    freeze them out of the collector's reach. And raise the first threshold (see
    ``ServingSettings.gc_young_threshold``): requests in flight hold a few hundred objects
    for a moment, which at Python's 700 ran the collector ~450 times a second.
    """
    gc.collect()
    gc.freeze()
    if young_threshold:
        gc.set_threshold(young_threshold, *gc.get_threshold()[1:])


def build_app(source: ModelSource, settings: ServingSettings, *,
              sink: InferenceSink | None = None, version: str = "0",
              wait_for_models: bool = False,
              background: Sequence[Background] = (),
              tls: TlsFiles | None = None,
              guard: Guard | None = None) -> Server:
    """Wire a REST app (and, if ``settings.grpc_port`` is set, a gRPC server on the same event
    loop) around a data plane. Models load in the background after startup unless
    ``wait_for_models``; /v2/health/ready says when they are in. ``tls`` makes the gRPC port
    speak TLS (the REST app's TLS is uvicorn's: ``ssl_certfile``/``ssl_keyfile``).
    ``guard`` (:func:`modelyard.serving.auth.build_guard`) checks keys, roles and rate limits
    on every REST route and gRPC method; None leaves the server open.

    When ``source`` follows rollouts (:class:`modelyard.Client` does), the server routes each
    active rollout's traffic and a :class:`RolloutController` advances, promotes or rolls it
    back every ``settings.rollout_check_s`` from the statistics of that traffic."""
    metrics = ServingMetrics()
    pool = ModelPool(source, settings, metrics, specs_from_settings(settings))
    plane = DataPlane(pool, settings, metrics, sink=sink, version=version)
    rollouts = rollout_source(source)
    controller = None if rollouts is None else RolloutController(
        pool, rollouts, every_s=settings.rollout_check_s, metrics=metrics)
    managed = sink if isinstance(sink, ManagedSink) else None
    stats = getattr(sink, "stats", None)
    if managed is not None and stats is not None:
        metrics.watch_log(stats.as_dict, getattr(sink, "queued", lambda: 0))
    server = Server(app=None, plane=plane, pool=pool,  # type: ignore[arg-type]
                    rollouts=controller)
    grpc_state: dict[str, Any] = {}
    tasks: set[asyncio.Task[None]] = set()

    async def start_pool() -> None:
        await pool.start()
        tune_collector(settings.gc_young_threshold)

    async def startup() -> None:
        if guard is not None:
            await guard.start()
        if managed is not None:
            managed.start()
        if wait_for_models:
            await start_pool()
        else:
            task = asyncio.get_running_loop().create_task(start_pool())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        for service in background:
            service.start()
        if controller is not None:
            controller.start()
        if settings.grpc_port is not None:
            from modelyard.serving.grpc.server import start_grpc_server

            started = await start_grpc_server(plane, settings.host, settings.grpc_port,
                                              tls=tls, guard=guard)
            grpc_state["server"] = started
            server.grpc_port = started.port

    async def shutdown() -> None:
        if controller is not None:
            await controller.stop()
        if guard is not None:
            await guard.stop()
        for service in background:
            await asyncio.to_thread(service.close, settings.request_timeout_s)
        grpc_server = grpc_state.get("server")
        if grpc_server is not None:
            await grpc_server.server.stop(grace=settings.request_timeout_s)
        await plane.stop_shadows(timeout=settings.request_timeout_s)
        await pool.stop(timeout=settings.request_timeout_s)
        if managed is not None:
            # Every queued record is written before the process exits (off the loop: the
            # final flush does file or database I/O).
            await asyncio.to_thread(managed.close, settings.request_timeout_s)

    server.app = RestApp(plane, null_route=settings.null_route, on_startup=[startup],
                         on_shutdown=[shutdown], guard=guard)
    return server

