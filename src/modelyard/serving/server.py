"""Assemble a server from settings: pool, data plane, REST app, gRPC server; and run it.

``build_app`` is what tests and ``modelyard serve`` both use.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import dataclass
from typing import Any

from modelyard.core.inference import InferenceSink
from modelyard.serving.dataplane import DataPlane
from modelyard.serving.http.app import RestApp
from modelyard.serving.metrics import ServingMetrics
from modelyard.serving.pool import DeploymentSpec, ModelPool
from modelyard.serving.source import ModelSource
from modelyard.settings import ServingSettings

__all__ = ["Server", "build_app", "specs_from_settings"]

log = logging.getLogger("modelyard.serving")


@dataclass
class Server:
    app: RestApp
    plane: DataPlane
    pool: ModelPool
    grpc_port: int | None = None


def specs_from_settings(settings: ServingSettings) -> list[DeploymentSpec]:
    return [
        DeploymentSpec.from_ref(
            d.model, name=d.name, batching=d.batching or settings.batching,
            replicas=d.replicas, timeout_s=d.timeout_s)
        for d in settings.deployments
    ]


def build_app(source: ModelSource, settings: ServingSettings, *,
              sink: InferenceSink | None = None, version: str = "0",
              wait_for_models: bool = False) -> Server:
    """Wire a REST app (and, if ``settings.grpc_port`` is set, a gRPC server on the same event
    loop) around a data plane. Models load in the background after startup unless
    ``wait_for_models``; /v2/health/ready says when they are in."""
    metrics = ServingMetrics()
    pool = ModelPool(source, settings, metrics, specs_from_settings(settings))
    plane = DataPlane(pool, settings, metrics, sink=sink, version=version)
    server = Server(app=None, plane=plane, pool=pool)  # type: ignore[arg-type]
    grpc_state: dict[str, Any] = {}
    tasks: set[asyncio.Task[None]] = set()

    async def start_pool() -> None:
        await pool.start()
        # The imported frameworks and loaded models are millions of long-lived objects; a
        # full garbage collection walking them stalls every request for tens of ms (the p99
        # of a busy server). Move them out of the collector's reach once they are loaded.
        gc.collect()
        gc.freeze()

    async def startup() -> None:
        if wait_for_models:
            await start_pool()
        else:
            task = asyncio.get_running_loop().create_task(start_pool())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if settings.grpc_port is not None:
            from modelyard.serving.grpc.server import start_grpc_server

            started = await start_grpc_server(plane, settings.host, settings.grpc_port)
            grpc_state["server"] = started
            server.grpc_port = started.port

    async def shutdown() -> None:
        grpc_server = grpc_state.get("server")
        if grpc_server is not None:
            await grpc_server.server.stop(grace=settings.request_timeout_s)
        await pool.stop(timeout=settings.request_timeout_s)

    server.app = RestApp(plane, null_route=settings.null_route, on_startup=[startup],
                         on_shutdown=[shutdown])
    return server

