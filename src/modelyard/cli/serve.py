"""``modelyard serve``: the inference server (REST and gRPC) for one or more models."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import typer

from modelyard.cli.context import State
from modelyard.cli.render import err_console
from modelyard.core.yaml_files import read_yaml_mapping
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
    no_log: bool = typer.Option(False, "--no-log",
                                help="Do not write the inference log (no monitoring)."),
    monitor_every: str | None = typer.Option(
        None, "--monitor-every", help="Run monitoring in the server this often (5m)."),
    monitor_config: Path | None = typer.Option(
        None, "--monitor-config", help="Monitoring YAML: rules, sinks, objectives."),
    tls_cert: Path | None = typer.Option(
        None, "--tls-cert", help="PEM certificate (chain): REST and gRPC speak TLS only."),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="PEM private key of --tls-cert."),
    no_auth: bool = typer.Option(
        False, "--no-auth", help="Accept requests without API keys (loudly; see 'keys')."),
    prefer_onnx: bool = typer.Option(
        False, "--prefer-onnx",
        help="Serve scikit-learn versions through their verified ONNX export when they have "
             "one ('modelyard export onnx'): faster start, less memory."),
) -> None:
    """Serve models over Open Inference Protocol v2 (REST and gRPC), MLflow, v1 and TorchServe
    routes. The server follows aliases: when @production moves, it swaps versions live.

    Example: modelyard serve models:/fraud@production --port 8080
    """
    state: State = ctx.obj
    serving = _serving_settings(state.settings.serving, models or [], config, host=host,
                                port=port, grpc_port=grpc_port, no_grpc=no_grpc,
                                workers=workers, max_batch_size=max_batch_size,
                                max_batch_delay_ms=max_batch_delay_ms,
                                prefer_onnx=True if prefer_onnx else None)
    monitoring = state.settings.monitoring.model_copy(update={
        k: v for k, v in {"log_enabled": False if no_log else None, "every": monitor_every,
                          "config": monitor_config}.items() if v is not None})
    security = state.settings.security.model_copy(update={
        k: v for k, v in {"tls_cert": tls_cert, "tls_key": tls_key,
                          "auth": "off" if no_auth else None}.items() if v is not None})
    settings = state.settings.model_copy(update={"serving": serving, "monitoring": monitoring,
                                                 "security": security})
    _check_auth(settings)
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
    for key in ("host", "port", "grpc_port", "workers", "prefer_onnx"):
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
    doc = read_yaml_mapping(path, what="server config", contents="server options",
                            hint="Example: 'models: [models:/fraud@production]'.")
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

    from modelyard.security.tls import load_tls

    tls = load_tls(settings.security.tls_cert, settings.security.tls_key)  # fail before binding

    # uvicorn drains in-flight requests on SIGTERM, then re-raises the signal to the handler
    # that was installed before it: make that one a clean exit, so orchestrators see 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)

    serving = settings.serving
    names = ", ".join(d.model for d in serving.deployments)
    scheme, secure = ("https", " (TLS)") if tls else ("http", "")
    grpc = f", gRPC{secure} on {serving.host}:{serving.grpc_port}" if serving.grpc_port else ""
    err_console.print(f"Serving {names} on {scheme}://{serving.host}:{serving.port}{grpc}")
    common: dict[str, Any] = {
        "host": serving.host, "port": serving.port, "lifespan": "on", "access_log": False,
        "log_level": "warning", "timeout_graceful_shutdown": int(serving.request_timeout_s),
        "http": "httptools", "loop": "uvloop",
        # uvicorn's X-Forwarded-For middleware is one more coroutine per request (~3% of a
        # busy core, profiled): only behind proxies the settings name.
        "proxy_headers": bool(serving.trusted_proxies),
    }
    if serving.trusted_proxies:
        common["forwarded_allow_ips"] = ",".join(serving.trusted_proxies)
    common.update(_slow_client_limits(serving))
    if tls is not None:
        common.update(ssl_certfile=str(tls.cert_file), ssl_keyfile=str(tls.key_file))
    if serving.workers > 1:
        if tls is not None:  # paths only: each worker reads and checks the files itself
            os.environ["MODELYARD_SECURITY__TLS_CERT"] = str(tls.cert_file)
            os.environ["MODELYARD_SECURITY__TLS_KEY"] = str(tls.key_file)
        os.environ["MODELYARD_SECURITY__AUTH"] = settings.security.auth  # --no-auth too
        # Each worker process rebuilds the app from the environment.
        os.environ["MODELYARD_SERVING"] = orjson.dumps(serving.model_dump()).decode()
        os.environ["MODELYARD_MONITORING"] = orjson.dumps(
            settings.monitoring.model_dump(mode="json")).decode()
        os.environ["MODELYARD_HOME"] = str(settings.home)
        uvicorn.run("modelyard.cli.serve:app_from_environment", factory=True,
                    workers=serving.workers, **common)
        return
    server = _build(settings)
    uvicorn.run(server.app, **common)


def _slow_client_limits(serving: ServingSettings) -> dict[str, Any]:
    """uvicorn options against slow and numerous clients (docs/security-scan.md): a request
    must fully arrive within ``request_timeout_s`` or its connection is dropped; idle
    keep-alive connections close after 5 s; past ``max_queue`` requests per model (plus room
    for health checks and metrics) new requests get 503 instead of more memory."""
    from modelyard.serving.http.read_timeout import read_timeout_protocol

    return {"http": read_timeout_protocol(serving.request_timeout_s), "timeout_keep_alive": 5,
            "limit_concurrency": serving.max_queue * max(1, len(serving.deployments)) + 256,
            "backlog": 2048}


def _exit_cleanly(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def _build(settings: Settings) -> Any:
    from modelyard import __version__
    from modelyard._client import Client
    from modelyard.cli.sign import serving_source
    from modelyard.security.tls import load_tls
    from modelyard.serving.server import build_app, specs_from_settings

    client = Client(settings)
    served: dict[str, Any] = {}  # the pool, once built: the log's writer reads signatures there
    sink = None
    if settings.monitoring.log_enabled:
        from modelyard.monitoring.inference_log import open_inference_log
        from modelyard.security.encryption import keyring_from_settings

        rates = {spec.name: d.log_sample_rate
                 for spec, d in zip(specs_from_settings(settings.serving),
                                    settings.serving.deployments, strict=True)
                 if d.log_sample_rate is not None}
        uri = settings.resolved_log_uri()
        sink = open_inference_log(settings.monitoring, uri, sample_rates=rates,
                                  engine=client.store.engine if uri == "sql" else None,
                                  keyring=keyring_from_settings(settings.security),
                                  **_sensitive_options(settings, client, served))
    monitor = _monitor_loop(settings, client, sink) if settings.monitoring.every else None
    background = [] if monitor is None else [monitor]
    if settings.security.log_retention_days is not None:
        background.append(_retention_loop(settings, client))
    server = build_app(serving_source(settings, client), settings.serving, sink=sink,
                       version=__version__, background=background,
                       tls=load_tls(settings.security.tls_cert, settings.security.tls_key),
                       guard=_guard(settings, client))
    served["pool"] = server.pool
    server.app.json_limits = (settings.security.max_json_depth,
                              settings.security.max_json_elements)
    if monitor is not None:
        server.plane.metrics.watch_monitor(lambda: monitor.latest)
    return server


def _guard(settings: Settings, client: Any) -> Any:
    """API keys and rate limits (docs/security-auth.md); raises when the server must not
    start as configured (no key with auth on, or no key on a non-loopback address)."""
    from modelyard.registry.sql.key_store import SqlKeyStore
    from modelyard.serving.auth import build_guard

    return build_guard(settings.security, SqlKeyStore(client.store.engine),
                       host=settings.serving.host, refresh_s=settings.serving.alias_poll_s)


def _check_auth(settings: Settings) -> None:
    """Refuse to start before binding anything when auth is not configured as it must be;
    say loudly when it is off."""
    from modelyard._client import Client

    host = settings.serving.host
    if settings.security.auth == "off":
        err_console.print(
            f"[bold red]WARNING: authentication is OFF.[/] Anyone who can reach {host} may "
            "predict, read metadata, send feedback and load or unload models. Create keys "
            "with 'modelyard keys create' and drop --no-auth to require them.", soft_wrap=True)
    with Client(settings) as client:
        guard = _guard(settings, client)
    if guard is not None and not guard.enabled and settings.security.auth == "auto":
        err_console.print(
            f"No API key exists: serving {host} without authentication. 'modelyard keys "
            "create --name NAME --role predictor' turns it on.", soft_wrap=True, markup=False)


def _sensitive_options(settings: Settings, client: Any, served: dict[str, Any]) -> Any:
    """The inference log's sensitive columns: from the signature of the version the pool
    loaded (no I/O), else from the registry; hashed with the installation's HMAC key."""
    from modelyard.monitoring.sensitive import HMAC_KEY_FILE, SensitiveColumns, load_hmac_key

    def signature_of(name: str, version: int) -> Any:
        pool = served.get("pool")
        dep = pool.deployments.get(name) if pool is not None else None
        if dep is not None:
            for loaded in (dep.current, dep.challenger):  # a rollout's challenger logs too
                if loaded is not None and loaded.version.version == version:
                    return loaded.version.signature
        registered = dep.spec.ref.name if dep is not None else name
        return client.store.get_version(registered, version).signature

    return {"sensitive_columns": SensitiveColumns(signature_of),
            "sensitive_mode": settings.security.sensitive,
            "hmac_key": lambda: load_hmac_key(settings.home / HMAC_KEY_FILE)}


def _retention_loop(settings: Settings, client: Any) -> Any:
    """Retention inside the server: prune once at start, then daily."""
    from modelyard.cli.logs import prune_recorder
    from modelyard.monitoring.log_store import open_log_store
    from modelyard.monitoring.retention import DAY_S, RetentionLoop

    assert settings.security.log_retention_days is not None
    uri = settings.resolved_log_uri()
    store = open_log_store(uri, engine=client.store.engine if uri == "sql" else None)
    return RetentionLoop(store, older_than_s=settings.security.log_retention_days * DAY_S,
                         record=prune_recorder(settings, client, uri))


def _monitor_loop(settings: Settings, client: Any, sink: Any) -> Any:
    """Monitoring inside the server: every ``monitoring.every``, for every served model."""
    from modelyard.monitoring.log_store import open_log_store
    from modelyard.monitoring.loop import MonitorLoop
    from modelyard.monitoring.metric_store import MetricStore
    from modelyard.monitoring.monitor import load_monitor_config
    from modelyard.monitoring.windows import parse_duration
    from modelyard.security.encryption import keyring_from_settings
    from modelyard.serving.server import specs_from_settings

    assert settings.monitoring.every is not None
    config = load_monitor_config(settings.monitoring.config)
    if settings.monitoring.config is None:
        config = config.model_copy(update={"window": settings.monitoring.window})
    names = [spec.name for spec in specs_from_settings(settings.serving)]
    uri = settings.resolved_log_uri()
    logs = open_log_store(uri, engine=client.store.engine if uri == "sql" else None,
                          keyring=keyring_from_settings(settings.security))
    return MonitorLoop(lambda: names, logs=logs, source=client, config=config,
                       metrics=MetricStore(client.store.engine),
                       every_s=parse_duration(settings.monitoring.every),
                       flush=None if sink is None else sink.flush)


def app_from_environment() -> Any:
    """uvicorn factory for ``--workers N``: settings (incl. the models) come from MODELYARD_*."""
    return _build(Settings()).app
