"""Eight processes registering at once, and a register() killed with SIGKILL mid-way."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tests.integration import workers

from modelyard import Client
from modelyard.security.checksums import sha256_file
from modelyard.settings import Settings

pytestmark = pytest.mark.slow


def test_eight_processes_get_distinct_gap_free_versions(tmp_path: Path, database_url: str) -> None:
    ctx = mp.get_context("spawn")
    barrier = ctx.Manager().Barrier(8)
    args = (str(tmp_path / "home"), database_url, str(tmp_path / "artifacts"), 3, barrier)
    with ctx.Pool(8) as pool:
        results = pool.starmap(workers.register_versions, [args] * 8, chunksize=1)
    numbers = sorted(v for chunk in results for v in chunk)
    assert numbers == list(range(1, 25))
    for chunk in results:  # each process saw its own versions increase
        assert chunk == sorted(chunk)
    settings = Settings(home=tmp_path / "home", database_url=database_url,
                        artifact_uri=str(tmp_path / "artifacts"))
    with Client(settings) as client:
        assert [v.version for v in client.list_versions("shared")] == list(range(1, 25))


def test_sigkill_during_register_leaves_nothing_half_done(tmp_path: Path,
                                                          database_url: str) -> None:
    home, artifacts = tmp_path / "home", tmp_path / "artifacts"
    cmd = [sys.executable, "-m", "tests.integration.workers", str(home), database_url,
           str(artifacts)]
    rnd = random.Random(1234)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    kills = 0
    for _ in range(5):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, cwd=root, env=env, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        # one full registration first, so the kill lands inside a later one
        assert proc.stdout.readline().startswith("registered ")
        time.sleep(rnd.uniform(0.0, 0.6))  # then kill it somewhere inside the next ones
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        kills += 1
    assert kills == 5

    settings = Settings(home=home, database_url=database_url, artifact_uri=str(artifacts))
    with Client(settings) as client:
        versions = client.list_versions("crash")
        numbers = [v.version for v in versions]
        assert numbers == list(range(1, len(numbers) + 1)), "a killed register left a gap"
        assert len(numbers) >= 5
        x = np.zeros((1, 12))
        for v in versions:  # every visible version is complete and loads
            assert client.load(v.uri).predict(x).shape == (1,)
            assert client.get_profile(v.uri).rows == 20_000
    for blob in (artifacts / "blobs").rglob("*"):
        if blob.is_file() and not blob.name.startswith(".tmp-"):
            assert sha256_file(blob)[0] == blob.name, f"corrupt blob {blob}"
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
