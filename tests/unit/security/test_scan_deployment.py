"""check_deployment: the weak points of a serving configuration, severities by bind address."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from modelyard.security.deployment import (
    DeploymentFacts,
    ServedVersion,
    check_deployment,
    is_loopback,
)
from modelyard.security.findings import Finding
from modelyard.settings import SecuritySettings, ServingSettings, Settings


def _settings(tmp_path: Path, host: str = "127.0.0.1", **security: Any) -> Settings:
    return Settings(home=tmp_path, serving=ServingSettings(host=host),
                    security=SecuritySettings(**security))


def _by_rule(findings: list[Finding]) -> dict[str, str]:
    return {f.rule: f.severity for f in findings}


@pytest.fixture
def hardened(tmp_path: Path) -> dict[str, Any]:
    files = {}
    for name in ("cert.pem", "key.pem", "signer.pub", "enc.key"):
        files[name] = tmp_path / name
        files[name].write_text("x")
        files[name].chmod(0o600)
    return {"auth": "on", "tls_cert": files["cert.pem"], "tls_key": files["key.pem"],
            "rate_limit_per_s": 100.0, "require_signed": True,
            "trusted_keys": [files["signer.pub"]],
            "encryption_key": base64.b64encode(b"k" * 32).decode(),
            "log_retention_days": 30}


CASES = [
    # (label, host, security settings, live keys, {rule: severity} expected among the findings)
    ("default-loopback", "127.0.0.1", {}, 0,
     {"deployment.auth-off": "low", "deployment.tls-off": "info",
      "deployment.encryption-off": "medium", "deployment.no-retention": "low"}),
    ("auth-off-loopback", "localhost", {"auth": "off"}, 3, {"deployment.auth-off": "low"}),
    ("auth-off-network", "0.0.0.0", {"auth": "off"}, 3,
     {"deployment.auth-off": "critical", "deployment.tls-off": "high",
      "deployment.network-bind": "low"}),
    ("auto-no-key-network", "10.1.2.3", {}, 0, {"deployment.will-not-start": "high"}),
    ("on-no-key", "127.0.0.1", {"auth": "on"}, 0, {"deployment.will-not-start": "high"}),
    ("auto-with-keys-network", "0.0.0.0", {}, 2,
     {"deployment.tls-off": "high", "deployment.no-rate-limit": "low"}),
    ("signed-required-no-trust", "127.0.0.1", {"require_signed": True}, 1,
     {"deployment.will-not-start": "high"}),
]


@pytest.mark.parametrize(("label", "host", "security", "keys", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_weak_points(tmp_path: Path, label: str, host: str, security: dict[str, Any],
                     keys: int, expected: dict[str, str]) -> None:
    findings = check_deployment(_settings(tmp_path, host, **security),
                                DeploymentFacts(live_keys=keys))
    rules = _by_rule(findings)
    assert {r: rules.get(r) for r in expected} == expected
    if label in ("auth-off-loopback", "auto-with-keys-network"):
        assert "deployment.will-not-start" not in rules


def test_default_loopback_config_has_nothing_high(tmp_path: Path) -> None:
    findings = check_deployment(_settings(tmp_path), DeploymentFacts(live_keys=0))
    assert max(findings, key=lambda f: ["info", "low", "medium", "high",
                                        "critical"].index(f.severity)).severity == "medium"


def test_hardened_config_has_no_findings_but_the_network_bind(tmp_path: Path,
                                                              hardened: dict[str, Any]) -> None:
    facts = DeploymentFacts(live_keys=2, versions=[
        ServedVersion("models:/fraud/3", "the production alias", signed=True)])
    findings = check_deployment(_settings(tmp_path, "0.0.0.0", **hardened), facts)
    assert [(f.severity, f.rule) for f in findings] == [("low", "deployment.network-bind")]


@pytest.mark.parametrize(("required", "severity"), [(False, "medium"), (True, "high")],
                         ids=["not-required", "required"])
def test_unsigned_versions(tmp_path: Path, hardened: dict[str, Any], required: bool,
                           severity: str) -> None:
    facts = DeploymentFacts(live_keys=1, versions=[
        ServedVersion("models:/fraud/4", "served as models:/fraud@production", signed=False)])
    findings = check_deployment(
        _settings(tmp_path, **{**hardened, "require_signed": required}), facts)
    unsigned = [f for f in findings if f.rule == "deployment.unsigned-version"]
    assert [(f.severity, f.location) for f in unsigned] == [(severity, "models:/fraud/4")]
    assert unsigned[0].hint == "Sign it: modelyard sign models:/fraud/4 --key KEY"


@pytest.mark.parametrize(("setting", "severity"),
                         [("tls_key", "medium"), ("encryption_key_file", "high")])
def test_key_files_readable_by_others(tmp_path: Path, hardened: dict[str, Any], setting: str,
                                      severity: str) -> None:
    key = tmp_path / f"{setting}.pem"
    key.write_text("x")
    key.chmod(0o644)
    security = {**hardened, setting: key}
    if setting == "encryption_key_file":
        security["encryption_key"] = None
    findings = check_deployment(_settings(tmp_path, **security), DeploymentFacts(live_keys=1))
    assert [(f.severity, f.rule, f.location) for f in findings] == [
        (severity, "deployment.key-file-mode", str(key))]


def test_an_unreadable_registry_is_reported(tmp_path: Path) -> None:
    findings = check_deployment(_settings(tmp_path),
                                DeploymentFacts(registry_problem="The registry is down."))
    assert _by_rule(findings)["deployment.registry-unchecked"] == "medium"


@pytest.mark.parametrize(("host", "loopback"),
                         [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True),
                          ("[::1]", True), ("localhost", True), ("0.0.0.0", False),
                          ("::", False), ("192.168.1.4", False), ("example.com", False)])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
