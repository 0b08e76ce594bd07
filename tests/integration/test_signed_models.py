"""Signed model versions end to end: sign, verify and audit through the Client and the CLI;
every way to tamper (an untrusted key, a signature moved to another version, a replaced or
changed artifact) refused; and a server with ``require_signed`` that refuses an unsigned
version and keeps the signed one serving when an alias moves to an unsigned one.

The registry (three versions of an iris model) is built once per module; each test works on
its own copy of it.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sqlalchemy import insert, select, update

from modelyard import Client
from modelyard.cli.main import main
from modelyard.cli.sign import serving_source
from modelyard.errors import (
    ConfigurationError,
    ConflictError,
    IntegrityError,
    UnsafeModelError,
)
from modelyard.registry.sql.audit import SqlAuditLog
from modelyard.registry.sql.schema import model_versions, registered_models
from modelyard.registry.sql.security_tables import version_signatures
from modelyard.registry.sql.signature_store import SqlSignatureStore
from modelyard.security.signing import (
    KeyFiles,
    generate_key_pair,
    load_private_key,
    sign_version,
)
from modelyard.serving.server import build_app
from modelyard.settings import DeploymentSettings, SecuritySettings, ServingSettings, Settings
from modelyard.testing.server import running_server

pytestmark = pytest.mark.timeout(60)

WAIT_S = 10.0


@dataclass(frozen=True)
class Template:
    home: Path
    trusted: KeyFiles
    stranger: KeyFiles
    X: np.ndarray


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    root = tmp_path_factory.mktemp("signed")
    home = root / "home"
    X, y = load_iris(return_X_y=True)
    X = np.asarray(X, dtype=np.float64)
    with Client(Settings(home=home, user="tester")) as client:
        for c in (1.0, 0.1, 0.01):  # versions 1-3, each with its own content
            client.register(LogisticRegression(C=c, max_iter=500).fit(X, y), "iris", data=X)
        client.set_alias("iris", "production", 1)
    # The client is closed: the SQLite file is complete and can be copied.
    return Template(home, generate_key_pair(root / "trusted"),
                    generate_key_pair(root / "stranger"), X)


@dataclass
class Yard:
    settings: Settings
    client: Client
    trusted: KeyFiles
    stranger: KeyFiles
    X: np.ndarray


@pytest.fixture
def yard(template: Template, tmp_path: Path) -> Iterator[Yard]:
    home = tmp_path / "home"
    shutil.copytree(template.home, home)
    settings = Settings(home=home, user="tester")
    with Client(settings) as client:
        yield Yard(settings, client, template.trusted, template.stranger, template.X)


def _digest(yard: Yard, version: int) -> str:
    return yard.client.get_version("iris", version).artifact_digest


def _set_digest(yard: Yard, version: int, digest: str) -> None:
    """A database edit: point a version at other content."""
    with yard.client.store.engine.begin() as conn:
        model_id = conn.execute(select(registered_models.c.id)
                                .where(registered_models.c.name == "iris")).scalar_one()
        conn.execute(update(model_versions)
                     .where(model_versions.c.model_id == model_id,
                            model_versions.c.version == version)
                     .values(artifact_digest=digest))


# -- sign, verify, audit ------------------------------------------------------------------------


def test_sign_verify_and_audit(yard: Yard) -> None:
    sig = yard.client.sign("models:/iris/1", yard.trusted.private_key)
    assert (sig.uri, sig.key_id, sig.digest, sig.signed_by) == (
        "models:/iris/1", yard.trusted.key_id, _digest(yard, 1), "tester")
    assert yard.client.verify("models:/iris/1", [yard.trusted.public_key]) == sig
    # An alias resolves to the version it points to.
    assert yard.client.verify("models:/iris@production", [yard.trusted.public_key]) == sig
    assert yard.client.signatures("models:/iris/1") == [sig]
    assert yard.client.signatures("models:/iris/2") == []

    again = yard.client.sign("models:/iris/1", yard.trusted.private_key)
    assert yard.client.signatures("models:/iris/1") == [again]  # replaced, not added
    entries = SqlAuditLog(yard.client.store.engine).entries(action="version.sign")
    assert [(e.actor, e.target, e.model) for e in entries] == [
        ("tester", "models:/iris/1", "iris")] * 2
    summary = {"key_id": yard.trusted.key_id, "digest": sig.digest, "signed_by": "tester"}
    assert (entries[0].before, entries[0].after) == (None, summary)
    assert (entries[1].before, entries[1].after) == (summary, summary)
    assert SqlAuditLog(yard.client.store.engine).verify().ok


def test_signatures_on_each_database(client: Client, template: Template,
                                     tmp_path: Path) -> None:
    """Sign, re-sign and verify on SQLite and on PostgreSQL (``client`` is parametrized)."""
    X, y = load_iris(return_X_y=True)
    client.register(LogisticRegression(max_iter=500).fit(X, y), "iris", data=X)
    first = client.sign("models:/iris/1", template.trusted.private_key)
    second = client.sign("models:/iris/1", template.trusted.private_key)
    client.sign("models:/iris/1", template.stranger.private_key)
    assert sorted(s.key_id for s in client.signatures("models:/iris/1")) == sorted(
        [template.trusted.key_id, template.stranger.key_id])
    assert client.verify("models:/iris/1", [template.trusted.public_key]) == second
    assert first.signed_at <= second.signed_at
    entries = SqlAuditLog(client.store.engine).entries(model="iris", action="version.sign")
    assert [e.after["key_id"] for e in entries] == [template.trusted.key_id] * 2 + [
        template.stranger.key_id]
    third = generate_key_pair(tmp_path / "third")
    with pytest.raises(UnsafeModelError, match="signed only by untrusted key"):
        client.verify("models:/iris/1", [third.public_key])


def test_verify_reads_trusted_keys_from_settings(yard: Yard) -> None:
    yard.client.sign("models:/iris/1", yard.trusted.private_key)
    security = SecuritySettings(trusted_keys=[yard.trusted.public_key])
    with Client(yard.settings.model_copy(update={"security": security})) as client:
        assert client.verify("models:/iris/1").key_id == yard.trusted.key_id
    with pytest.raises(ConfigurationError, match="No trusted public key is configured"):
        yard.client.verify("models:/iris/1")


def _untrusted(yard: Yard) -> None:
    yard.client.sign("models:/iris/2", yard.stranger.private_key)


def _moved(yard: Yard) -> None:
    """Version 2 gets version 1's content and a copy of version 1's signature row: only the
    version number in the signed statement tells them apart."""
    yard.client.sign("models:/iris/1", yard.trusted.private_key)
    _set_digest(yard, 2, _digest(yard, 1))
    with yard.client.store.engine.begin() as conn:
        row = conn.execute(select(version_signatures)
                           .where(version_signatures.c.version == 1)).one()
        conn.execute(insert(version_signatures).values({**row._asdict(), "version": 2}))


def _replaced(yard: Yard) -> None:
    """Version 2 is signed, then pointed at version 3's content."""
    yard.client.sign("models:/iris/2", yard.trusted.private_key)
    _set_digest(yard, 2, _digest(yard, 3))


@pytest.mark.parametrize(
    ("tamper", "error", "match"),
    [
        (lambda yard: None, UnsafeModelError,
         r"^models:/iris/2 has no signature by a trusted key \(it is not signed\)"),
        (_untrusted, UnsafeModelError, r"signed only by untrusted key\(s\) "),
        (_moved, IntegrityError,
         r"^The signature of models:/iris/2 by trusted key \w+ is not valid: it does not "
         r"verify for this model and version"),
        (_replaced, IntegrityError,
         r"it signs content \w{12} but the version holds \w{12}: its artifact was replaced"),
    ],
    ids=["unsigned", "untrusted-key", "moved-from-version-1", "artifact-replaced"],
)
def test_tampering_is_refused(yard: Yard, tamper: Callable[[Yard], None],
                              error: type[Exception], match: str) -> None:
    tamper(yard)
    with pytest.raises(error, match=match):
        yard.client.verify("models:/iris/2", [yard.trusted.public_key])


def test_a_signature_cannot_be_stored_for_other_content(yard: Yard) -> None:
    # The store re-checks the version's content inside its transaction.
    sig = sign_version(load_private_key(yard.trusted.private_key), model="iris", version=2,
                       digest=_digest(yard, 1), signed_by="tester")
    with pytest.raises(ConflictError, match=r"holds \w{12}; it was not stored"):
        SqlSignatureStore(yard.client.store.engine).add(sig)
    assert yard.client.signatures("models:/iris/2") == []


# -- the command line -----------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(yard: Yard, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    monkeypatch.setenv("MODELYARD_HOME", str(yard.settings.home))
    monkeypatch.setenv("MODELYARD_USER", "tester")

    def run(*args: str) -> Run:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def _one_error_line(run: Run) -> str:
    lines = run.err.strip().splitlines()
    assert len(lines) == 2, run.err
    assert lines[0].startswith("Error: ")
    assert lines[1].startswith("Hint: ")
    return " ".join(lines)


def test_cli_generate_sign_verify(cli: Callable[..., Run], tmp_path: Path) -> None:
    made = cli("sign", "--generate-key", tmp_path / "keys")
    assert made.code == 0
    private, public = tmp_path / "keys" / "private.pem", tmp_path / "keys" / "public.pem"
    assert private.stat().st_mode & 0o777 == 0o600
    key_id = made.out.split()[1].rstrip(":")
    assert len(key_id) == 16
    assert "PRIVATE KEY" not in made.out + made.err

    signed = cli("sign", "models:/iris@production", "--key", private)
    assert signed.code == 0
    assert "Signed models:/iris/1 (content " in signed.out
    assert f"with key {key_id}." in signed.out

    ok = cli("verify", "models:/iris/1", "--trusted", public)
    assert ok.code == 0, ok.err
    assert f"models:/iris/1 is signed by trusted key {key_id} (tester, " in ok.out
    assert "file(s) match the signed content" in ok.out

    refused = cli("verify", "models:/iris/2", "--trusted", public)
    assert refused.code == 1
    assert "has no signature by a trusted key (it is not signed)" in _one_error_line(refused)


@pytest.mark.parametrize(
    ("args", "code", "match"),
    [
        (["sign", "models:/iris/1"], 2, "modelyard sign needs --key."),
        (["sign", "--key", "private.pem"], 2, "modelyard sign needs a reference."),
        (["sign", "models:/iris/1", "--generate-key", "keys"], 2,
         "--generate-key creates a key pair and signs nothing."),
        (["sign", "models:/iris/1", "--key", "nowhere.pem"], 3, "There is no private key at"),
        (["verify", "models:/iris/1"], 6, "No trusted public key is configured"),
    ],
    ids=["no-key", "no-reference", "generate-and-sign", "missing-key", "no-trusted-key"],
)
def test_cli_errors_are_one_line(cli: Callable[..., Run], args: list[str], code: int,
                                 match: str) -> None:
    run = cli(*args)
    assert run.code == code
    assert match in _one_error_line(run)


def test_cli_generate_key_twice_is_a_conflict(cli: Callable[..., Run], tmp_path: Path) -> None:
    assert cli("sign", "--generate-key", tmp_path).code == 0
    again = cli("sign", "--generate-key", tmp_path)
    assert again.code == 4
    assert "a key pair is never overwritten" in _one_error_line(again)


def test_changed_bytes_on_disk_fail_verify(yard: Yard, cli: Callable[..., Run]) -> None:
    yard.client.sign("models:/iris/1", yard.trusted.private_key)
    manifest = yard.client.artifacts.get_manifest(_digest(yard, 1))
    blob = max(manifest.entries, key=lambda e: e.size)
    [path] = [p for p in yard.settings.home.rglob(f"*{blob.sha256}*") if p.is_file()]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))

    changed = cli("verify", "models:/iris/1", "--trusted", yard.trusted.public_key)
    assert changed.code == 5
    assert blob.sha256[:12] in _one_error_line(changed)
    # The signature itself is intact: only the stored bytes changed.
    assert cli("verify", "models:/iris/1", "--trusted", yard.trusted.public_key,
               "--skip-files").code == 0


# -- the server ----------------------------------------------------------------------------------


def _index(http: httpx.Client) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in http.post("/v2/repository/index").json()}


def _wait(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


def _infer(http: httpx.Client, X: np.ndarray, path: str = "/v2/models/iris/infer") -> Any:
    body = {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP64",
                        "data": X[:2].ravel().tolist()}]}
    return http.post(path, json=body)


def test_server_serves_only_signed_versions(yard: Yard,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="modelyard.serving")
    yard.client.sign("models:/iris/1", yard.trusted.private_key)
    settings = yard.settings.model_copy(update={"security": SecuritySettings(
        require_signed=True, trusted_keys=[yard.trusted.public_key])})
    serving = ServingSettings(
        deployments=[DeploymentSettings(model="models:/iris@production"),
                     DeploymentSettings(model="models:/iris/3", name="unsigned")],
        grpc_port=None, alias_poll_s=0.05)
    server = build_app(serving_source(settings, yard.client), serving, wait_for_models=True)
    with running_server(server.app) as url, httpx.Client(base_url=url, timeout=10) as http:
        index = _index(http)
        assert (index["iris"]["state"], index["iris"]["version"], index["iris"]["reason"]) == (
            "READY", "1", "")
        assert index["unsigned"]["state"] == "UNAVAILABLE"
        assert index["unsigned"]["reason"].startswith(
            "models:/iris/3 has no signature by a trusted key (it is not signed)")
        assert http.get("/v2/models/unsigned/ready").status_code != 200
        assert any(r.levelno == logging.ERROR and "models:/iris/3 has no signature"
                   in r.getMessage() for r in caplog.records)
        assert _infer(http, yard.X).json()["model_version"] == "1"

        # The alias moves to an unsigned version: no swap, the signed one keeps serving.
        yard.client.set_alias("iris", "production", 2)
        _wait(lambda: _index(http)["iris"]["reason"].startswith("Kept version 1: "),
              "the refused swap shows in the index")
        time.sleep(10 * serving.alias_poll_s)  # more polls: still refused, logged once
        entry = _index(http)["iris"]
        assert (entry["state"], entry["version"]) == ("READY", "1")
        assert "models:/iris/2 has no signature by a trusted key" in entry["reason"]
        assert _infer(http, yard.X).json()["model_version"] == "1"
        refusals = [r for r in caplog.records if "Could not refresh" in r.getMessage()]
        assert len(refusals) == 1
        assert refusals[0].levelno == logging.WARNING
        # Asking for the unsigned version explicitly is refused too.
        explicit = _infer(http, yard.X, "/v2/models/iris/versions/2/infer")
        assert explicit.status_code >= 400, explicit.status_code
        assert "models:/iris/2 has no signature by a trusted key" in explicit.text

        # Once version 2 is signed by the trusted key, the swap happens.
        yard.client.sign("models:/iris/2", yard.trusted.private_key)
        _wait(lambda: _index(http)["iris"].get("version") == "2", "the swap to version 2")
        assert _index(http)["iris"]["reason"] == ""
        assert _infer(http, yard.X).json()["model_version"] == "2"


def test_require_signed_without_trusted_keys_refuses_to_start(yard: Yard) -> None:
    settings = yard.settings.model_copy(update={"security": SecuritySettings(
        require_signed=True)})
    with pytest.raises(ConfigurationError,
                       match=r"require_signed is on, but no trusted public key is configured"):
        serving_source(settings, yard.client)


def test_without_require_signed_the_client_is_the_source(yard: Yard) -> None:
    assert serving_source(yard.settings, yard.client) is yard.client
