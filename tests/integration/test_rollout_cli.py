"""``modelyard rollout``: start, status (compared from the inference log), promote, abort,
history; errors are one line with a hint."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from modelyard import Client
from modelyard.cli.main import main
from modelyard.core.inference import InferenceRecord
from modelyard.monitoring.feedback import feedback_from_columns
from modelyard.monitoring.inference_log import InferenceLog
from modelyard.monitoring.log_store import ParquetLogStore
from modelyard.settings import Settings


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def yard(home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MODELYARD_USER", "alice")
    settings = Settings()
    X, y = load_iris(return_X_y=True, as_frame=True)
    with Client(settings) as client:
        for c in (1.0, 0.01):
            client.register(LogisticRegression(C=c, max_iter=500).fit(X, y), "iris", data=X)
        client.set_alias("iris", "production", 1)
    return settings


def _log_shadow_traffic(settings: Settings, n: int = 40) -> None:
    """Champion and challenger answered the same n requests; they disagree on every 4th."""
    store = ParquetLogStore(settings.resolved_log_uri())
    sink = InferenceLog(store, flush_interval_s=0.05)
    sink.start()
    now = time.time()
    for i in range(n):
        inputs = {"sepal length (cm)": np.array([5.0])}
        for version, label in ((1, 1), (2, 2 if i % 4 == 0 else 1)):
            sink.emit(InferenceRecord(
                request_id=f"r{i}", model="iris", version=version, timestamp=now + i * 0.001,
                inputs=inputs, outputs={"predict": np.array([label])},
                latency_ms=1.0 if version == 1 else 3.0, route="v2"))
    sink.emit(InferenceRecord(request_id="bad", model="iris", version=2, timestamp=now,
                              inputs=None, outputs={}, latency_ms=1.0, route="v2",
                              error="PredictionError"))
    sink.close()
    store.write_feedback("iris", feedback_from_columns([f"r{i}" for i in range(n)], [1] * n))


def test_start_status_promote_and_history(yard: Settings,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(capsys, "rollout", "start", "iris", "--challenger", "2",
                          "--mode", "shadow", "--reason", "retrained")
    assert code == 0, err
    assert "Rollout #1 of iris: version 2 gets a copy of every request" in out
    _log_shadow_traffic(yard)
    code, out, err = _cli(capsys, "rollout", "status", "iris", "--json")
    assert code == 0, err
    import json

    status = json.loads(out)
    assert status["rollout"]["state"] == "active"
    champion, challenger = status["versions"]["1"], status["versions"]["2"]
    assert (champion["requests"], champion["errors"]) == (40, 0)
    assert (challenger["requests"], challenger["errors"]) == (41, 1)
    assert challenger["agreement"] == pytest.approx(0.75)
    assert champion["accuracy"] == 1.0
    assert challenger["accuracy"] == pytest.approx(0.75)
    code, out, _ = _cli(capsys, "rollout", "status", "iris")
    assert "shadow" in out
    assert "75.0%" in out
    code, out, err = _cli(capsys, "rollout", "promote", "iris", "--reason", "sign-off")
    assert code == 0, err
    assert "iris@production -> version 2 (promoted)" in out
    code, out, _ = _cli(capsys, "alias", "history", "iris", "--json")
    reasons = [c["reason"] for c in json.loads(out)]
    assert any("promoted version 2: sign-off" in r for r in reasons)
    code, out, _ = _cli(capsys, "rollout", "history", "iris", "--json")
    assert [r["state"] for r in json.loads(out)] == ["promoted"]


def test_canary_with_steps_then_abort(yard: Settings,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(capsys, "rollout", "start", "iris", "--challenger", "2",
                          "--steps", "20%,60%,100%", "--min-requests", "50", "--json")
    assert code == 0, err
    import json

    started = json.loads(out)
    assert started["weight"] == 0.2
    assert started["policy"]["min_requests"] == 50
    code, out, err = _cli(capsys, "rollout", "abort", "iris", "--reason", "bad data")
    assert code == 0, err
    assert "stays at version 1" in out
    with Client(yard) as client:
        assert client.get_model("iris").aliases == {"production": 1}


@pytest.mark.parametrize(("args", "match"), [
    (("rollout", "start", "iris", "--challenger", "1"), "already is 'production'"),
    (("rollout", "start", "iris", "--challenger", "2", "--mode", "bluegreen"),
     "mode must be one of"),
    (("rollout", "start", "iris", "--challenger", "2", "--steps", "50%,10%"),
     "must not decrease"),
    (("rollout", "start", "iris", "--challenger", "2", "--sticky", "cookie:x"), "header:NAME"),
    (("rollout", "promote", "iris"), "no active rollout"),
    (("rollout", "status", "nope"), "no registered model named 'nope'"),
], ids=["champion", "mode", "steps", "sticky", "nothing-active", "unknown-model"])
def test_errors_are_one_line(yard: Settings, capsys: pytest.CaptureFixture[str],
                             args: tuple[str, ...], match: str) -> None:
    code, out, err = _cli(capsys, *args)
    assert code != 0
    assert match in err
    assert "Traceback" not in err + out
