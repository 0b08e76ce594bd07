"""Hot swap under load, bounded queues and timeouts, and a graceful SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.integration.serving.slow_model import Constant, One, Slow

from modelyard import Client
from modelyard.serving.server import build_app
from modelyard.settings import DeploymentSettings, ServingSettings, Settings
from modelyard.testing.server import running_server

ROWS = np.zeros((4, 3))
BODY = {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP64", "data": [0, 0, 0]}]}
pytestmark = pytest.mark.slow


def _registry(tmp_path: Path) -> tuple[Settings, Client]:
    settings = Settings(home=tmp_path / "home", user="tester")
    return settings, Client(settings)


def test_hot_swap_under_load_fails_no_request(tmp_path: Path) -> None:
    settings, client = _registry(tmp_path)
    client.register(Constant(), "swap", data=ROWS, alias="production")
    client.register(One(), "swap", data=ROWS)
    serving = ServingSettings(deployments=[DeploymentSettings(model="models:/swap@production")],
                              grpc_port=None, alias_poll_s=0.1)
    server = build_app(client, serving, wait_for_models=True)
    seen: Counter[tuple[int, str, int]] = Counter()
    stop = threading.Event()

    def hammer(url: str) -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            while not stop.is_set():
                r = http.post("/v2/models/swap/infer", json=BODY)
                answer = r.json()["outputs"][0]["data"][0] if r.status_code == 200 else -1
                seen[(r.status_code, r.json().get("model_version", ""), answer)] += 1

    with running_server(server.app) as url, ThreadPoolExecutor(4) as pool:
        workers = [pool.submit(hammer, url) for _ in range(4)]
        time.sleep(0.5)
        env = {**os.environ, "MODELYARD_HOME": str(settings.home)}
        subprocess.run([sys.executable, "-m", "modelyard", "alias", "set", "swap", "production",
                        "2"], env=env, check=True, capture_output=True)
        deadline = time.monotonic() + 10
        while not any(k[1] == "2" for k in seen) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        stop.set()
        for w in workers:
            w.result()
    client.close()
    assert {k[0] for k in seen} == {200}, seen
    assert seen[(200, "1", 0)] > 0, seen
    assert seen[(200, "2", 1)] > 0, "the server never switched to version 2"
    assert set(seen) == {(200, "1", 0), (200, "2", 1)}, "a version answered with the other's output"


def test_full_queue_gets_503_with_retry_after_and_slow_model_504(tmp_path: Path) -> None:
    _, client = _registry(tmp_path)
    client.register(Slow(), "slow", data=ROWS, alias="production")
    serving = ServingSettings(
        deployments=[DeploymentSettings(model="models:/slow@production", timeout_s=0.45)],
        grpc_port=None, max_queue=2)
    serving.batching.max_batch_size = 1
    server = build_app(client, serving, wait_for_models=True)
    with running_server(server.app) as url, ThreadPoolExecutor(8) as pool:
        def call(_: int) -> httpx.Response:
            return httpx.post(f"{url}/v2/models/slow/infer", json=BODY, timeout=10)

        responses = list(pool.map(call, range(8)))
        statuses = Counter(r.status_code for r in responses)
        assert statuses[503] >= 1, statuses
        refused = next(r for r in responses if r.status_code == 503)
        assert refused.headers["retry-after"] == "1"
        assert "waiting" in refused.json()["error"]
        assert statuses[504] >= 1, statuses  # queued behind 0.3 s batches, 0.45 s timeout
        assert "did not answer within" in next(
            r for r in responses if r.status_code == 504).json()["error"]
        assert httpx.get(f"{url}/v2/health/live").status_code == 200
    client.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sigterm_drains_in_flight_requests_and_exits_zero(tmp_path: Path) -> None:
    settings, client = _registry(tmp_path)
    client.register(Slow(), "slow", data=ROWS, alias="production")
    client.close()
    port = _free_port()
    env = {**os.environ, "MODELYARD_HOME": str(settings.home),
           "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelyard", "serve", "models:/slow@production", "--port",
         str(port), "--no-grpc", "--max-batch-size", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
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
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(httpx.post, f"{url}/v2/models/slow/infer", json=BODY,
                                   timeout=30) for _ in range(4)]
            time.sleep(0.2)  # requests are in flight (the model takes 0.3 s each, in series)
            proc.send_signal(signal.SIGTERM)
            statuses = [f.result().status_code for f in futures]
        assert statuses == [200] * 4
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()



def test_explicit_versions_load_on_demand_and_are_evicted_lru(tmp_path: Path) -> None:
    _, client = _registry(tmp_path)
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\0" * 600_000)  # each version "weighs" 0.6 MB: two exceed 1 MB
    for _ in range(4):
        client.register(Constant(), "many", data=ROWS, alias="production",
                        artifacts={"weights": str(weights)})
    serving = ServingSettings(deployments=[DeploymentSettings(model="models:/many@production")],
                              grpc_port=None, memory_budget_mb=1)
    server = build_app(client, serving, wait_for_models=True)
    with running_server(server.app) as url, httpx.Client(base_url=url) as http:
        for version in (1, 2, 3):
            r = http.post(f"/v2/models/many/versions/{version}/infer", json=BODY)
            assert r.status_code == 200, r.text
            assert r.json()["model_version"] == str(version)
        assert http.get("/v2/models/many/versions/3/ready").status_code == 200  # kept
        assert http.get("/v2/models/many/versions/4/ready").status_code == 200  # current
        assert http.get("/v2/models/many/versions/1/ready").status_code == 503  # evicted
        assert http.get("/v2/models/many/versions/2/ready").status_code == 503  # evicted
        r = http.post("/v2/models/many/versions/1/infer", json=BODY)  # loads again on demand
        assert r.json()["model_version"] == "1"
    client.close()
