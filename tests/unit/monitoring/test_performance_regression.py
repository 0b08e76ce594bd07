"""Regression metrics against scikit-learn (the oracle) to 1e-12, edge cases and errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn import metrics as skm

from modelyard.errors import InvalidInputError
from modelyard.monitoring.performance import regression_metrics

TOL = {"rel": 1e-12, "abs": 1e-12}


def oracle(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    out = {
        "n": float(len(y_true)),
        "mae": skm.mean_absolute_error(y_true, y_pred),
        "rmse": skm.root_mean_squared_error(y_true, y_pred),
        "mape": skm.mean_absolute_percentage_error(y_true, y_pred),
    }
    if len(y_true) >= 2:  # scikit-learn warns and returns NaN below two rows
        out["r2"] = skm.r2_score(y_true, y_pred)
    return out


def _noisy(seed: int, n: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.normal(50.0, 10.0, n) * scale
    return y, y + rng.normal(0.0, 3.0, n) * scale


ZEROS_TRUE = np.array([0.0, 1.0, -2.0, 0.0, 3.5])
CASES = {
    "noisy": _noisy(0, 500),
    "large-scale": _noisy(1, 300, scale=1e6),
    "small-scale": _noisy(2, 300, scale=1e-6),
    "zeros-in-truth": (ZEROS_TRUE, ZEROS_TRUE + np.array([0.5, 0.0, 1.0, -0.1, 0.2])),
    "perfect": (np.arange(5.0), np.arange(5.0)),
    "constant-truth-perfect": (np.full(4, 3.0), np.full(4, 3.0)),
    "constant-truth-wrong": (np.full(4, 3.0), np.array([3.0, 2.0, 3.0, 4.0])),
    "worse-than-mean": (np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])),
    "integers": (np.array([1, 2, 3, 4]), np.array([2, 2, 2, 5])),
    "two-rows": (np.array([1.0, 2.0]), np.array([1.5, 1.5])),
    "single-row": (np.array([2.0]), np.array([3.0])),
    "column-vectors": (np.arange(6.0)[:, None], np.arange(6.0)[:, None] * 1.1),
}


@pytest.mark.parametrize(("y_true", "y_pred"), CASES.values(), ids=CASES.keys())
def test_metrics_equal_sklearn(y_true: np.ndarray, y_pred: np.ndarray) -> None:
    got = regression_metrics(y_true, y_pred)
    expected = oracle(y_true.ravel(), y_pred.ravel())
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, **TOL), key


def test_values_beyond_float_range_give_inf_without_warning() -> None:
    got = regression_metrics(np.array([1e-160, 2e-160, 1e-160]), np.full(3, 1e200))
    assert got["mae"] == pytest.approx(1e200)
    assert got["rmse"] == np.inf


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        (np.array([]), np.array([]), r"No rows to compute metrics on"),
        (np.array([1.0, 2.0]), np.array([1.0, 2.0, 3.0]), r"y_true has 2 rows but y_pred has 3"),
        (np.array([1.0, np.nan]), np.array([1.0, 2.0]), r"y_true has 1 missing or infinite"),
        (np.array([1.0, 2.0]), np.array([np.inf, 2.0]), r"y_pred has 1 missing or infinite"),
        (np.array(["a", "b"]), np.array([1.0, 2.0]), r"y_true must hold numbers"),
        (np.zeros((2, 2)), np.zeros((2, 2)), r"y_true must be one-dimensional"),
    ],
    ids=["empty", "lengths", "nan", "inf", "strings", "multi-output"],
)
def test_bad_input_is_refused(y_true: np.ndarray, y_pred: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        regression_metrics(y_true, y_pred)


@settings(max_examples=80, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 50),
)
def test_metrics_equal_sklearn_on_any_values(data: st.DataObject, n: int) -> None:
    # Four decimals: denormal-scale values only test float underflow (and make sklearn warn).
    values = st.floats(-1e6, 1e6).map(lambda v: round(v, 4))
    y_true = data.draw(hnp.arrays(np.float64, n, elements=values))
    y_pred = data.draw(hnp.arrays(np.float64, n, elements=values))
    got = regression_metrics(y_true, y_pred)
    expected = oracle(y_true, y_pred)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, **TOL), key
