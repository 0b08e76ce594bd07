"""``modelyard pipeline run|watch|runs|show`` on a real registry: the first version becomes the
champion, new files start a watched run whose version records its parent and its data, a
failing train function is recorded while the watcher goes on, a worse candidate is rejected
and not registered, and a passing one starts a rollout."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from tests.integration.cli_runner import Result, run_cli

from modelyard import Client
from modelyard.registry.sql.audit import SqlAuditLog
from modelyard.registry.sql.pipeline_store import SqlPipelineStore
from modelyard.settings import Settings

TRAIN = '''
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

FEATURES = ["f0", "f1", "f2", "f3"]


def fit(df, params):
    print(f"fitting on {len(df)} rows")
    return LogisticRegression(max_iter=500, C=params.get("C", 1.0)).fit(df[FEATURES], df["y"])


def needs_two_files(df, params):
    if len(df) < 600:
        raise ValueError(f"only {len(df)} rows")
    return fit(df, params)


def dummy(df, params):
    return DummyClassifier(strategy="most_frequent").fit(df[FEATURES], df["y"])


def boom(df, params):
    raise RuntimeError("the GPU caught fire")
'''


Cli = Callable[..., Result]


@dataclass(frozen=True)
class Yard:
    folder: Path
    later: Path  # a second data file, copied into data/ to start a watched run

    def pipeline(self, name: str = "churn-retrain", *, train: str = "fit",
                 on_pass: str = "{action: promote}",
                 gates: str = "{metrics: {accuracy: {min: 0.6, min_delta: -0.05}}}") -> Path:
        path = self.folder / f"{name}.yaml"
        path.write_text(f"""
name: {name}
model: churn
data: {{path: "data/*.csv"}}
target: y
train: "pl_cli_train:{train}"
params: {{C: 0.5}}
split: {{kind: time, time_column: t, test_size: 0.25}}
gates: {gates}
on_pass: {on_pass}
triggers:
  new_data: {{poll_s: 0.1, settle_s: 0.2}}
""")
        return path

    def add_later_file(self) -> None:
        shutil.copy(self.later, self.folder / "data" / "b.csv")


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("MODELYARD_USER", "alice")

    def run(*args: str | Path) -> Result:
        return run_cli(capsys, *args)

    return run


@pytest.fixture
def yard(tmp_path: Path) -> Yard:
    X, y = make_classification(n_samples=1200, n_features=4, n_informative=3, n_redundant=0,
                               flip_y=0.05, random_state=3)
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(4)]).assign(y=y, t=np.arange(1200))
    folder = tmp_path / "project"
    (folder / "data").mkdir(parents=True)
    df.iloc[:600].to_csv(folder / "data" / "a.csv", index=False)
    later = tmp_path / "later.csv"
    df.iloc[600:].to_csv(later, index=False)
    (folder / "pl_cli_train.py").write_text(TRAIN)
    return Yard(folder, later)


def client() -> Client:
    return Client(Settings())


def test_first_run_then_new_data_makes_a_child_version_with_its_data(
        cli: Cli, yard: Yard) -> None:
    path = yard.pipeline()
    first = cli("pipeline", "run", path)
    assert first.code == 0, first.err
    assert "Run 1 of churn-retrain (model churn): passed" in first.out
    assert "fitting on 450 rows" in first.out  # the train function's prints are shown...
    with client() as c:
        assert c.get_model("churn").aliases == {"production": 1}  # no champion: v1 is it
        v1 = c.get_version("churn", 1)
        assert v1.lineage.parent_version is None
        assert v1.tags["pipeline"] == "churn-retrain"
        assert v1.tags["pipeline_run"] == "1"

    yard.add_later_file()
    watched = cli("pipeline", "watch", path, "--poll", "0.1", "--max-runs", "1",
                  "--timeout", "120")
    assert watched.code == 0, watched.err
    assert "run starts: new data: 1 file(s) (b.csv)" in watched.out
    assert "Stopped (max-runs) after 1 run(s): 1 passed" in watched.out

    runs = SqlPipelineStore(client().store.engine).list_runs(pipeline="churn-retrain")
    assert [(r.id, r.status, r.version, r.champion_version) for r in runs] == [
        (2, "passed", 2, 1), (1, "passed", 1, None)]
    second = runs[0]
    assert second.trigger == "new data: 1 file(s) (b.csv)"
    assert second.data is not None
    assert second.data["fingerprint"]["rows"] == 1200
    assert [f["uri"].rsplit("/", 1)[-1] for f in second.data["files"]] == ["a.csv", "b.csv"]
    assert second.params == {"C": 0.5}
    assert second.candidate_metrics["accuracy"] > 0.6
    assert set(second.champion_metrics) == set(second.candidate_metrics)
    assert [c["name"] for c in second.gates["checks"]] == [
        "signature", "accuracy.min", "accuracy.min_delta"]
    assert second.gates["candidate"] == "models:/churn/2"
    with client() as c:
        v2 = c.get_version("churn", 2)
        assert v2.lineage.parent_version == 1
        assert v2.lineage.data is not None
        assert v2.lineage.data.rows == 900
        assert list(v2.lineage.data.schema) == ["f0", "f1", "f2", "f3"]
        assert v2.tags["pipeline_data"] == second.data["fingerprint"]["sha256"]
        assert v2.lineage.params == {"C": 0.5}
        assert v2.lineage.metrics["accuracy"] == pytest.approx(
            second.candidate_metrics["accuracy"])
        assert c.get_model("churn").aliases == {"production": 2}  # on_pass: promote
        move = c.alias_history("churn", "production")[-1]
        assert move.reason == "pipeline churn-retrain run 2 passed the gates"
        audit = SqlAuditLog(c.store.engine).entries(action="pipeline.run")
        assert [(e.target, e.after["status"]) for e in audit] == [
            ("pipeline:churn-retrain#1", "passed"), ("pipeline:churn-retrain#2", "passed")]

    # Nothing new: a watcher finds nothing to do.
    idle = cli("pipeline", "watch", path, "--poll", "0.05", "--timeout", "0.3")
    assert idle.code == 0
    assert "Stopped (timeout) after 0 run(s)" in idle.out

    listed = cli("pipeline", "runs", "--json")
    assert listed.code == 0
    shown = cli("pipeline", "show", "2")
    assert shown.code == 0
    assert "fitting on 900 rows" in shown.out  # ...and kept in the run's log
    assert "Registered models:/churn/2 (parent: models:/churn/1)" in shown.out
    table = cli("pipeline", "runs", "--pipeline", "churn-retrain")
    assert table.code == 0
    assert "passed" in table.out


def test_a_failing_run_is_recorded_and_the_watcher_goes_on(cli: Cli, yard: Yard) -> None:
    path = yard.pipeline(train="needs_two_files")
    store = SqlPipelineStore(client().store.engine)

    def add_data_once_the_first_run_failed() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(r.status == "failed" for r in store.list_runs()):
                yard.add_later_file()
                return
            time.sleep(0.05)

    helper = threading.Thread(target=add_data_once_the_first_run_failed)
    helper.start()
    watched = cli("pipeline", "watch", path, "--poll", "0.1", "--max-runs", "2",
                  "--timeout", "120")
    helper.join()
    assert watched.code == 0, watched.err
    assert "run 1 failed" in watched.out
    assert "run 2 passed -> version 1" in watched.out
    failed, passed = reversed(store.list_runs())
    assert failed.status == "failed"
    assert failed.version is None
    assert failed.error is not None
    assert "pl_cli_train:needs_two_files raised ValueError: only 450 rows" in failed.error
    assert "Traceback" in failed.log
    assert "ValueError: only 450 rows" in failed.log
    assert failed.data is not None  # what was known before the failure is kept
    assert passed.status == "passed"
    assert passed.version == 1

    shown = cli("pipeline", "show", str(failed.id))
    assert shown.code == 0
    assert "ValueError" in shown.out

    # Run once, failing: one error line with a hint, the exit code of a bad input, no traceback.
    broken = cli("pipeline", "run", yard.pipeline("churn-broken", train="boom"))
    assert broken.code == 2
    assert "Run 3 failed; its log: modelyard pipeline show 3" in broken.err
    assert "Error: The train function pl_cli_train:boom raised RuntimeError: the GPU caught " \
           "fire" in broken.err
    assert "Traceback" not in broken.err + broken.out


def test_a_worse_candidate_is_rejected_and_not_registered(cli: Cli, yard: Yard) -> None:
    assert cli("pipeline", "run", yard.pipeline()).code == 0
    worse = yard.pipeline("churn-dummy", train="dummy",
                          gates="{metrics: {accuracy: {min_delta: 0.0}}}")
    rejected = cli("pipeline", "run", worse, "--trigger", "nightly check")
    assert rejected.code == 1, rejected.err
    assert "rejected" in rejected.out
    assert "FAILED" in rejected.out
    with client() as c:
        assert [v.version for v in c.list_versions("churn")] == [1]
        assert c.get_model("churn").aliases == {"production": 1}
    run = cli("pipeline", "runs", "--pipeline", "churn-dummy", "--json")
    [record] = json.loads(run.out)
    assert record["status"] == "rejected"
    assert record["version"] is None
    assert record["trigger"] == "nightly check"
    assert record["champion_version"] == 1
    assert record["candidate_metrics"]["accuracy"] < record["champion_metrics"]["accuracy"]
    assert [c["name"] for c in record["gates"]["checks"] if not c["passed"]] == [
        "accuracy.min_delta"]


def test_a_passing_candidate_starts_a_rollout(cli: Cli, yard: Yard) -> None:
    path = yard.pipeline(on_pass="{action: rollout, mode: canary, weight: 0.2}")
    assert cli("pipeline", "run", path).code == 0  # v1: the champion, nothing to roll out
    yard.add_later_file()
    second = cli("pipeline", "run", path)
    assert second.code == 0, second.err
    with client() as c:
        rollout = c.active_rollout("churn")
        assert rollout is not None
        assert (rollout.champion, rollout.challenger, rollout.weight) == (1, 2, 0.2)
        assert rollout.reason == "pipeline churn-retrain run 2 passed the gates"
        assert c.get_model("churn").aliases["production"] == 1


def test_pipeline_file_errors_are_one_line(cli: Cli, yard: Yard) -> None:
    bad = yard.folder / "bad.yaml"
    bad.write_text("name: x\nmodel: churn\ndata: d/*.csv\ntarget: y\ntrain: 't:f'\n"
                   "split: {kind: time}\nepochs: 3\n")
    result = cli("pipeline", "run", bad)
    assert result.code == 2
    assert "Error: The pipeline file" in result.err
    assert "split: a time split needs 'time_column'; epochs: unknown key" in result.err
    assert "Traceback" not in result.err
    missing = cli("pipeline", "show", "99")
    assert missing.code == 3
    assert "There is no pipeline run 99" in missing.err
