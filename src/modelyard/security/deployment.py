"""The weak points of a serving configuration: ``modelyard scan --deployment``.

Pure: the settings, plus the few facts only the registry knows (how many API keys are live,
which served versions are signed), in; findings out. The CLI gathers the facts.

Severities depend on the bind address. On a loopback address only this machine's users and
processes can call the server, so missing authentication or TLS is a small risk there
(``low`` / ``info``); bound to any other address the same settings expose every route to the
network:

| weak point | loopback | network |
|---|---|---|
| ``security.auth=off`` | low | critical |
| ``auto`` and no API key | low | high (``serve`` refuses to start) |
| ``on`` and no API key | high (``serve`` refuses to start) | high |
| no TLS | info | high |
| TLS key file readable by others | medium | medium |
| no rate limit | info | low |
| bound to the network | - | low |
| signatures not required | low | low |
| a served or production version without signature | medium (high if required) | same |
| ``require_signed`` without trusted keys | high | high |
| no encryption at rest | medium | medium |
| encryption key file readable by others | high | high |
| no log retention period | low | low |

>>> from modelyard.settings import Settings
>>> findings = check_deployment(Settings(), DeploymentFacts(live_keys=0))
>>> max(findings, key=lambda f: rank(f.severity)).severity
'medium'
"""

from __future__ import annotations

import ipaddress
import stat
from dataclasses import dataclass, field
from pathlib import Path

from modelyard.security.findings import Finding, Severity, rank
from modelyard.settings import Settings

__all__ = ["DeploymentFacts", "ServedVersion", "check_deployment", "is_loopback"]


@dataclass(frozen=True, slots=True)
class ServedVersion:
    """A version the configuration serves (or the production alias points to)."""

    uri: str
    why: str
    signed: bool


@dataclass(frozen=True, slots=True)
class DeploymentFacts:
    """What the registry says. None: not known (no registry yet, or unreachable)."""

    live_keys: int | None = None
    versions: list[ServedVersion] = field(default_factory=list)
    registry_problem: str | None = None


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only (the same rule as the server's).

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name may resolve to anything


def _readable_by_others(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH))
    except OSError:
        return False


def check_deployment(settings: Settings, facts: DeploymentFacts) -> list[Finding]:
    """Findings for serving with ``settings`` (see the module docstring for severities)."""
    security, serving = settings.security, settings.serving
    host = serving.host
    local = is_loopback(host)
    where = f"serving.host={host}"
    out: list[Finding] = []

    def add(severity: Severity, rule: str, location: str, message: str, hint: str) -> None:
        out.append(Finding(severity, rule, location, message, hint))

    create = "Create one with 'modelyard keys create --name NAME --role predictor'."
    if security.auth == "off":
        add("low" if local else "critical", "deployment.auth-off", "security.auth",
            f"Authentication is off: anyone who can reach {host} may predict, read metadata, "
            "send feedback and load or unload models"
            + (" (on loopback: the users and processes of this machine)." if local else "."),
            "Set security.auth to auto or on and create API keys.")
    elif facts.live_keys == 0:
        if security.auth == "on":
            add("high", "deployment.will-not-start", "security.auth",
                "security.auth is 'on' but no API key exists: 'modelyard serve' refuses to "
                "start.", create)
        elif local:
            add("low", "deployment.auth-off", "security.auth",
                f"No API key exists, so the server on {host} runs without authentication; "
                "every local user and process may call every route.", create)
        else:
            add("high", "deployment.will-not-start", "security.auth",
                f"No API key exists and the server binds {host}: 'modelyard serve' refuses to "
                "start rather than serve the network without authentication.", create)

    tls = security.tls_cert is not None and security.tls_key is not None
    if not tls:
        add("info" if local else "high", "deployment.tls-off", "security.tls_cert",
            "TLS is off: API keys, inputs and predictions cross the connection in clear"
            + (" (loopback: they never leave this machine)." if local else "."),
            "Pass --tls-cert and --tls-key (or terminate TLS in a proxy you trust).")
    elif security.tls_key is not None and _readable_by_others(security.tls_key):
        add("medium", "deployment.key-file-mode", str(security.tls_key),
            "The TLS private key is readable by other users of this machine.",
            f"chmod 600 {security.tls_key}")

    if not local:
        add("low", "deployment.network-bind", where,
            f"The server binds {host}, reachable from the network.",
            "Keep a firewall or an ingress in front of it; bind 127.0.0.1 when a local proxy "
            "is the only client.")
    if security.rate_limit_per_s is None:
        add("info" if local else "low", "deployment.no-rate-limit", "security.rate_limit_per_s",
            "No per-key rate limit: one client may use all of the server's capacity.",
            "Set security.rate_limit_per_s (and rate_limit_burst).")

    if not security.require_signed:
        add("low", "deployment.signatures-not-required", "security.require_signed",
            "Versions are served without checking their signatures.",
            "Sign versions ('modelyard sign') and set security.require_signed with "
            "security.trusted_keys.")
    elif not security.trusted_keys:
        add("high", "deployment.will-not-start", "security.trusted_keys",
            "security.require_signed is on but no trusted key is configured: no version can "
            "be served.", "List the signers' public keys in security.trusted_keys.")
    for version in facts.versions:
        if not version.signed:
            add("high" if security.require_signed else "medium", "deployment.unsigned-version",
                version.uri,
                f"{version.uri} ({version.why}) has no signature"
                + ("; the server will refuse to serve it." if security.require_signed else "."),
                f"Sign it: modelyard sign {version.uri} --key KEY")

    if security.encryption_key is None and security.encryption_key_file is None:
        add("medium", "deployment.encryption-off", "security.encryption_key",
            "Encryption at rest is off: artifacts and inference logs are stored in clear.",
            "Set MODELYARD_SECURITY__ENCRYPTION_KEY or security.encryption_key_file "
            "(then 'modelyard security rotate-key' encrypts what is stored).")
    elif security.encryption_key_file is not None and _readable_by_others(
            security.encryption_key_file):
        add("high", "deployment.key-file-mode", str(security.encryption_key_file),
            "The encryption key file is readable by other users of this machine.",
            f"chmod 600 {security.encryption_key_file}")
    if security.log_retention_days is None:
        add("low", "deployment.no-retention", "security.log_retention_days",
            "No retention period: inference logs (inputs, which may be personal data) are "
            "kept forever.", "Set security.log_retention_days.")
    if facts.registry_problem is not None:
        add("medium", "deployment.registry-unchecked", "registry", facts.registry_problem,
            "Run the scan where the registry database is reachable.")
    return sorted(out, key=lambda f: -rank(f.severity))
