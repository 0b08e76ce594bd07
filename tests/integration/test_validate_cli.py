"""``modelyard validate`` against a real SQLite registry: a logistic regression champion on
breast_cancer (@production), a better candidate that passes and a dummy one that fails.

The command is driven through ``modelyard.cli.main.main`` (its error handling and exit codes)
on a local Typer app that registers ``validate.validate`` the way ``cli/main.py`` will.
"""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import typer
from sklearn.datasets import load_breast_cancer
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tests.integration.cli_runner import Result, Run, run_cli

from modelyard import Client
from modelyard.cli import validate as validate_cli
from modelyard.settings import Settings

# The module, not the function that modelyard.cli re-exports under the same name.
cli_main = importlib.import_module("modelyard.cli.main")

CHAMPION = "models:/cancer@production"
GOOD, BAD = "models:/cancer/2", "models:/cancer/3"

GATES = """\
metrics:
  accuracy: {min: 0.9, min_delta: 0.0}
  roc_auc: {min_relative_delta: 0.0}
  log_loss: {max: 0.3}
signature: compatible
latency_p99_ms: 5000
latency_samples: 50
max_size_mb: 5
checks: ["validate_cli_checks:predicts_both_classes"]
"""

CHECKS = """\
def predicts_both_classes(ctx):
    predicted = set(ctx.candidate_model.predict(ctx.features()).tolist())
    return predicted == {0, 1}, f"predicted classes {sorted(predicted)}"
"""


@dataclass(frozen=True)
class Yard:
    home: Path
    holdout: Path


@pytest.fixture(scope="module")
def yard(tmp_path_factory: pytest.TempPathFactory) -> Yard:
    """v1: a heavily regularised logistic regression (@production); v2: a better one; v3: a
    DummyClassifier that always says the majority class."""
    home = tmp_path_factory.mktemp("validate-home")
    files = tmp_path_factory.mktemp("validate-files")
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0,
                                                        stratify=y)
    champion = make_pipeline(StandardScaler(), LogisticRegression(C=0.001)).fit(X_train, y_train)
    better = make_pipeline(StandardScaler(), LogisticRegression()).fit(X_train, y_train)
    dummy = DummyClassifier(strategy="most_frequent").fit(X_train, y_train)
    with Client(Settings(home=home)) as client:
        client.register(champion, "cancer", data=X_train, alias="production")
        client.register(better, "cancer", data=X_train)
        client.register(dummy, "cancer", data=X_train)
    holdout = files / "holdout.parquet"
    X_test.assign(diagnosis=y_test.to_numpy()).to_parquet(holdout, index=False)
    return Yard(home=home, holdout=holdout)


@pytest.fixture
def run(yard: Yard, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setenv("MODELYARD_HOME", str(yard.home))
    monkeypatch.setenv("COLUMNS", "250")  # one table row per check, whatever the terminal
    monkeypatch.chdir(tmp_path)  # where gates.yaml and the user checks live
    (tmp_path / "gates.yaml").write_text(GATES)
    (tmp_path / "validate_cli_checks.py").write_text(CHECKS)
    monkeypatch.delitem(sys.modules, "validate_cli_checks", raising=False)
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    app.callback()(cli_main._root)
    app.command("validate")(validate_cli.validate)
    monkeypatch.setattr(cli_main, "app", app)  # main()'s error handling, around this app

    def _run(*args: str | Path) -> Result:
        return run_cli(capsys, "validate", *args)

    return _run


def test_a_better_candidate_passes_and_the_report_has_both_metric_sets(
        run: Run, yard: Yard, tmp_path: Path) -> None:
    report = tmp_path / "out" / "validation.json"
    result = run(GOOD, "--against", CHAMPION, "--data", yard.holdout, "--config", "gates.yaml",
                 "--report", report)
    assert result.code == 0, result.out + result.err
    assert result.err == ""
    assert (f"Validation of {GOOD} against models:/cancer/1 on holdout.parquet: 171 rows"
            in result.out)
    for check in ("signature", "accuracy.min", "accuracy.min_delta",
                  "roc_auc.min_relative_delta", "log_loss.max", "latency_p99_ms", "size_mb",
                  "check:validate_cli_checks:predicts_both_classes"):
        assert "PASS" in result.row(check), check
    assert "FAIL" not in result.out
    assert result.out.rstrip().endswith("PASSED: all 8 checks passed.")
    assert "Metrics on the holdout" in result.out
    written = json.loads(report.read_text())
    assert written["passed"] is True
    assert (written["candidate"], written["champion"]) == (GOOD, "models:/cancer/1")
    assert written["rows"] == 171
    for metrics in (written["candidate_metrics"], written["champion_metrics"]):
        assert set(metrics) == {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"}
    assert written["candidate_metrics"]["accuracy"] > written["champion_metrics"]["accuracy"]
    assert written["deltas"]["accuracy"] == pytest.approx(
        written["candidate_metrics"]["accuracy"] - written["champion_metrics"]["accuracy"])


def test_a_bad_candidate_fails_and_the_table_says_which_gate(run: Run, yard: Yard,
                                                             tmp_path: Path) -> None:
    result = run(BAD, "-a", CHAMPION, "-d", yard.holdout, "-c", "gates.yaml", "-r",
                 tmp_path / "bad.json")
    assert result.code == 1
    assert result.err == ""
    for check in ("accuracy.min", "accuracy.min_delta", "roc_auc.min_relative_delta",
                  "log_loss.max", "check:validate_cli_checks:predicts_both_classes"):
        assert "FAIL" in result.row(check), check
    assert "accuracy 0.6257, needs >= 0.9" in result.out
    assert "predicted classes [1]" in result.out
    for check in ("signature", "latency_p99_ms", "size_mb"):
        assert "PASS" in result.row(check), check
    assert result.out.rstrip().splitlines()[-1] == (
        "FAILED: 5 of 8 checks failed: accuracy.min, accuracy.min_delta, "
        "roc_auc.min_relative_delta, log_loss.max, "
        "check:validate_cli_checks:predicts_both_classes")
    written = json.loads((tmp_path / "bad.json").read_text())
    assert written["passed"] is False
    assert written["failed"][0] == "accuracy.min"


def test_an_impossible_latency_budget_fails(run: Run, yard: Yard, tmp_path: Path) -> None:
    (tmp_path / "fast.yaml").write_text("latency_p99_ms: 0.000001\nlatency_samples: 20\n")
    result = run(GOOD, "--against", CHAMPION, "--data", yard.holdout, "--config", "fast.yaml",
                 "--json")
    assert result.code == 1
    report = result.json()
    assert report["failed"] == ["latency_p99_ms"]
    latency = next(c for c in report["checks"] if c["name"] == "latency_p99_ms")
    assert latency["threshold"] == 0.000001
    assert latency["value"] > 0.000001
    assert "over 20 single-row predicts" in latency["detail"]


def test_without_a_champion_on_a_csv_holdout(run: Run, yard: Yard, tmp_path: Path) -> None:
    csv = tmp_path / "holdout.csv"
    pd.read_parquet(yard.holdout).to_csv(csv, index=False)
    result = run(GOOD, "--data", csv, "--config", "gates.yaml", "--target", "diagnosis",
                 "--json")
    assert result.code == 0, result.out + result.err
    report = result.json()
    assert report["champion"] is None
    assert report["champion_metrics"] == {}
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["signature"]["detail"] == "no champion"
    assert checks["accuracy.min_delta"]["detail"] == "no champion to beat"


def test_an_incompatible_holdout_fails_the_signature_and_predict(run: Run, yard: Yard,
                                                                 tmp_path: Path) -> None:
    thin = tmp_path / "thin.parquet"
    pd.read_parquet(yard.holdout).drop(columns=["mean radius"]).to_parquet(thin)
    result = run(GOOD, "--against", CHAMPION, "--data", thin, "--target", "diagnosis")
    assert result.code == 1
    assert "the holdout lacks input(s) ['mean radius']" in result.row("signature")
    assert "FAIL" in result.row("predict")


@pytest.mark.parametrize(("args", "gates", "code", "error"), [
    pytest.param(["--data", "nowhere.parquet"], None, 3,
                 "Error: There is no data file at 'nowhere.parquet'.", id="missing-data-file"),
    pytest.param(["--config", "gates.yaml"], "metrics: {acc: {min: 0.9}}\n", 6,
                 "Error: Unknown metric(s) ['acc'] in the gates. The metrics are accuracy, "
                 "precision, recall, f1, roc_auc, log_loss (classifiers) and mae, rmse, r2, "
                 "mape (regressors).", id="unknown-metric"),
    pytest.param(["--config", "gates.yaml"], "metrics: {rmse: {max: 0.9}}\n", 6,
                 "Error: The gates name 'rmse', a metric of regressors, but models:/cancer/2 "
                 "is a classifier. Its metrics are accuracy, f1, log_loss, precision, recall, "
                 "roc_auc.", id="metric-of-the-other-task"),
    pytest.param(["--config", "gates.yaml"], "metrics: [accuracy\n", 6,
                 "Error: 'gates.yaml' is not valid YAML: ", id="bad-yaml"),
    pytest.param(["--config", "gates.yaml"], "checks: [nowhere_to_be_found:fn]\n", 6,
                 "Error: Cannot import the module of check 'nowhere_to_be_found:fn': "
                 "ModuleNotFoundError: No module named 'nowhere_to_be_found'",
                 id="check-import-error"),
    pytest.param(["--config", "missing.yaml"], None, 3,
                 "Error: There is no gates file at 'missing.yaml'.", id="missing-config"),
    pytest.param(["--against", "models:/cancer@staging"], None, 3, "Error: ",
                 id="unknown-alias"),
    pytest.param(["--target", "label"], None, 2,
                 "Error: The holdout has no target column 'label'", id="unknown-target"),
])
def test_bad_input_is_a_one_line_error(run: Run, yard: Yard, tmp_path: Path, args: list[str],
                                       gates: str | None, code: int, error: str) -> None:
    if gates is not None:
        (tmp_path / "gates.yaml").write_text(gates)
    if "--data" not in args:
        args = [*args, "--data", str(yard.holdout)]
    result = run(GOOD, *args)
    assert result.code == code, result.err
    assert result.out == ""
    lines = result.err.splitlines()
    assert [line.split(":")[0] for line in lines] == ["Error", "Hint"], result.err
    assert lines[0].startswith(error)
    assert "Traceback" not in result.err
