"""Metric, latency and size gates of run_gates, and evaluate() against scikit-learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from gates_helpers import X10, Y10, Broken, Linear, Threshold, holdout, model
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelyard.core.signature import Signature
from modelyard.errors import ConfigurationError, InvalidInputError
from modelyard.pipelines import GateCheck, GatesConfig, MetricGate, evaluate, run_gates
from modelyard.pipelines.evaluation import METRIC_NAMES, higher_is_better
from modelyard.runtimes.model import Model
from modelyard.runtimes.sklearn import SklearnPredictor

DATA = holdout(X10, Y10)


def _gates(candidate: Model, champion: Model | None = None, data: pd.DataFrame = DATA,
           **config: object) -> dict[str, GateCheck]:
    report = run_gates(candidate.version, candidate, data, GatesConfig.model_validate(config),
                       champion_model=champion)
    assert report.passed == all(c.passed for c in report.checks)
    return {c.name: c for c in report.checks}


@pytest.mark.parametrize(("metric", "higher"), [
    ("accuracy", True), ("precision", True), ("recall", True), ("f1", True),
    ("roc_auc", True), ("r2", True),
    ("log_loss", False), ("mae", False), ("rmse", False), ("mape", False),
])
def test_metric_directions(metric: str, higher: bool) -> None:
    assert higher_is_better(metric) is higher
    assert metric in METRIC_NAMES


def test_absolute_floor_and_ceiling() -> None:
    checks = _gates(model(Threshold(0.5)),
                    metrics={"accuracy": {"min": 0.8}, "recall": {"min": 0.81},
                             "log_loss": {"max": 0.1}})
    assert checks["accuracy.min"] == GateCheck(
        "accuracy.min", True, "accuracy 0.8, needs >= 0.8", 0.8, 0.8)
    assert not checks["recall.min"].passed
    assert checks["log_loss.max"].passed is False
    assert checks["log_loss.max"].detail.endswith(", needs <= 0.1")


@pytest.mark.parametrize(("min_delta", "passed"), [
    pytest.param(0.1, True, id="beats-by-exactly-0.1"),  # 0.9 - 0.8 is 0.09999... in floats
    pytest.param(0.11, False, id="not-by-0.11"),
    pytest.param(-0.05, True, id="tolerated-regression"),
])
def test_absolute_delta_in_the_better_direction_higher(min_delta: float, passed: bool) -> None:
    checks = _gates(model(Threshold(0.35), number=2), model(Threshold(0.5)),
                    metrics={"accuracy": {"min_delta": min_delta}})
    check = checks["accuracy.min_delta"]
    assert check.passed is passed
    assert check.value == pytest.approx(0.1)
    assert check.threshold == min_delta
    assert check.detail == ("accuracy 0.9 vs champion 0.8, gain +0.1 (higher is better), "
                            f"needs >= {min_delta:+g}")


def test_a_worse_candidate_fails_the_delta_and_a_tolerance_can_let_it_through() -> None:
    checks = _gates(model(Threshold(0.5), number=2), model(Threshold(0.35)),
                    metrics={"accuracy": {"min_delta": 0.0},
                             "f1": {"min_delta": -0.2}})
    assert checks["accuracy.min_delta"].passed is False
    assert checks["accuracy.min_delta"].value == pytest.approx(-0.1)
    assert checks["f1.min_delta"].passed is True


def test_lower_is_better_metrics_count_a_drop_as_a_gain() -> None:
    data = pd.DataFrame({"x": np.arange(10.0), "y": np.arange(10.0)})
    close, far = model(Linear(b=0.5), number=2), model(Linear(b=2.0))
    checks = _gates(close, far, data,
                    metrics={"mae": {"min_delta": 1.5, "min_relative_delta": 0.75},
                             "rmse": {"min_relative_delta": 0.76}})
    mae = checks["mae.min_delta"]
    assert (mae.passed, mae.value) == (True, pytest.approx(1.5))
    assert mae.detail == "mae 0.5 vs champion 2, gain +1.5 (lower is better), needs >= +1.5"
    relative = checks["mae.min_relative_delta"]
    assert (relative.passed, relative.value, relative.threshold) == (True, 0.75, 0.75)
    assert relative.detail.endswith("gain +75.00% (lower is better), needs >= +75.00%")
    assert checks["rmse.min_relative_delta"].passed is False
    # And the other way round: the far model loses 300% of the close one's mae.
    back = _gates(far, close, data, metrics={"mae": {"min_relative_delta": -2.9}})
    assert back["mae.min_relative_delta"].passed is False
    assert back["mae.min_relative_delta"].value == pytest.approx(-3.0)


def test_relative_delta_against_a_champion_at_zero() -> None:
    data = pd.DataFrame({"x": np.arange(5.0), "y": np.arange(5.0)})
    checks = _gates(model(Linear(), number=2), model(Linear()), data,
                    metrics={"mae": {"min_relative_delta": 0.0}})
    assert checks["mae.min_relative_delta"].passed is True  # 0 vs 0: no worse
    worse = _gates(model(Linear(b=1.0), number=2), model(Linear()), data,
                   metrics={"mae": {"min_relative_delta": -0.5}})
    check = worse["mae.min_relative_delta"]
    assert check.passed is False
    assert check.value == -np.inf


def test_without_a_champion_deltas_pass_and_absolutes_still_apply() -> None:
    report = run_gates(model(Threshold(0.5)).version, model(Threshold(0.5)), DATA,
                       GatesConfig(metrics={"accuracy": MetricGate(min=0.95, min_delta=0.0,
                                                                   min_relative_delta=0.1)}))
    checks = {c.name: c for c in report.checks}
    assert checks["signature"].detail == "no champion"
    assert checks["accuracy.min_delta"] == GateCheck("accuracy.min_delta", True,
                                                     "no champion to beat", None, 0.0)
    assert checks["accuracy.min_relative_delta"].passed is True
    assert checks["accuracy.min"].passed is False
    assert (report.passed, report.champion, report.champion_metrics) == (False, None, {})


def test_a_candidate_that_cannot_predict_fails_without_crashing() -> None:
    checks = _gates(model(Broken(), number=2), model(Threshold()),
                    metrics={"accuracy": {"min": 0.5, "min_delta": 0.0}})
    assert checks["predict"].passed is False
    assert "raised RuntimeError in predict: weights are corrupt" in checks["predict"].detail
    assert checks["accuracy.min"].detail.startswith("not evaluated: ")
    assert checks["accuracy.min_delta"].passed is False


def test_a_champion_that_cannot_predict_fails_the_delta_gates_only() -> None:
    checks = _gates(model(Threshold(), number=2), model(Broken()),
                    metrics={"accuracy": {"min": 0.5, "min_delta": 0.0}})
    assert checks["accuracy.min"].passed is True
    delta = checks["accuracy.min_delta"]
    assert delta.passed is False
    assert delta.detail.startswith("the champion cannot predict on the holdout: ")


@pytest.mark.parametrize(("candidate", "metrics", "match"), [
    pytest.param(Threshold(), {"rmse": {"max": 1}},
                 r"'rmse', a metric of regressors, but models:/m/1 is a classifier\. Its "
                 r"metrics are accuracy, f1, log_loss, precision, recall, roc_auc",
                 id="regression-metric-on-classifier"),
    pytest.param(Linear(), {"f1": {"min": 0.5}},
                 r"'f1', a metric of classifiers, but models:/m/1 is a regressor",
                 id="classification-metric-on-regressor"),
    pytest.param(Threshold(proba=False), {"roc_auc": {"min": 0.5}},
                 r"'roc_auc', which needs predicted probabilities, but models:/m/1 has no "
                 r"predict_proba\. Its metrics are accuracy, f1, precision, recall",
                 id="proba-metric-without-proba"),
    pytest.param(Threshold(), {"auc": {"min": 0.5}}, r"Unknown metric\(s\) \['auc'\]",
                 id="unknown"),
])
def test_metrics_the_model_cannot_have_are_configuration_errors(
        candidate: object, metrics: dict[str, object], match: str) -> None:
    data = DATA.assign(y=DATA["x"] * 2.0) if isinstance(candidate, Linear) else DATA
    with pytest.raises(ConfigurationError, match=match):
        _gates(model(candidate), data=data, metrics=metrics)


def test_a_metric_undefined_on_the_holdout_fails() -> None:
    one_class = holdout([0.6, 0.7, 0.8], [1, 1, 1])
    checks = _gates(model(Threshold()), data=one_class, metrics={"roc_auc": {"min": 0.5}})
    assert checks["roc_auc.min"].passed is False
    assert "undefined on this holdout" in checks["roc_auc.min"].detail


def test_evaluate_matches_scikit_learn_for_a_classifier() -> None:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    estimator = make_pipeline(StandardScaler(), LogisticRegression()).fit(X[:400], y[:400])
    loaded = Model(SklearnPredictor(estimator), model(Threshold(), signature=Signature.infer(
        X)).version)
    data = X[400:].assign(label=y[400:])
    got = evaluate(loaded, data, "label")
    pred, proba = estimator.predict(X[400:]), estimator.predict_proba(X[400:])
    want = {"accuracy": skm.accuracy_score(y[400:], pred),
            "precision": skm.precision_score(y[400:], pred),
            "recall": skm.recall_score(y[400:], pred), "f1": skm.f1_score(y[400:], pred),
            "roc_auc": skm.roc_auc_score(y[400:], proba[:, 1]),
            "log_loss": skm.log_loss(y[400:], proba)}
    assert got == pytest.approx(want, abs=1e-12)


def test_evaluate_matches_scikit_learn_for_a_regressor() -> None:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    estimator = LinearRegression().fit(X[:300], y[:300])
    loaded = Model(SklearnPredictor(estimator), model(Linear(), signature=Signature.infer(
        X)).version)
    got = evaluate(loaded, X[300:].assign(progression=y[300:]), "progression")
    pred = estimator.predict(X[300:])
    want = {"mae": skm.mean_absolute_error(y[300:], pred),
            "rmse": skm.root_mean_squared_error(y[300:], pred),
            "r2": skm.r2_score(y[300:], pred),
            "mape": skm.mean_absolute_percentage_error(y[300:], pred)}
    assert got == pytest.approx(want, rel=1e-9)


def test_labels_the_model_does_not_know_are_an_input_error() -> None:
    with pytest.raises(InvalidInputError, match=r"Labels 'no', 'yes' are not among the "
                                                r"classes \[0, 1\]"):
        _gates(model(Threshold()), data=holdout([0.2, 0.8], ["no", "yes"]))


@pytest.mark.parametrize(("budget", "passed"), [(60_000.0, True), (1e-9, False)])
def test_latency_budget(budget: float, passed: bool) -> None:
    checks = _gates(model(Threshold()), latency_p99_ms=budget, latency_samples=30)
    check = checks["latency_p99_ms"]
    assert check.passed is passed
    assert check.value is not None
    assert 0 < check.value < 60_000
    assert check.threshold == budget
    assert "over 30 single-row predicts" in check.detail


def test_latency_of_a_model_that_cannot_predict_fails() -> None:
    check = _gates(model(Broken()), latency_p99_ms=10.0)["latency_p99_ms"]
    assert (check.passed, check.value) == (False, None)
    assert check.detail.startswith("not measured: ")


def test_size_budget_in_mib() -> None:
    big = model(Threshold(), size_bytes=3 * 1024 * 1024)
    assert _gates(big, max_size_mb=3)["size_mb"] == GateCheck(
        "size_mb", True, "stored artifact 3 MiB, at most 3 MiB", 3.0, 3.0)
    assert _gates(big, max_size_mb=2.5)["size_mb"].passed is False


def test_the_target_comes_from_the_argument_the_config_or_the_one_other_column() -> None:
    data = DATA.rename(columns={"y": "label"}).assign(extra=1)
    candidate = model(Threshold())
    with pytest.raises(InvalidInputError, match=r"columns \['label', 'extra'\] are not a model "
                                                r"input"):
        run_gates(candidate.version, candidate, data, GatesConfig())
    for config, target in [(GatesConfig(target="label"), None),
                           (GatesConfig(target="wrong"), "label")]:
        report = run_gates(candidate.version, candidate, data, config, target=target)
        assert report.candidate_metrics["accuracy"] == 0.8
    inferred = run_gates(candidate.version, candidate, data.drop(columns="extra"), GatesConfig())
    assert inferred.rows == 10
    with pytest.raises(InvalidInputError, match=r"no target column 'y'; its columns are "
                                                r"\['x', 'label', 'extra'\]"):
        run_gates(candidate.version, candidate, data, GatesConfig(), target="y")


def test_a_model_without_named_inputs_needs_an_explicit_target() -> None:
    candidate = model(Threshold(), signature=None)
    with pytest.raises(InvalidInputError, match="a model has no named input columns"):
        run_gates(candidate.version, candidate, DATA, GatesConfig())
    report = run_gates(candidate.version, candidate, DATA, GatesConfig(), target="y")
    assert report.candidate_metrics["accuracy"] == 0.8


@pytest.mark.parametrize(("data", "match"), [
    pytest.param(DATA.iloc[:0], "The holdout has no rows", id="empty"),
    pytest.param(DATA.assign(y=[0, 1, None, 1, 1, 0, 1, 1, 0, 1]),
                 r"The target column 'y' has 1 missing label\(s\) in 10 rows", id="unlabelled"),
])
def test_holdout_problems_are_input_errors(data: pd.DataFrame, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        _gates(model(Threshold()), data=data)


def test_a_champion_given_without_its_model_is_refused() -> None:
    candidate = model(Threshold(), number=2)
    with pytest.raises(InvalidInputError, match="without its loaded model"):
        run_gates(candidate.version, candidate, DATA, GatesConfig(),
                  champion=model(Threshold()).version)
