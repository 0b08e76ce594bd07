"""Encryption at rest, end to end: register, serve and log with a key, then look at every file.

A distinctive marker is a category the model was trained on (so it sits in the saved model and
in the reference profile) and a value of the logged inputs and labels. With encryption on, its
bytes must appear in no file under MODELYARD_HOME: not in artifact blobs, not in inference log
files, not in the SQLite database (whose inference_log/feedback cells are encrypted too).
"""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from modelyard import Client
from modelyard.cli.main import main
from modelyard.errors import DecryptionError
from modelyard.monitoring.log_store import open_log_store
from modelyard.security.encryption import (
    HEADER_SIZE,
    is_encrypted,
    key_id,
    keyring_from_settings,
    parse_keys,
)
from modelyard.settings import Settings
from modelyard.testing.server import running_server

MARKER = "PLAINTEXT-MARKER-7f3a"


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(7)
    X = pd.DataFrame({"x": rng.normal(size=300),
                      "city": rng.choice([MARKER, "paris", "rome"], size=300)})
    y = ((X["x"] > 0) | (X["city"] == MARKER)).astype(int).to_numpy()
    return X, y


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _generate(capsys: pytest.CaptureFixture[str], path: Path) -> bytes:
    code, _, err = _cli(capsys, "security", "generate-key", "-o", str(path))
    assert code == 0, err
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    return parse_keys(path.read_text())[0]


def _files_with_marker(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*")
                  if p.is_file() and MARKER.encode() in p.read_bytes())


def _settings() -> Settings:
    """Settings from the environment, as the CLI builds them, serving the test's model."""
    return Settings(serving={"deployments": [{"model": "models:/fraud@production"}],
                             "grpc_port": None})


def _serve_and_log(settings: Settings, X: pd.DataFrame, y: np.ndarray) -> None:
    from modelyard.cli.serve import _build

    server = _build(settings)
    rows = X.iloc[:20]
    with running_server(server.app) as url, httpx.Client(base_url=url, timeout=20) as http:
        deadline = time.monotonic() + 20
        while http.get("/v2/models/fraud/ready").status_code != 200:
            assert time.monotonic() < deadline, "the model did not load"
            time.sleep(0.05)
        for i in range(len(rows)):
            body = {"id": f"req-{i}", "inputs": [
                {"name": "x", "shape": [1], "datatype": "FP64", "data": [rows["x"].iloc[i]]},
                {"name": "city", "shape": [1], "datatype": "BYTES",
                 "data": [rows["city"].iloc[i]]}]}
            r = http.post("/v2/models/fraud/infer", json=body)
            assert r.status_code == 200, r.text
        r = http.post("/v2/models/fraud/feedback",
                      json=[{"id": f"req-{i}", "label": int(y[i])} for i in range(len(rows))])
        assert r.status_code == 202, r.text
    # leaving the server flushed the inference log (a graceful shutdown loses nothing)


@pytest.mark.parametrize("log", ["parquet", "sql"])
def test_nothing_readable_on_disk_then_wrong_key_then_rotation(
        log: str, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = data
    keys = tmp_path / "keys"
    keys.mkdir()
    old = _generate(capsys, keys / "old.key")
    monkeypatch.setenv("MODELYARD_SECURITY__ENCRYPTION_KEY_FILE", str(keys / "old.key"))
    monkeypatch.setenv("MODELYARD_USER", "tester")
    if log == "sql":
        monkeypatch.setenv("MODELYARD_MONITORING__LOG_URI", "sql")
    settings = _settings()

    model = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["city"]),
                                remainder="passthrough"),
        LogisticRegression()).fit(X, y)
    with Client(settings) as client:
        mv = client.register(model, "fraud", data=X, alias="production")
        # The control: the marker did reach the store (in the model and the profile).
        assert any(MARKER.encode() in client.artifacts.get_bytes(d)
                   for d in client.artifacts.blob_digests())
    _serve_and_log(settings, X, y)

    # 1. No file under MODELYARD_HOME holds the marker; every blob and log file is encrypted.
    assert _files_with_marker(home) == []
    blobs = list((home / "artifacts" / "blobs").rglob("*"))
    log_files = list((home / "logs").rglob("*.parquet"))
    if log == "parquet":
        assert {p.relative_to(home / "logs").parts[0] for p in log_files} == {
            "inferences", "feedback"}
    else:
        assert log_files == []
    for path in [*(b for b in blobs if b.is_file()), *log_files]:
        assert is_encrypted(path.read_bytes()[:HEADER_SIZE]), path

    # 2. Loading and predicting works; the log reads back in full.
    ring = keyring_from_settings(settings.security)
    with Client(settings) as client:
        assert list(client.load("models:/fraud@production").predict(X.iloc[:50])) == list(
            model.predict(X.iloc[:50]))
        logs = open_log_store(settings.resolved_log_uri(), keyring=ring,
                              engine=client.store.engine if log == "sql" else None)
        assert logs.read_inferences("fraud").num_rows == 20
        assert MARKER in logs.read_inferences("fraud").column("in.city").to_pylist()
        assert logs.read_feedback("fraud").num_rows == 20

    # 3. A wrong key is one clear error line and exit code 6, never a traceback.
    _generate(capsys, keys / "wrong.key")
    monkeypatch.setenv("MODELYARD_SECURITY__ENCRYPTION_KEY_FILE", str(keys / "wrong.key"))
    code, _, err = _cli(capsys, "monitor", "run", "fraud", "--no-notify")
    assert code == 6
    lines = err.strip().splitlines()
    assert lines[0].startswith("Error: ")
    assert f"was encrypted with key id {key_id(old)}; the configured key is " in lines[0]
    assert lines[1].startswith("Hint: Set MODELYARD_SECURITY__ENCRYPTION_KEY")
    assert "Traceback" not in err

    # 4. Mid-rotation: the new key first, the old one second. Labels written now use the new
    # key; everything reads.
    new = _generate(capsys, keys / "new.key")
    both = keys / "both.key"
    both.write_text((keys / "new.key").read_text() + (keys / "old.key").read_text())
    monkeypatch.setenv("MODELYARD_SECURITY__ENCRYPTION_KEY_FILE", str(both))
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"id": [f"req-{i}" for i in range(5)], "label": y[:5]}).to_csv(labels,
                                                                                 index=False)
    code, _, err = _cli(capsys, "feedback", "fraud", str(labels))
    assert code == 0, err

    # 5. rotate-key (old key configured) moves everything to the new key, resumably.
    monkeypatch.setenv("MODELYARD_SECURITY__ENCRYPTION_KEY_FILE", str(keys / "old.key"))
    code, out, err = _cli(capsys, "security", "rotate-key", "--new-key-file",
                          str(keys / "new.key"), "--json")
    assert code == 0, err
    counts = json.loads(out)
    assert counts["key_id"] == key_id(new)
    n_blobs = len([b for b in blobs if b.is_file()])
    assert counts["artifact_blobs"] == {"rewritten": n_blobs, "current": 0, "failed": []}
    if log == "parquet":
        assert counts["log_files"] == {"rewritten": len(log_files), "current": 1, "failed": []}
        assert counts["log_rows"] == {"rewritten": 0, "current": 0, "failed": []}
    else:
        assert counts["log_rows"] == {"rewritten": 40, "current": 5, "failed": []}
    code, out, _ = _cli(capsys, "security", "rotate-key", "--new-key-file",
                        str(keys / "new.key"), "--json")
    assert code == 0
    assert json.loads(out)["artifact_blobs"]["rewritten"] == 0
    assert _files_with_marker(home) == []

    # 6. The old key reads nothing any more; the new key reads everything.
    with Client(settings) as client, pytest.raises(
            DecryptionError, match=f"was encrypted with key id {key_id(new)}"):
        client.load(mv.uri)
    monkeypatch.setenv("MODELYARD_SECURITY__ENCRYPTION_KEY_FILE", str(keys / "new.key"))
    settings = _settings()
    with Client(settings) as client:
        assert len(client.load(mv.uri).predict(X.iloc[:5])) == 5
        logs = open_log_store(settings.resolved_log_uri(),
                              keyring=keyring_from_settings(settings.security),
                              engine=client.store.engine if log == "sql" else None)
        assert logs.read_inferences("fraud").num_rows == 20
        assert logs.read_feedback("fraud").num_rows == 25


def test_rotate_key_rotates_what_it_can_and_lists_damaged_objects(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from modelyard.registry.artifacts import ArtifactStore

    old = _generate(capsys, tmp_path / "old.key")
    new = _generate(capsys, tmp_path / "new.key")
    monkeypatch.setenv("MODELYARD_SECURITY__ENCRYPTION_KEY_FILE", str(tmp_path / "old.key"))
    store = ArtifactStore(Settings().resolved_artifact_uri(),
                          keyring=keyring_from_settings(Settings().security))
    digests = [store.put_bytes(f"blob {i}".encode() * 50) for i in range(4)]
    damaged = Path(store._blob_path(digests[2]))
    raw = bytearray(damaged.read_bytes())
    raw[-1] ^= 1
    damaged.write_bytes(bytes(raw))

    code, out, err = _cli(capsys, "security", "rotate-key", "--new-key-file",
                          str(tmp_path / "new.key"))
    assert code == 5
    assert "artifact blobs: 3 re-encrypted, 0 already under key" in out
    assert ", 1 failed" in out
    assert err.startswith(f"Error: 1 object(s) failed their integrity check and were left as "
                          f"they were: artifact blob {digests[2][:12]}.")
    assert damaged.read_bytes() == bytes(raw)
    assert [store.blob_key_id(d) for d in digests] == [
        key_id(new), key_id(new), key_id(old), key_id(new)]


def test_generate_key_never_overwrites_by_accident(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "k.key"
    first = _generate(capsys, path)
    code, _, err = _cli(capsys, "security", "generate-key", "-o", str(path))
    assert code == 4
    assert err.splitlines() == [
        f"Error: There is already a file at '{path}'; a key is never overwritten by accident.",
        "Hint: Choose another path, or pass --force."]
    path.chmod(0o644)
    code, _, _ = _cli(capsys, "security", "generate-key", "-o", str(path), "--force")
    assert code == 0
    assert parse_keys(path.read_text())[0] != first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    code, out, err = _cli(capsys, "security", "generate-key")
    assert code == 0
    printed = parse_keys(out)
    assert f"id {key_id(printed[0])}" in err
