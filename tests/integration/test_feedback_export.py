"""``modelyard feedback export``: logged inputs joined with their labels, as Parquet, and the
same rows feeding a pipeline (``data: feedback:NAME``); ``modelyard feedback NAME FILE``
still records labels."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from modelyard import Client
from modelyard.cli.main import main
from modelyard.core.inference import InferenceRecord
from modelyard.monitoring.inference_log import InferenceLog
from modelyard.monitoring.log_store import ParquetLogStore
from modelyard.registry.sql.pipeline_store import SqlPipelineStore
from modelyard.settings import Settings

FEATURES = ["mean radius", "mean texture", "mean smoothness", "worst area"]
DAY = 86400.0

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("MODELYARD_USER", "alice")

    def run(*args: str | Path) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def served(home: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Model 'cancer' v1 and v2, and a log of what they answered: 120 single-row requests
    by v1 today, one 3-row request by v2, one failed request, and 10 requests 10 days ago."""
    data = load_breast_cancer(as_frame=True)
    X, y = data.data[FEATURES], data.target.to_numpy()
    settings = Settings()
    with Client(settings) as client:
        model = LogisticRegression(max_iter=2000).fit(X, y)
        client.register(model, "cancer", data=X, alias="production")
        client.register(model, "cancer", data=X)
    sink = InferenceLog(ParquetLogStore(settings.resolved_log_uri()), flush_interval_s=0.05)
    now = time.time()

    def emit(rid: str, version: int, rows: slice, ts: float) -> None:
        part = X.iloc[rows]
        inputs = {c: part[c].to_numpy() for c in FEATURES}
        sink.emit(InferenceRecord(rid, "cancer", version, ts, inputs,
                                  {"predict": model.predict(part),
                                   "predict_proba": model.predict_proba(part)}, 1.0, "v2"))

    for i in range(120):
        emit(f"r{i}", 1, slice(i, i + 1), now - 3600 + i)
    emit("multi", 2, slice(200, 203), now - 60)
    sink.emit(InferenceRecord("bad", "cancer", 1, now - 30, None, {}, 1.0, "v2",
                              "InvalidInputError"))
    for i in range(10):
        emit(f"old{i}", 1, slice(300 + i, 301 + i), now - 10 * DAY + i)
    sink.close()
    return X, y


def _labels(path: Path, y: np.ndarray) -> Path:
    ids = [f"r{i}" for i in range(100)] + ["multi", "old0"]
    rows = [0] * 100 + [2, 0]
    labels = [int(y[i]) for i in range(100)] + [int(y[202]), int(y[300])]
    pd.DataFrame({"id": ids, "row": rows, "label": labels}).to_csv(path, index=False)
    return path


def test_export_writes_inputs_predictions_and_labels(
        cli: Cli, served: tuple[pd.DataFrame, np.ndarray], tmp_path: Path) -> None:
    X, y = served
    # The old form of the command still records labels (the group's default subcommand).
    code, out, err = cli("feedback", "cancer", _labels(tmp_path / "labels.csv", y),
                         "--row-column", "row")
    assert code == 0, err
    assert out.strip() == "Recorded 102 labels for cancer."

    target = tmp_path / "export" / "cancer.parquet"
    code, out, err = cli("feedback", "export", "cancer", "--since", "7d", "-o", target)
    assert code == 0, err
    assert f"Wrote 101 rows (101 labelled) of cancer to {target}." in out
    frame = pd.read_parquet(target)
    assert list(frame.columns) == ["request_id", "row", "timestamp", "version", *FEATURES,
                                   "prediction", "proba_0", "proba_1", "label",
                                   "label_timestamp"]
    assert len(frame) == 101  # 100 labelled single rows + row 2 of 'multi'; not 'old0'
    first = frame.iloc[0]
    assert (first["request_id"], first["row"], first["version"]) == ("r0", 0, 1)
    assert first["mean radius"] == pytest.approx(X.iloc[0]["mean radius"])
    assert first["label"] == y[0]
    assert first["proba_0"] + first["proba_1"] == pytest.approx(1.0)
    multi = frame[frame["request_id"] == "multi"].iloc[0]
    assert (multi["row"], multi["version"], multi["label"]) == (2, 2, y[202])
    assert multi["worst area"] == pytest.approx(X.iloc[202]["worst area"])
    assert (frame["label_timestamp"] >= frame["timestamp"]).all()

    everything = tmp_path / "all.parquet"
    code, out, err = cli("feedback", "export", "cancer", "--unlabelled", "--version", "1",
                         "-o", everything)
    assert code == 0, err
    full = pd.read_parquet(everything)
    assert len(full) == 130  # every answered v1 row, old ones included; no failed request
    assert int(full["label"].notna().sum()) == 101
    assert set(full["version"]) == {1}

    code, _, err = cli("feedback", "export", "cancer", "--since", "last week", "-o", target)
    assert code == 2
    assert "neither a duration nor a time" in err


def test_the_feedback_loop_feeds_a_pipeline(
        cli: Cli, served: tuple[pd.DataFrame, np.ndarray], tmp_path: Path) -> None:
    _, y = served
    assert cli("feedback", "add", "cancer", _labels(tmp_path / "labels.csv", y),
               "--row-column", "row")[0] == 0
    (tmp_path / "pl_feedback_train.py").write_text(
        "from sklearn.linear_model import LogisticRegression\n\n"
        f"def fit(df, params):\n"
        f"    return LogisticRegression(max_iter=2000).fit(df[{FEATURES}], df['label'])\n")
    path = tmp_path / "pipeline.yaml"
    path.write_text("""
name: cancer-feedback
model: cancer
data: {feedback: cancer, since: 7d}
target: label
train: "pl_feedback_train:fit"
split: {kind: time, time_column: timestamp, test_size: 0.3}
gates: {metrics: {accuracy: {min: 0.5}}}
""")
    code, _out, err = cli("pipeline", "run", path, "--json")
    assert code == 0, err
    with Client(Settings()) as client:
        v3 = client.get_version("cancer", 3)
        assert v3.lineage.parent_version == 1
        assert v3.signature is not None
        assert list(v3.signature.inputs.names) == FEATURES
        [run] = SqlPipelineStore(client.store.engine).list_runs()
    assert run.data is not None
    assert run.data["kind"] == "feedback"
    assert run.data["fingerprint"]["rows"] == 101
