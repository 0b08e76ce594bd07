"""The server writes every prediction to the inference log, takes feedback, and loses no
record on a graceful shutdown."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from modelyard import Client
from modelyard.monitoring.feedback import join_feedback
from modelyard.monitoring.inference_log import InferenceLog
from modelyard.monitoring.log_store import ParquetLogStore
from modelyard.serving.server import build_app
from modelyard.settings import DeploymentSettings, ServingSettings, Settings
from modelyard.testing.server import running_server


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, np.ndarray]:
    data = load_breast_cancer(as_frame=True)
    return data.data, data.target.to_numpy()


def _register(home: Path, X: pd.DataFrame, y: np.ndarray) -> Settings:
    settings = Settings(home=home, user="tester")
    with Client(settings) as client:
        model = LogisticRegression(max_iter=5000).fit(X, y)
        client.register(model, "cancer", data=X, alias="production")
    return settings


def _v2_body(X: pd.DataFrame, rows: slice, rid: str) -> dict[str, object]:
    part = X.iloc[rows]
    return {"id": rid, "inputs": [
        {"name": c, "shape": [len(part)], "datatype": "FP64", "data": part[c].tolist()}
        for c in X.columns]}


def test_every_route_is_logged_feedback_joins_and_counters_are_exported(
        tmp_path: Path, cancer: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = cancer
    settings = _register(tmp_path / "home", X, y)
    store = ParquetLogStore(str(tmp_path / "logs"))
    sink = InferenceLog(store, flush_interval_s=0.05)
    serving = ServingSettings(deployments=[DeploymentSettings(model="models:/cancer@production")],
                              grpc_port=None)
    client = Client(settings)
    server = build_app(client, serving, sink=sink, wait_for_models=True, version="test")
    with running_server(server.app) as url, httpx.Client(base_url=url, timeout=10) as http:
        for i in range(5):
            r = http.post("/v2/models/cancer/infer", json=_v2_body(X, slice(i, i + 1), f"v2-{i}"))
            assert r.status_code == 200
        r = http.post("/v2/models/cancer/infer", json=_v2_body(X, slice(10, 13), "multi"))
        assert r.status_code == 200
        r = http.post("/invocations", json={"dataframe_split": {
            "columns": list(X.columns), "data": X.iloc[20:22].to_numpy().tolist()}},
            headers={"x-request-id": "mlflow-1"})
        assert r.status_code == 200
        bad = _v2_body(X, slice(0, 1), "bad")
        bad["inputs"] = bad["inputs"][1:]  # type: ignore[index]  # a column missing
        assert http.post("/v2/models/cancer/infer", json=bad).status_code == 400
        labels = [{"id": f"v2-{i}", "label": int(y[i])} for i in range(5)]
        labels += [{"id": "multi", "row": 2, "label": int(y[12])}]
        r = http.post("/v2/models/cancer/feedback", json=labels)
        assert r.status_code == 202
        assert r.json() == {"accepted": 6}
        assert http.post("/v2/models/cancer/feedback", json={"label": 1}).status_code == 400
        assert http.post("/v2/models/cancer/feedback", content=b"{").status_code == 400
        assert http.post("/v2/models/nobody/feedback",
                         json={"id": "x", "label": 1}).status_code == 404
        deadline = time.monotonic() + 10
        while sink.stats.written < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        metrics = {s.name: s.value for fam in text_string_to_metric_families(
            http.get("/metrics").text) for s in fam.samples}
        assert metrics["modelyard_inference_log_written_total"] == 8
        assert metrics["modelyard_inference_log_dropped_total"] == 0
    client.close()
    log = store.read_inferences("cancer")
    assert log.num_rows == 5 + 3 + 2 + 1
    rows = log.to_pylist()
    by_id = {(r["request_id"], r["row"]): r for r in rows}
    assert by_id[("v2-0", 0)]["in.mean radius"] == pytest.approx(X.iloc[0]["mean radius"])
    assert by_id[("mlflow-1", 1)]["route"] == "mlflow"
    assert by_id[("multi", 2)]["out.predict_proba"] is not None
    assert by_id[("bad", 0)]["error"] == "SignatureError"
    assert all(r["version"] == 1 for r in rows)
    joined = join_feedback(log, store.read_feedback("cancer"))
    assert sorted(joined.column("request_id").to_pylist()) == [
        "multi", "v2-0", "v2-1", "v2-2", "v2-3", "v2-4"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_sigterm_under_load_flushes_every_answered_request(
        tmp_path: Path, cancer: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = cancer
    settings = _register(tmp_path / "home", X, y)
    port = _free_port()
    env = {**os.environ, "MODELYARD_HOME": str(settings.home),
           # Nothing is written before the shutdown: the final flush must write it all.
           "MODELYARD_MONITORING__LOG_FLUSH_INTERVAL_S": "3600"}
    stderr = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelyard", "serve", "models:/cancer@production",
         "--port", str(port), "--no-grpc"], env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    answered: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load(worker: int) -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            for i in range(2000):  # bounded; stops at the signal long before that
                if stop.is_set():
                    return
                rid = f"w{worker}-{i}"
                try:
                    r = http.post("/v2/models/cancer/infer",
                                  json=_v2_body(X, slice(i % 500, i % 500 + 1), rid))
                except httpx.TransportError:
                    return
                if r.status_code == 200:
                    with lock:
                        answered.append(rid)

    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
        threads = [threading.Thread(target=load, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, (tmp_path / "serve.log").read_text()
        stop.set()
        for t in threads:
            t.join(30)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr.close()
    assert len(answered) > 50
    log = ParquetLogStore(str(settings.home / "logs")).read_inferences("cancer")
    logged = set(log.column("request_id").to_pylist())
    assert set(answered) <= logged
    assert log.num_rows == len(logged)
    assert log.num_rows >= len(answered)


def test_monitoring_inside_the_server_exports_objectives(
        tmp_path: Path, cancer: tuple[pd.DataFrame, np.ndarray]) -> None:
    from modelyard.cli.serve import _build

    X, y = cancer
    settings = _register(tmp_path / "home", X, y)
    config = tmp_path / "monitoring.yaml"
    config.write_text("objectives:\n  cancer:\n    - 'latency_p99_ms <= 60000'\n"
                      "    - 'error_rate <= 0.01'\n"
                      "rules:\n  - name: busy\n    model: cancer\n"
                      "    condition: 'requests >= 5'\n    severity: info\n")
    settings = settings.model_copy(update={
        "serving": ServingSettings(deployments=[
            DeploymentSettings(model="models:/cancer@production")], grpc_port=None),
        "monitoring": settings.monitoring.model_copy(update={
            "every": "0.2s", "config": config, "log_flush_interval_s": 0.05})})
    server = _build(settings)
    with running_server(server.app) as url, httpx.Client(base_url=url, timeout=10) as http:
        for i in range(6):
            body = _v2_body(X, slice(i, i + 1), f"m-{i}")
            assert http.post("/v2/models/cancer/infer", json=body).status_code == 200
        deadline = time.monotonic() + 20
        samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        while time.monotonic() < deadline:
            samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                       for fam in text_string_to_metric_families(http.get("/metrics").text)
                       for s in fam.samples}
            if ("modelyard_alert_firing", (("model", "cancer"), ("rule", "busy"),
                                           ("severity", "info"))) in samples:
                break
            time.sleep(0.1)
    met = ("modelyard_objective_status", (("model", "cancer"),
                                          ("objective", "latency_p99_ms <= 60000"),
                                          ("status", "met")))
    assert samples.get(met) == 1.0
    target = ("modelyard_objective_target", (("model", "cancer"),
                                             ("objective", "error_rate <= 0.01")))
    assert samples.get(target) == 0.01
    assert ("modelyard_alert_firing", (("model", "cancer"), ("rule", "busy"),
                                       ("severity", "info"))) in samples
