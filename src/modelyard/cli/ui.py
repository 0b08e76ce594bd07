"""``modelyard ui``: the web dashboard (docs/dashboard.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from modelyard.cli.context import State
from modelyard.cli.render import err_console
from modelyard.settings import Settings

__all__ = ["build_dashboard", "ui"]


def ui(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind."),
    port: int = typer.Option(8090, "--port", help="Port."),
    config: Path | None = typer.Option(
        None, "--config", "-c",
        help="Monitoring YAML for the live reports (rules, objectives); default: "
             "monitoring.config."),
    tls_cert: Path | None = typer.Option(
        None, "--tls-cert", help="PEM certificate (chain): the dashboard speaks HTTPS only."),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="PEM private key of --tls-cert."),
    no_auth: bool = typer.Option(
        False, "--no-auth", help="Open the pages without API keys (loudly; see 'keys')."),
) -> None:
    """Open the web dashboard: models, versions, aliases, rollouts, retraining runs,
    monitoring trends, live monitoring reports and the audit log, read-only.

    With API keys, a browser asks for a user name and password: any user name, and a key
    (role viewer or above; admin for the audit log) as the password.

    Example: modelyard ui --port 8090
    """
    import uvicorn

    from modelyard.security.tls import load_tls

    state: State = ctx.obj
    security = state.settings.security
    if no_auth:
        security = security.model_copy(update={"auth": "off"})
    settings = state.settings.model_copy(update={"security": security})
    tls = load_tls(tls_cert or security.tls_cert, tls_key or security.tls_key)  # before binding
    app = build_dashboard(settings, host=host, config=config)
    if settings.security.auth == "off":
        err_console.print(f"[bold red]WARNING: authentication is OFF.[/] Anyone who can reach "
                          f"{host} may read every model, rollout and monitoring result.")
    scheme = "https" if tls else "http"
    err_console.print(f"Dashboard on {scheme}://{host}:{port}/")
    extra: dict[str, Any] = {}
    if tls is not None:
        extra = {"ssl_certfile": str(tls.cert_file), "ssl_keyfile": str(tls.key_file)}
    uvicorn.run(app, host=host, port=port, lifespan="on", access_log=False,
                log_level="warning", proxy_headers=False, **extra)


def build_dashboard(settings: Settings, *, host: str, config: Path | None = None) -> Any:
    """The dashboard app for ``settings``; refuses (ConfigurationError) a non-loopback
    ``host`` without API keys, like the inference server."""
    from modelyard import __version__
    from modelyard._client import Client
    from modelyard.monitoring.log_store import open_log_store
    from modelyard.monitoring.monitor import load_monitor_config
    from modelyard.registry.sql.key_store import SqlKeyStore
    from modelyard.security.encryption import keyring_from_settings
    from modelyard.serving.auth import build_guard
    from modelyard.web.app import DashboardApp
    from modelyard.web.views import Dashboard

    client = Client(settings)
    try:
        guard = build_guard(settings.security, SqlKeyStore(client.store.engine), host=host)
        uri = settings.resolved_log_uri()
        logs = open_log_store(uri, engine=client.store.engine if uri == "sql" else None,
                              keyring=keyring_from_settings(settings.security))
        path = config or settings.monitoring.config
        monitor = load_monitor_config(path)
    except BaseException:
        client.close()
        raise
    if path is None:
        monitor = monitor.model_copy(update={"window": settings.monitoring.window})
    return DashboardApp(Dashboard(client, logs, monitor), guard=guard, version=__version__)
