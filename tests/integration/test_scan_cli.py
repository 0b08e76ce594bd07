"""``modelyard scan`` from the command line: files, registered versions, the deployment and the
installed packages; exit 1 when a finding reaches --fail-on, clear errors otherwise."""

from __future__ import annotations

import importlib.metadata
import json
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from tests.integration.cli_runner import Result, Run, run_cli

from modelyard import Client
from modelyard.settings import Settings


class _Evil:
    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, ("echo pwned",))


class Weighted:
    """A pyfunc model whose artifact is a pickle: registration copies it as it is."""

    def load(self, context: Any) -> None:
        self.directory = context.model_dir  # never opens the pickle

    def predict(self, data: Any) -> np.ndarray:
        return np.zeros(len(data), dtype=np.int64)


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line

    def _run(*args: str | Path) -> Result:
        return run_cli(capsys, *args)

    return _run


@pytest.fixture
def evil(tmp_path: Path) -> Path:
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Evil()))
    return path


# -- files -------------------------------------------------------------------------------------
def test_a_malicious_pickle_fails_the_scan(run: Run, evil: Path) -> None:
    result = run("scan", evil)
    assert result.code == 1
    assert "CRITICAL" in result.out
    assert "evil.pkl" in result.out
    assert "FAIL: 1 finding(s) at high or above" in result.out
    report = run("scan", evil, "--json")
    assert report.code == 1
    doc = report.json()
    assert doc["failed"] is True
    assert doc["counts"]["critical"] == 1
    assert doc["findings"][0]["rule"] == "pickle.dangerous-global"


@pytest.mark.parametrize(("fail_on", "code"), [("critical", 0), ("HIGH", 1), ("info", 1)],
                         ids=["critical", "high-any-case", "info"])
def test_fail_on_moves_the_bar(run: Run, tmp_path: Path, fail_on: str, code: int) -> None:
    path = tmp_path / "imports.pkl"
    path.write_bytes(b"cos\nsystem\n.")  # imported, never called: high
    assert run("scan", path, "--fail-on", fail_on).code == code


def test_a_clean_folder_passes(run: Run, tmp_path: Path) -> None:
    import skops.io as sio

    X, y = load_iris(return_X_y=True)
    sio.dump(LogisticRegression(max_iter=300).fit(X, y), tmp_path / "model.skops")
    (tmp_path / "data.pkl").write_bytes(pickle.dumps({"threshold": 0.5}))
    result = run("scan", tmp_path)
    assert result.code == 0, result.out
    assert "OK: nothing at high or above" in result.out


# -- registered versions -------------------------------------------------------------------------
@pytest.fixture
def client(tmp_path: Path) -> Any:
    with Client(Settings()) as c:  # MODELYARD_HOME is this test's own (tests/conftest.py)
        yield c


def test_a_registered_version_is_scanned_from_the_artifact_store(run: Run, client: Client,
                                                                 evil: Path) -> None:
    X, y = load_iris(return_X_y=True)
    client.register(LogisticRegression(max_iter=300).fit(X, y), "iris", alias="production")
    client.register(Weighted(), "weighted", artifacts={"weights": str(evil)})
    clean = run("scan", "models:/iris@production", "--json")
    assert clean.code == 0, clean.out
    assert clean.json()["counts"]["high"] == 0
    bad = run("scan", "models:/weighted/1", "--json")
    assert bad.code == 1
    locations = [f["location"] for f in bad.json()["findings"] if f["severity"] == "critical"]
    assert locations == ["models:/weighted/1/artifacts/weights/evil.pkl"]
    assert evil.exists()  # scanned, not loaded: nothing ran


def test_an_unknown_version_is_not_found(run: Run, client: Client) -> None:
    result = run("scan", "models:/nope/1")
    assert result.code == 3
    assert "nope" in result.err


# -- deployment --------------------------------------------------------------------------------
def test_default_deployment_passes_on_loopback(run: Run) -> None:
    result = run("scan", "--deployment", "--json")
    assert result.code == 0, result.out
    rules = {f["rule"]: f["severity"] for f in result.json()["findings"]}
    assert rules["deployment.auth-off"] == "low"
    assert rules["deployment.tls-off"] == "info"
    assert rules["deployment.encryption-off"] == "medium"
    assert run("scan", "--deployment", "--fail-on", "medium").code == 1


def test_no_auth_on_the_network_is_critical(run: Run, tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text("host: 0.0.0.0\nport: 9000\nmodels:\n  - models:/iris@production\n")
    result = run("scan", "--deployment", "--config", config, "--no-auth", "--json")
    assert result.code == 1
    rules = {f["rule"]: f["severity"] for f in result.json()["findings"]}
    assert rules["deployment.auth-off"] == "critical"
    assert rules["deployment.tls-off"] == "high"


def test_keys_and_signatures_come_from_the_registry(run: Run, client: Client,
                                                    tmp_path: Path) -> None:
    X, y = load_iris(return_X_y=True)
    client.register(LogisticRegression(max_iter=300).fit(X, y), "iris", alias="production")
    before = {f["rule"]: f for f in run("scan", "--deployment", "--json").json()["findings"]}
    assert before["deployment.unsigned-version"]["location"] == "models:/iris/1"
    assert before["deployment.auth-off"]["severity"] == "low"

    assert run("keys", "create", "--name", "ci", "--role", "predictor").code == 0
    assert run("sign", "--generate-key", tmp_path / "keys").code == 0
    assert run("sign", "models:/iris/1", "--key", tmp_path / "keys" / "private.pem").code == 0
    after = {f["rule"] for f in run("scan", "--deployment", "--json").json()["findings"]}
    assert "deployment.unsigned-version" not in after
    assert "deployment.auth-off" not in after


# -- advisories --------------------------------------------------------------------------------
@pytest.mark.parametrize(("versions", "code"), [("installed", 1), (["0.0.1"], 0)],
                         ids=["matching", "not-matching"])
def test_advisories_against_installed_packages(run: Run, tmp_path: Path, versions: Any,
                                               code: int) -> None:
    numpy_version = importlib.metadata.version("numpy")
    listed = [numpy_version] if versions == "installed" else versions
    path = tmp_path / "osv.json"
    path.write_text(json.dumps({"vulns": [{
        "id": "GHSA-0000-test", "modified": "2024-01-01T00:00:00Z", "summary": "Test advisory",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "numpy"},
                      "versions": listed}]}]}))
    result = run("scan", "--advisories", path)
    assert result.code == code, result.out
    assert ("GHSA-0000-test" in result.out) is (code == 1)


# -- usage errors ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "code", "match"),
    [((), 2, "Nothing to scan"),
     (("--config", "serve.yaml"), 2, "describe a deployment"),
     (("missing.pkl",), 3, "nothing to scan at"),
     (("x.pkl", "--fail-on", "severe"), 2, "must be one of info, low, medium, high, critical")],
    ids=["nothing", "config-without-deployment", "missing-file", "bad-fail-on"])
def test_usage_errors(run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      args: tuple[str, ...], code: int, match: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.pkl").write_bytes(pickle.dumps(1))
    result = run("scan", *args)
    assert result.code == code
    assert match in result.err
