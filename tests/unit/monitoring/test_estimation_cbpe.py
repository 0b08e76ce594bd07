"""Confidence-based performance estimation: exact small values, and on synthetic calibrated data
the estimate matches the performance later realised, under covariate shift and as scores move
toward 0.5; miscalibration (the stated assumption) is shown to break it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from modelyard.errors import InvalidInputError
from modelyard.monitoring.estimation import estimate_classification
from modelyard.monitoring.performance import classification_metrics

N = 20_000
WEIGHTS = np.array([1.5, -1.0, 0.5])


def binary_scenario(seed: int, *, shift: float = 0.0, sharpness: float = 1.0,
                    reported_sharpness: float | None = None, n: int = N,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Covariates x ~ N(shift, 1); the true P(y=1|x) = sigmoid(sharpness * (x @ w) + 0.3);
    labels ~ Bernoulli(P). The model reports that probability (calibrated), or one with
    another sharpness (miscalibrated)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, size=(n, 3))
    logit = x @ WEIGHTS + 0.3
    p = 1.0 / (1.0 + np.exp(-sharpness * logit))
    y = (rng.random(n) < p).astype(int)
    shown = p if reported_sharpness is None else 1.0 / (1.0 + np.exp(-reported_sharpness * logit))
    return np.column_stack([1.0 - shown, shown]), y


def realised(proba: np.ndarray, y: np.ndarray) -> dict[str, float]:
    predicted = np.argmax(proba, axis=1)
    return classification_metrics(y, predicted, proba=proba, classes=list(range(proba.shape[1])))


def test_small_example_by_hand() -> None:
    # Predicted 0, 1, 1 with confidence 0.9, 0.8, 0.6. Expected TP = 0.8 + 0.6, FP = 0.2 + 0.4,
    # FN = 0.1. Expected ordered pairs 0.8*0.9 + 0.8*0.4 + 0.6*0.9 = 1.58 over
    # 1.5 * 1.5 - (0.09 + 0.16 + 0.24) = 1.76 expected (positive, negative) pairs.
    est = estimate_classification(np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]]))
    assert est == pytest.approx({
        "n": 3.0,
        "estimated_accuracy": (0.9 + 0.8 + 0.6) / 3,
        "estimated_accuracy_sd": np.sqrt(0.9 * 0.1 + 0.8 * 0.2 + 0.6 * 0.4) / 3,
        "estimated_precision": 1.4 / 2.0,
        "estimated_recall": 1.4 / 1.5,
        "estimated_f1": 2.8 / 3.5,
        "estimated_roc_auc": 1.58 / 1.76,
    }, rel=1e-12)


def test_one_dimensional_input_is_the_positive_class() -> None:
    proba, _ = binary_scenario(0, n=500)
    assert estimate_classification(proba[:, 1]) == pytest.approx(
        estimate_classification(proba), rel=1e-12)


def test_certain_probabilities_are_realised_exactly() -> None:
    # With probabilities of 0 and 1 the labels are known, so the estimate is the truth.
    proba = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    est = estimate_classification(proba, classes=["no", "yes"])
    assert est["estimated_accuracy"] == est["estimated_f1"] == est["estimated_roc_auc"] == 1.0
    assert est["estimated_accuracy_sd"] == 0.0


def test_roc_auc_left_out_when_no_pair_can_form() -> None:
    est = estimate_classification(np.array([[0.0, 1.0], [0.0, 1.0]]))
    assert "estimated_roc_auc" not in est
    assert est["estimated_accuracy"] == 1.0


@pytest.mark.parametrize("shift", [0.0, 0.6, -0.8], ids=["reference", "shift-up", "shift-down"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_estimate_matches_realised_under_covariate_shift(shift: float, seed: int) -> None:
    proba, y = binary_scenario(seed, shift=shift)
    est = estimate_classification(proba, classes=[0, 1])
    real = realised(proba, y)
    # Realised accuracy scatters around the estimate with sd ~0.003 at this size.
    assert abs(real["accuracy"] - est["estimated_accuracy"]) < 4 * est["estimated_accuracy_sd"]
    for key, tolerance in [("accuracy", 0.015), ("precision", 0.02), ("recall", 0.02),
                           ("f1", 0.02), ("roc_auc", 0.015)]:
        assert est[f"estimated_{key}"] == pytest.approx(real[key], abs=tolerance), key


def test_accuracy_sd_covers_the_realised_accuracy() -> None:
    # Over many small windows, about 95% of realised accuracies fall within 1.96 sd.
    inside = 0
    runs = 300
    for seed in range(runs):
        proba, y = binary_scenario(1000 + seed, n=400, shift=0.3)
        est = estimate_classification(proba)
        accuracy = float(np.mean(np.argmax(proba, axis=1) == y))
        inside += abs(accuracy - est["estimated_accuracy"]) <= 1.96 * est["estimated_accuracy_sd"]
    assert 0.91 <= inside / runs <= 0.99


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tracks_a_drop_as_scores_move_toward_one_half(seed: int) -> None:
    # The same inputs, but the outcome becomes harder to call: scores move toward 0.5 and the
    # realised accuracy falls; a calibrated model's estimate falls with it.
    before_proba, before_y = binary_scenario(seed, sharpness=1.0)
    after_proba, after_y = binary_scenario(seed + 100, sharpness=0.25)
    assert np.abs(after_proba[:, 1] - 0.5).mean() < np.abs(before_proba[:, 1] - 0.5).mean() / 2
    real_drop = realised(before_proba, before_y)["accuracy"] - \
        realised(after_proba, after_y)["accuracy"]
    est_drop = estimate_classification(before_proba)["estimated_accuracy"] - \
        estimate_classification(after_proba)["estimated_accuracy"]
    assert real_drop > 0.1
    assert est_drop == pytest.approx(real_drop, abs=0.02)


def test_overconfident_probabilities_overestimate() -> None:
    # The stated assumption: the model reports sharper probabilities than the truth, so the
    # estimate overshoots the realised accuracy by far more than its noise.
    proba, y = binary_scenario(5, sharpness=0.5, reported_sharpness=2.0)
    est = estimate_classification(proba)["estimated_accuracy"]
    assert est - realised(proba, y)["accuracy"] > 0.1


def multiclass_scenario(seed: int, *, shift: float = 0.0, k: int = 4,
                        n: int = N) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, size=(n, 3))
    w = np.random.default_rng(99).normal(0.0, 1.2, size=(3, k))
    logits = x @ w
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    y = (rng.random(n)[:, None] > np.cumsum(proba, axis=1)).sum(axis=1)  # y ~ Categorical
    return proba, np.minimum(y, k - 1)


@pytest.mark.parametrize("shift", [0.0, 0.7], ids=["reference", "shifted"])
@pytest.mark.parametrize("seed", [0, 1])
def test_multiclass_estimate_matches_realised(shift: float, seed: int) -> None:
    proba, y = multiclass_scenario(seed, shift=shift)
    est = estimate_classification(proba, classes=["a", "b", "c", "d"])
    real = realised(proba, y)
    for key, tolerance in [("accuracy", 0.015), ("precision", 0.03), ("recall", 0.03),
                           ("f1", 0.03), ("roc_auc", 0.015)]:
        assert est[f"estimated_{key}"] == pytest.approx(real[key], abs=tolerance), key


def test_estimated_roc_auc_is_sklearn_auc_in_expectation() -> None:
    # Averaging sklearn's AUC over many label draws from the same calibrated scores gives the
    # expected AUC, which the estimate matches (it is the ratio of expectations).
    rng = np.random.default_rng(4)
    p = rng.beta(2.0, 2.0, 300)
    draws = [skm.roc_auc_score(rng.random(300) < p, p) for _ in range(200)]
    est = estimate_classification(p)["estimated_roc_auc"]
    assert est == pytest.approx(np.mean(draws), abs=3 * np.std(draws) / np.sqrt(200) + 0.002)


@pytest.mark.parametrize(
    ("proba", "classes", "message"),
    [
        (np.zeros((0, 2)), None, r"No rows to estimate performance on"),
        (np.full((3, 1), 1.0), None, r"at least 2\); got shape \(3, 1\)"),
        (np.full((2, 2, 2), 0.5), None, r"got shape \(2, 2, 2\)"),
        (np.full((2, 2), 0.5), ["a", "b", "c"], r"proba has 2 columns but 3 classes were given"),
        (np.array([[1.2, -0.2]]), None, r"values outside \[0, 1\]"),
        (np.array([[0.7, 0.7]]), None, r"Rows of proba do not sum to 1"),
        (np.array([0.5, np.nan]), None, r"proba has missing or infinite values"),
        (np.array(["x", "y"]), None, r"proba must hold numbers"),
    ],
    ids=["empty", "one-column", "three-dimensional", "classes-count", "range", "sum", "nan",
         "text"],
)
def test_bad_input_is_refused(proba: np.ndarray, classes: list[str] | None, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        estimate_classification(proba, classes)
