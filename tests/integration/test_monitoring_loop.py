"""The monitoring loop end to end: a real server logs predictions on drifted traffic, labels
arrive through the feedback route and the CLI, ``modelyard monitor run`` finds the drift and
the accuracy, fires a webhook to a real receiver, ``monitor status`` reports the objectives,
and ``monitor report`` writes the HTML report. SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelyard import Client
from modelyard.cli.main import main
from modelyard.monitoring.inference_log import InferenceLog
from modelyard.monitoring.log_store import ParquetLogStore
from modelyard.serving.server import build_app
from modelyard.settings import DeploymentSettings, ServingSettings, Settings
from modelyard.testing.server import running_server

SECRET = "s3cret"
SHIFTED = ["mean radius", "mean texture", "mean perimeter", "mean area", "worst radius",
           "worst texture", "worst perimeter", "worst area", "mean concavity",
           "worst concavity", "mean compactness", "worst compactness", "mean concave points",
           "worst concave points", "radius error", "perimeter error", "area error"]


class Receiver:
    """A webhook receiver on loopback that keeps what it was sent."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _body(frame: pd.DataFrame, rid: str) -> dict[str, Any]:
    return {"id": rid, "inputs": [
        {"name": c, "shape": [len(frame)], "datatype": "FP64", "data": frame[c].tolist()}
        for c in frame.columns]}


def _cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_monitoring_finds_drift_accuracy_fires_webhook_and_reports(
        tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch,
        receiver: Receiver, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("MODELYARD_HOME", str(home))
    monkeypatch.setenv("MODELYARD_DATABASE_URL", database_url)
    settings = Settings()
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_train, X_live, y_train, y_live = train_test_split(X, y, test_size=0.4, random_state=0)
    client = Client(settings)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    client.register(model.fit(X_train, y_train), "cancer", data=X_train, alias="production")

    # Live traffic: the held-out rows, most features shifted by one standard deviation.
    live = X_live.copy()
    for column in SHIFTED:
        live[column] = live[column] + X_train[column].std()
    store = ParquetLogStore(str(home / "logs"))
    sink = InferenceLog(store, flush_interval_s=0.05)
    serving = ServingSettings(deployments=[DeploymentSettings(model="models:/cancer@production")],
                              grpc_port=None)
    server = build_app(client, serving, sink=sink, wait_for_models=True, version="test")
    labels = []
    with running_server(server.app) as url, httpx.Client(base_url=url, timeout=10) as http:
        for i, start in enumerate(range(0, len(live), 20)):
            chunk = live.iloc[start:start + 20]
            assert http.post("/v2/models/cancer/infer",
                             json=_body(chunk, f"req-{i}")).status_code == 200
            labels += [{"id": f"req-{i}", "row": r, "label": int(y_live.iloc[start + r])}
                       for r in range(len(chunk))]
        # Half of the labels come through the route, half later through the CLI.
        half = len(labels) // 2
        assert http.post("/v2/models/cancer/feedback", json=labels[:half]).status_code == 202
    client.close()
    assert store.read_inferences("cancer").num_rows == len(live)
    pd.DataFrame(labels[half:]).to_csv(tmp_path / "labels.csv", index=False)
    code, out, err = _cli(capsys, "feedback", "cancer", tmp_path / "labels.csv",
                          "--row-column", "row")
    assert code == 0, err
    assert f"Recorded {len(labels) - half} labels" in out

    config = tmp_path / "monitoring.yaml"
    config.write_text(f"""
window: 1h
drift:
  share_threshold: 0.3
rules:
  - name: cancer-drift
    model: cancer
    condition: "drift.share > 0.3"
    severity: critical
    sinks: [hook]
  - name: cancer-accuracy
    model: cancer
    condition: "accuracy < 0.99"
    sinks: [hook]
sinks:
  hook:
    type: webhook
    url: {receiver.url}
    secret: {SECRET}
objectives:
  cancer:
    - "accuracy >= 0.9"
    - "latency_p99_ms <= 10000"
    - "error_rate <= 0.01"
""")
    code, out, err = _cli(capsys, "monitor", "run", "cancer", "--config", config, "--json")
    assert code == 0, err
    (result,) = json.loads(out)
    assert result["version"] == 1
    assert result["rows"] == len(live)
    values = result["values"]
    assert result["drift"]["drifted"] is True
    assert values["drift.share"] > 0.3
    drifted = {c for c, d in result["drift"]["columns"].items() if d["drifted"]}
    assert set(SHIFTED[:5]) <= drifted
    assert "feature.mean radius.wasserstein" in values
    assert values["labelled_rows"] == len(labels)
    # The drifted traffic costs accuracy, and the joined labels give exactly the real figure.
    expected = float((model.predict(live) == y_live.to_numpy()).mean())
    assert values["accuracy"] == pytest.approx(expected, abs=1e-12)
    assert "roc_auc" in values
    assert "log_loss" in values
    assert "estimated_accuracy" in values
    assert values["error_rate"] == 0.0
    assert values["latency.p99_ms"] > 0
    assert {a["rule"] for a in result["alerts"]} >= {"cancer-drift"}
    # The webhook got one signed JSON notification per firing alert.
    kinds = []
    for headers, body in receiver.received:
        sign = hmac.new(SECRET.encode(), headers["x-modelyard-timestamp"].encode() + b"."
                        + body, hashlib.sha256).hexdigest()
        assert headers["x-modelyard-signature"] == f"sha256={sign}"
        kinds.append((json.loads(body)["rule"], json.loads(body)["kind"]))
    assert ("cancer-drift", "firing") in kinds
    # A second run right after notifies nothing new: the alert is still firing.
    before = len(receiver.received)
    code, out, err = _cli(capsys, "monitor", "run", "cancer", "--config", config, "--json")
    assert code == 0, err
    assert len(receiver.received) == before

    code, out, err = _cli(capsys, "monitor", "status", "cancer", "--config", config, "--json")
    assert code == 0, err
    (status,) = json.loads(out)
    by_objective = {o["objective"]: o["status"] for o in status["objectives"]}
    assert by_objective["error_rate <= 0.01"] in ("met", "at_risk")
    assert by_objective["latency_p99_ms <= 10000"] == "met"
    assert {f["rule"] for f in status["firing"]} >= {"cancer-drift"}
    code, out, err = _cli(capsys, "monitor", "status", "cancer", "--config", config)
    assert code == 0
    assert "accuracy >= 0.9" in out

    report = tmp_path / "report.html"
    code, out, err = _cli(capsys, "monitor", "report", "cancer", "-o", report,
                          "--config", config)
    assert code == 0, err
    html = report.read_text()
    assert "mean radius" in html
    assert "<svg" in html
    assert "https://" not in html.split("xmlns", 1)[0]
    code, out, err = _cli(capsys, "monitor", "report", "cancer", "-o", tmp_path / "r.json",
                          "--config", config)
    assert code == 0, err
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["model"] == "cancer"


def test_monitor_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: x\n    condition: 'accuracy <'\n")
    code, _, err = _cli(capsys, "monitor", "run", "--config", bad)
    assert code == 2
    assert "Error:" in err
    assert "Traceback" not in err
    code, _, err = _cli(capsys, "monitor", "run", "--config", tmp_path / "missing.yaml")
    assert code == 3
    assert "There is no monitoring config at" in err
    code, _out, err = _cli(capsys, "monitor", "run", "--window", "soon")
    assert code == 2
    assert "soon" in err
    code, _, err = _cli(capsys, "feedback", "m", tmp_path / "none.csv")
    assert code == 3
    (tmp_path / "l.csv").write_text("rid,label\na,1\n")
    code, _, err = _cli(capsys, "feedback", "m", tmp_path / "l.csv")
    assert code == 2
    assert "no column(s) ['id']" in err


def test_monitoring_without_traffic_says_so(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(capsys, "monitor", "run")
    assert code == 0
    assert "No model has an inference log" in err


@pytest.mark.parametrize("mode", ["drop", "hash"])
def test_sensitive_columns_are_left_out_of_drift_and_quality(
        tmp_path: Path, mode: str, capsys: pytest.CaptureFixture[str]) -> None:
    from modelyard.cli.serve import _build

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    settings = Settings(home=tmp_path / "home")
    settings = settings.model_copy(update={
        "security": settings.security.model_copy(update={"sensitive": mode}),
        "serving": ServingSettings(deployments=[
            DeploymentSettings(model="models:/cancer@production")], grpc_port=None),
        "monitoring": settings.monitoring.model_copy(update={"log_flush_interval_s": 0.05})})
    with Client(settings) as client:
        model = LogisticRegression(max_iter=5000).fit(X, y)
        client.register(model, "cancer", data=X, alias="production",
                        sensitive=["mean radius"])
    server = _build(settings)
    with running_server(server.app) as url, httpx.Client(base_url=url, timeout=10) as http:
        for i, start in enumerate(range(0, 200, 20)):
            body = _body(X.iloc[start:start + 20], f"s-{i}")
            assert http.post("/v2/models/cancer/infer", json=body).status_code == 200
    # The autouse fixture points MODELYARD_HOME at tmp_path / "home", as the settings above.
    code, out, err = _cli(capsys, "monitor", "run", "cancer", "--json")
    assert code == 0, err
    (result,) = json.loads(out)
    assert "mean radius" not in result["drift"]["columns"]
    assert result["quality"]["passed"] is True, result["quality"]
    assert any("Sensitive columns not monitored" in n for n in result["notes"])

