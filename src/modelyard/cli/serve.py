"""``modelyard serve``: the inference server (REST and gRPC) for one or more models."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import typer

from modelyard.cli.context import State
from modelyard.cli.render import err_console
from modelyard.errors import InvalidInputError
from modelyard.settings import DeploymentSettings, ServingSettings, Settings

__all__ = ["app_from_environment", "serve"]


def serve(
    ctx: typer.Context,
    models: list[str] | None = typer.Argument(
        None, help="References to serve: models:/NAME@production, models:/NAME/3 ..."),
    config: Path | None = typer.Option(None, "--config", "-c",
                                       help="YAML file: server options and a 'models' list."),
    host: str | None = typer.Option(None, "--host", help="Interface (default 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="REST port (default 8080)."),
    grpc_port: int | None = typer.Option(None, "--grpc-port", help="gRPC port (default 8081)."),
    no_grpc: bool = typer.Option(False, "--no-grpc", help="Serve REST only."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Server processes."),
    max_batch_size: int | None = typer.Option(None, "--max-batch-size", min=1),
    max_batch_delay_ms: float | None = typer.Option(None, "--max-batch-delay-ms", min=0),
) -> None:
    """Serve models over Open Inference Protocol v2 (REST and gRPC), MLflow, v1 and TorchServe
    routes. The server follows aliases: when @production moves, it swaps versions live.

    Example: modelyard serve models:/fraud@production --port 8080
    """
    state: State = ctx.obj
    serving = _serving_settings(state.settings.serving, models or [], config, host=host,
                                port=port, grpc_port=grpc_port, no_grpc=no_grpc,
                                workers=workers, max_batch_size=max_batch_size,
                                max_batch_delay_ms=max_batch_delay_ms)
    settings = state.settings.model_copy(update={"serving": serving})
    _run(settings)


def _serving_settings(base: ServingSettings, refs: list[str], config: Path | None,
                      **overrides: Any) -> ServingSettings:
    data: dict[str, Any] = base.model_dump()
    if config is not None:
        data.update(_read_config(config))
    deployments = list(data.get("deployments") or [])
    deployments += [{"model": ref} for ref in refs]
    if not deployments:
        raise InvalidInputError(
            "No model to serve.",
            hint="Pass a reference (modelyard serve models:/NAME@production) or --config.")
    data["deployments"] = deployments
    for key in ("host", "port", "grpc_port", "workers"):
        if overrides.get(key) is not None:
            data[key] = overrides[key]
    if overrides.get("no_grpc"):
        data["grpc_port"] = None
    batching = dict(data.get("batching") or {})
    for key in ("max_batch_size", "max_batch_delay_ms"):
        if overrides.get(key) is not None:
            batching[key] = overrides[key]
    data["batching"] = batching
    try:
        return ServingSettings.model_validate(data)
    except ValueError as exc:
        raise InvalidInputError(f"Invalid server settings: {exc}") from None


def _read_config(path: Path) -> dict[str, Any]:
    import yaml

    if not path.exists():
        raise InvalidInputError(f"There is no config file at {str(path)!r}.")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidInputError(f"{str(path)!r} must hold a mapping of server options.")
    models = doc.pop("models", None) or []
    if not isinstance(models, list):
        raise InvalidInputError(f"'models' in {str(path)!r} must be a list.")
    doc["deployments"] = [{"model": m} if isinstance(m, str) else m for m in models]
    # Validate each entry now so a typo names the entry, not a pydantic path.
    for entry in doc["deployments"]:
        try:
            DeploymentSettings.model_validate(entry)
        except ValueError as exc:
            raise InvalidInputError(f"Invalid model entry {entry!r} in {str(path)!r}: "
                                    f"{exc}") from None
    return doc


def _run(settings: Settings) -> None:
    import signal

    import uvicorn

    # uvicorn drains in-flight requests on SIGTERM, then re-raises the signal to the handler
    # that was installed before it: make that one a clean exit, so orchestrators see 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)

    serving = settings.serving
    names = ", ".join(d.model for d in serving.deployments)
    grpc = f", gRPC on {serving.host}:{serving.grpc_port}" if serving.grpc_port else ""
    err_console.print(f"Serving {names} on http://{serving.host}:{serving.port}{grpc}")
    common: dict[str, Any] = {
        "host": serving.host, "port": serving.port, "lifespan": "on", "access_log": False,
        "log_level": "warning", "timeout_graceful_shutdown": int(serving.request_timeout_s),
        "http": "httptools", "loop": "uvloop",
    }
    if serving.workers > 1:
        # Each worker process rebuilds the app from the environment.
        os.environ["MODELYARD_SERVING"] = orjson.dumps(serving.model_dump()).decode()
        os.environ["MODELYARD_HOME"] = str(settings.home)
        uvicorn.run("modelyard.cli.serve:app_from_environment", factory=True,
                    workers=serving.workers, **common)
        return
    server = _build(settings)
    uvicorn.run(server.app, **common)


def _exit_cleanly(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def _build(settings: Settings) -> Any:
    from modelyard import __version__
    from modelyard._client import Client
    from modelyard.serving.server import build_app

    return build_app(Client(settings), settings.serving, version=__version__)


def app_from_environment() -> Any:
    """uvicorn factory for ``--workers N``: settings (incl. the models) come from MODELYARD_*."""
    return _build(Settings()).app
