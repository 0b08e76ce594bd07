"""``modelyard scan``: model files, a registered version, a serving configuration and the
installed packages, inspected without loading anything; exit 1 on serious findings.

Exit codes: 0 when no finding reaches ``--fail-on`` (``high`` by default), 1 when one does,
and the usual error codes (2 bad usage, 3 not found...) when the scan itself cannot run.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from modelyard.cli.context import State
from modelyard.cli.render import console, print_json
from modelyard.errors import InvalidInputError, ModelyardError, StoreUnavailableError
from modelyard.security.findings import SEVERITIES, Finding, at_least, parse_severity, sort

if TYPE_CHECKING:
    from modelyard._client import Client
    from modelyard.security.deployment import DeploymentFacts
    from modelyard.settings import Settings

__all__ = ["scan"]

_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan",
          "info": "dim"}


def scan(
    ctx: typer.Context,
    target: str | None = typer.Argument(
        None, help="models:/NAME/VERSION (or @ALIAS), or a model file or folder."),
    deployment: bool = typer.Option(
        False, "--deployment", help="Check the serving configuration's weak points."),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="With --deployment: the serve YAML to check."),
    host: str | None = typer.Option(
        None, "--host", help="With --deployment: the address 'serve' would bind."),
    tls_cert: Path | None = typer.Option(None, "--tls-cert",
                                         help="With --deployment: as for 'serve'."),
    tls_key: Path | None = typer.Option(None, "--tls-key",
                                        help="With --deployment: as for 'serve'."),
    no_auth: bool = typer.Option(False, "--no-auth", help="With --deployment: as for 'serve'."),
    advisories: Path | None = typer.Option(
        None, "--advisories",
        help="OSV advisories (JSON file, folder or zip): check the installed packages."),
    fail_on: str = typer.Option(
        "high", "--fail-on", help=f"Exit 1 at this severity or above ({', '.join(SEVERITIES)})."),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Find what could hurt before it runs: pickles that reach os.system, skops types nobody
    trusted, ONNX files reading outside their folder, unsafe archives, a server without
    authentication or TLS, installed packages with known vulnerabilities.

    Example: modelyard scan models:/fraud/3 && modelyard scan --deployment --advisories osv.zip
    """
    state: State = ctx.obj
    floor = parse_severity(fail_on)
    if not deployment and any(v for v in (config, host, tls_cert, tls_key, no_auth)):
        raise InvalidInputError("--config, --host, --tls-cert, --tls-key and --no-auth describe "
                                "a deployment.", hint="Add --deployment.")
    if target is None and not deployment and advisories is None:
        raise InvalidInputError(
            "Nothing to scan.",
            hint="Pass a file, folder or models:/NAME/VERSION, or --deployment, or "
                 "--advisories osv.json.")
    findings: list[Finding] = []
    scanned: list[str] = []
    if target is not None:
        findings += _scan_target(state, target)
        scanned.append(target)
    if deployment:
        settings = _deployment_settings(state.settings, config, host=host, tls_cert=tls_cert,
                                        tls_key=tls_key, no_auth=no_auth)
        from modelyard.security.deployment import check_deployment

        findings += check_deployment(settings, _facts(state, settings))
        scanned.append("deployment")
    if advisories is not None:
        from modelyard.security.advisories import check_installed, load_advisories

        findings += check_installed(load_advisories(advisories))
        scanned.append("installed packages")
    findings = sort(findings)
    failing = at_least(findings, floor)
    _render(findings, scanned, floor, failing, json=json)
    if failing:
        raise typer.Exit(1)


def _scan_target(state: State, target: str) -> list[Finding]:
    from modelyard.security.scan import scan_path

    if not target.startswith("models:/"):
        return scan_path(Path(target))
    client = state.client()
    version = client.resolve(target)
    with tempfile.TemporaryDirectory(prefix="modelyard-scan-") as tmp:
        # Fetched (verified, decrypted) to a private folder and read there, never loaded.
        client.artifacts.fetch_tree(version.artifact_digest, tmp)
        found = scan_path(Path(tmp))
    return [Finding(f.severity, f.rule, f"{version.uri}/{f.location}", f.message, f.hint)
            for f in found]


def _deployment_settings(base: Settings, config: Path | None, **flags: Any) -> Settings:
    """The settings 'modelyard serve' would run with: environment, then the YAML's server
    options, then the flags."""
    serving: dict[str, Any] = base.serving.model_dump()
    if config is not None:
        from modelyard.cli.serve import _read_config

        serving.update(_read_config(config))
    if flags.get("host") is not None:
        serving["host"] = flags["host"]
    security = {k: v for k, v in {"tls_cert": flags.get("tls_cert"),
                                  "tls_key": flags.get("tls_key"),
                                  "auth": "off" if flags.get("no_auth") else None}.items()
                if v is not None}
    try:
        return base.model_copy(update={
            "serving": type(base.serving).model_validate(serving),
            "security": base.security.model_copy(update=security)})
    except ValueError as exc:
        raise InvalidInputError(f"Invalid server settings: {exc}") from None


def _facts(state: State, settings: Settings) -> DeploymentFacts:
    """Live API keys and the signatures of served versions, from the registry database."""
    from modelyard.security.deployment import DeploymentFacts

    url = settings.resolved_database_url()
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return DeploymentFacts(live_keys=0)  # no registry yet: no key, no version
    try:
        return _registry_facts(state.client(), settings)
    except StoreUnavailableError as exc:
        return DeploymentFacts(registry_problem=f"The registry could not be read ({exc.message}); "
                               "API keys and signatures were not checked.")


def _registry_facts(client: Client, settings: Settings) -> DeploymentFacts:
    from sqlalchemy import and_, func, inspect, or_, select

    from modelyard.registry.sql.schema import aliases, registered_models
    from modelyard.registry.sql.security_tables import api_keys, version_signatures
    from modelyard.security.deployment import DeploymentFacts, ServedVersion

    engine = client.store.engine
    tables = set(inspect(engine).get_table_names())
    live = None
    wanted: dict[tuple[str, int], str] = {}
    for dep in settings.serving.deployments:
        try:
            version = client.resolve(dep.model)
        except ModelyardError:
            continue  # serve reports a reference that does not resolve
        wanted.setdefault((version.name, version.version), f"served as {dep.model}")
    with engine.connect() as conn:
        if "api_keys" in tables:
            now = time.time()
            live = int(conn.execute(select(func.count()).select_from(api_keys).where(
                api_keys.c.revoked_at.is_(None),
                or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > now))).scalar_one())
        rows = conn.execute(
            select(registered_models.c.name, aliases.c.version)
            .join(aliases, aliases.c.model_id == registered_models.c.id)
            .where(aliases.c.alias == "production")).all()
        for name, number in rows:
            wanted.setdefault((name, int(number)), "the production alias")
        signed: set[tuple[str, int]] = set()
        if "version_signatures" in tables and wanted:
            for name, number in wanted:
                hit = conn.execute(select(version_signatures.c.key_id).where(and_(
                    version_signatures.c.model == name,
                    version_signatures.c.version == number)).limit(1)).first()
                if hit is not None:
                    signed.add((name, number))
    versions = [ServedVersion(f"models:/{name}/{number}", why, (name, number) in signed)
                for (name, number), why in sorted(wanted.items())]
    return DeploymentFacts(live_keys=live, versions=versions)


def _render(findings: list[Finding], scanned: list[str], floor: str, failing: list[Finding],
            *, json: bool) -> None:
    counts = {s: sum(f.severity == s for f in findings) for s in reversed(SEVERITIES)}
    if json:
        print_json({"scanned": scanned, "fail_on": floor, "failed": bool(failing),
                    "counts": counts, "findings": [f.as_dict() for f in findings]})
        return
    shown = [f for f in findings if f.severity != "info"]
    if shown:
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"Scan of {', '.join(scanned)}", title_justify="left",
                      show_lines=True)
        table.add_column("Severity", no_wrap=True)
        table.add_column("Where", overflow="fold", max_width=32)
        table.add_column("Finding", ratio=1, overflow="fold")
        for f in shown:
            # Text, not markup: messages quote file names and member paths.
            finding = Text(f.message)
            if f.hint:
                finding.append(f"\n→ {f.hint}", style="dim")
            finding.append(f"\n[{f.rule}]", style="dim")
            table.add_row(Text(f.severity.upper(), style=_STYLE[f.severity]),
                          Text(f.location), finding)
        console.print(table)
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    verdict = (f"[bold red]FAIL[/]: {len(failing)} finding(s) at {floor} or above"
               if failing else f"[green]OK[/]: nothing at {floor} or above")
    console.print(f"{verdict} ({summary or 'no findings'}; info findings: --json).",
                  soft_wrap=True, highlight=False)
