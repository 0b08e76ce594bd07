"""Columns marked sensitive never reach the inference log in clear: a server built the way
``modelyard serve`` builds it answers requests, and the Parquet files it wrote are read raw."""

from __future__ import annotations

import stat
import time
from pathlib import Path
from typing import Literal

import httpx
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from modelyard import Client
from modelyard.cli.serve import _build
from modelyard.monitoring.sensitive import HMAC_KEY_FILE, hmac_hex, load_hmac_key
from modelyard.settings import (
    DeploymentSettings,
    MonitoringSettings,
    SecuritySettings,
    ServingSettings,
    Settings,
)
from modelyard.testing.server import running_server

SSNS = ["123-45-6789", "987-65-4321", "555-12-3456"]
EMAILS = ["ann.secret@example.com", "bob.secret@example.com", "cy.secret@example.com"]


def _people(n: int = 60) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({
        "ssn": [f"{100 + i:03d}-00-{i:04d}" for i in range(n)],
        "email": [f"user{i}@train.example" for i in range(n)],
        "city": rng.choice(["Lyon", "Porto"], n),
        "age": rng.integers(18, 90, n).astype(float),
    })
    return X, (X["age"] > 50).astype(int).to_numpy()


def _serve_and_log(home: Path, mode: Literal["drop", "hash"]) -> list[Path]:
    X, y = _people()
    model = make_pipeline(
        ColumnTransformer([("num", "passthrough", ["age"])], remainder="drop"),
        LogisticRegression()).fit(X, y)
    settings = Settings(
        home=home, user="tester",
        serving=ServingSettings(deployments=[DeploymentSettings(
            model="models:/people@production", name="people-live")], grpc_port=None),
        monitoring=MonitoringSettings(log_flush_interval_s=0.05),
        security=SecuritySettings(sensitive=mode))
    with Client(settings) as client:
        client.register(model, "people", data=X, alias="production",
                        sensitive=["ssn", "email"])
    server = _build(settings)
    with running_server(server.app) as url, httpx.Client(base_url=url, timeout=10) as http:
        deadline = time.monotonic() + 30
        while http.get("/v2/models/people-live/ready").status_code != 200:
            assert time.monotonic() < deadline, "the model did not load"
            time.sleep(0.05)
        for i in range(6):  # each person twice: equal inputs must give equal hashes
            k = i % 3
            body = {"id": f"r{i}", "inputs": [
                {"name": "ssn", "shape": [1], "datatype": "BYTES", "data": [SSNS[k]]},
                {"name": "email", "shape": [1], "datatype": "BYTES", "data": [EMAILS[k]]},
                {"name": "city", "shape": [1], "datatype": "BYTES", "data": ["Lyon"]},
                {"name": "age", "shape": [1], "datatype": "FP64", "data": [30.0 + k]}]}
            r = http.post("/v2/models/people-live/infer", json=body)
            assert r.status_code == 200, r.text
    # leaving the context shut the server down: the log's final flush has run
    files = sorted((home / "logs").rglob("*.parquet"))
    assert files, "the server wrote no inference log"
    return files


def _assert_no_clear_values(files: list[Path]) -> pd.DataFrame:
    for path in files:
        raw = path.read_bytes()
        for secret in SSNS + EMAILS:
            assert secret.encode() not in raw
        # compressed pages could hide a value from a byte search: read every cell too
        table = pq.read_table(path)
        cells = " ".join(str(v) for col in table.columns for v in col.to_pylist())
        for secret in SSNS + EMAILS:
            assert secret not in cells
        assert "Lyon" in cells  # the check would see a clear value
        metadata = str(pq.ParquetFile(path).metadata.row_group(0).to_dict())
        for secret in SSNS + EMAILS:
            assert secret not in metadata  # min/max statistics
    return pd.concat([pq.read_table(p).to_pandas() for p in files], ignore_index=True)


def test_hash_mode_logs_keyed_hashes_equal_for_equal_inputs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    log = _assert_no_clear_values(_serve_and_log(home, "hash")).sort_values("request_id")
    assert len(log) == 6
    key_file = home / HMAC_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = load_hmac_key(key_file)
    expected = [hmac_hex(key, SSNS[i % 3]) for i in range(6)]
    assert log["in.ssn"].tolist() == expected
    assert log["in.ssn"].iloc[0] == log["in.ssn"].iloc[3]  # equal inputs, equal hashes
    assert log["in.ssn"].nunique() == 3
    assert log["in.email"].tolist() == [hmac_hex(key, EMAILS[i % 3]) for i in range(6)]
    assert log["in.city"].tolist() == ["Lyon"] * 6
    assert log["in.age"].tolist() == [30.0, 31.0, 32.0] * 2


def test_drop_mode_leaves_the_columns_out(tmp_path: Path) -> None:
    home = tmp_path / "home"
    log = _assert_no_clear_values(_serve_and_log(home, "drop"))
    assert len(log) == 6
    assert "in.ssn" not in log.columns
    assert "in.email" not in log.columns
    assert {"in.city", "in.age", "out.predict"} <= set(log.columns)
    assert not (home / HMAC_KEY_FILE).exists()  # no key needed, none made
