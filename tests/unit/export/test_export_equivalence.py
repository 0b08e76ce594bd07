"""The comparison behind every export check, on fake predictors with known outputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from modelyard.errors import UnsupportedModelError
from modelyard.export.equivalence import (
    AGREEMENT_RTOL,
    EquivalenceReport,
    compare,
    describe,
    require_agreement,
    require_equivalent,
)

X = np.zeros((4, 2))


class Fixed:
    """A predictor that returns fixed outputs whatever the input."""

    def __init__(self, predict: Any, proba: Any = None) -> None:
        self._predict = np.asarray(predict)
        if proba is not None:
            self._proba = np.asarray(proba, dtype=np.float64)
            self.predict_proba = lambda data: self._proba

    def predict(self, data: Any) -> np.ndarray:
        return self._predict


P = [[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.7, 0.3]]


@pytest.mark.parametrize(
    ("original", "exported", "passed", "max_diff", "agreement"),
    [
        (Fixed([0, 1, 0, 0], P), Fixed([0, 1, 0, 0], P), True, 0.0, 1.0),
        (Fixed([0, 1, 0, 0], P), Fixed([0, 1, 0, 0], np.asarray(P) + 5e-5), True, 5e-5, 1.0),
        (Fixed([0, 1, 0, 0], P), Fixed([0, 1, 0, 0], np.asarray(P) + 2e-4), False, 2e-4, 1.0),
        # Row 2 is a tie (0.5 / 0.5): a different label there is float rounding, not an error.
        (Fixed([0, 1, 0, 0], P), Fixed([0, 1, 1, 0], P), True, 0.0, 0.75),
        (Fixed([0, 1, 0, 0], P), Fixed([1, 1, 0, 0], P), False, 0.0, 0.75),
        (Fixed([1.0, 2.0, 3.0, 4.0]), Fixed([1.0, 2.0, 3.0, 4.00005]), True, 5e-5, 1.0),
        # Large outputs are compared relatively: 0.05 on 1000 is within 1e-4 of it.
        (Fixed([1000.0, 2000.0, 10.0, 0.0]), Fixed([1000.05, 2000.1, 10.0, 0.0]), True,
         0.1, 1.0),
        (Fixed([1.0, 2.0, 3.0, 4.0]), Fixed([1.0, 2.0, 3.5, 4.0]), False, 0.5, 0.75),
        (Fixed([np.nan, 1.0, 2.0, 3.0]), Fixed([np.nan, 1.0, 2.0, 3.0]), True, 0.0, 1.0),
        (Fixed([np.nan, 1.0, 2.0, 3.0]), Fixed([0.0, 1.0, 2.0, 3.0]), False, np.inf, 0.75),
        (Fixed(["a", "b", "a", "b"]), Fixed(np.array(["a", "b", "a", "b"], dtype=object)), True,
         np.nan, 1.0),
        (Fixed(["a", "b", "a", "b"]), Fixed(["a", "b", "b", "b"]), False, np.nan, 0.75),
    ],
    ids=["identical", "within-tolerance", "beyond-tolerance", "tie-excused",
         "real-disagreement", "regression-close", "regression-relative", "regression-far",
         "nan-both", "nan-one-side", "text-labels", "text-labels-differ"],
)
def test_compare(original: Fixed, exported: Fixed, passed: bool, max_diff: float,
                 agreement: float) -> None:
    report = compare(original, exported, X, tolerance=1e-4)
    assert report.passed is passed
    assert report.rows == 4
    if np.isnan(max_diff):
        assert np.isnan(report.max_abs_diff)
    else:
        assert report.max_abs_diff == pytest.approx(max_diff, rel=1e-6, abs=1e-12)
    assert report.agreement == pytest.approx(agreement)


@pytest.mark.parametrize(
    ("original", "exported", "problem"),
    [
        (Fixed([0, 1, 0, 0], P), Fixed([0, 1, 0, 0]), "the export has none"),
        (Fixed([0, 1, 0, 0]), Fixed([[0], [1], [0], [0]]), "predicts shape (4,)"),
        (Fixed([0, 1, 0, 0], P), Fixed([0, 1, 0, 0], np.asarray(P)[:, :1]), "probabilities "
         "have shape"),
    ],
    ids=["missing-proba", "shape", "proba-shape"],
)
def test_incomparable_outputs_are_a_problem(original: Fixed, exported: Fixed,
                                            problem: str) -> None:
    report = compare(original, exported, X, tolerance=1e-4)
    assert report.problem is not None
    assert problem in report.problem
    assert not report.passed
    assert report.agreement == 0.0
    with pytest.raises(UnsupportedModelError, match="does not reproduce it"):
        require_equivalent(report, "models:/m/1")


def test_require_equivalent_names_the_numbers() -> None:
    report = compare(Fixed([0, 1, 0, 0], P), Fixed([1, 1, 0, 0], np.asarray(P) + 0.01), X,
                     tolerance=1e-4)
    with pytest.raises(UnsupportedModelError,
                       match=r"max absolute difference of predict_proba 0\.01 \(tolerance "
                       r"0\.0001; 0\.00% of rows within\); labels agree on 75\.00% of rows "
                       r"\(1 disagreement\(s\) that are not ties\)"):
        require_equivalent(report, "models:/m/1")


@pytest.mark.parametrize(("minimum", "refused"), [(0.75, False), (0.76, True)],
                         ids=["at-minimum", "below-minimum"])
def test_require_agreement(minimum: float, refused: bool) -> None:
    report = compare(Fixed([0, 1, 0, 0], P), Fixed([1, 1, 0, 0], P), X, tolerance=1e-4)
    if refused:
        with pytest.raises(UnsupportedModelError, match=r"agrees with it on 75\.00% of the "
                           r"rows, below the minimum of 76\.00%"):
            require_agreement(report, "models:/m/1", minimum)
    else:
        require_agreement(report, "models:/m/1", minimum)


def test_regression_agreement_uses_one_percent() -> None:
    base = np.array([100.0, 0.5, 10.0, -3.0])
    close = base + np.array([0.99, 0.0099, 0.0, 0.0])  # just inside 1% (or 0.01 below 1)
    far = base + np.array([1.01, 0.0, 0.0, 0.0])
    assert compare(Fixed(base), Fixed(close), X, tolerance=1e-4).agreement == 1.0
    assert compare(Fixed(base), Fixed(far), X, tolerance=1e-4).agreement == 0.75
    assert AGREEMENT_RTOL == 0.01


def test_report_as_dict() -> None:
    report = compare(Fixed([0, 1, 0, 0], P), Fixed([0, 1, 0, 0], P), X, tolerance=1e-4)
    doc = report.to_dict()
    assert doc["passed"] is True
    assert doc["agreement"] == 1.0
    assert doc["output"] == "predict_proba"
    assert describe(report).startswith("max absolute difference of predict_proba 0 ")


@given(arrays(np.float64, st.integers(1, 30), elements=st.floats(-1e6, 1e6)),
       arrays(np.float64, 30, elements=st.floats(-1e3, 1e3)))
def test_max_abs_diff_matches_numpy(original: np.ndarray, noise: np.ndarray) -> None:
    exported = original + noise[: len(original)]
    report = compare(Fixed(original), Fixed(exported), np.zeros((len(original), 1)),
                     tolerance=1e-4)
    assert report.max_abs_diff == pytest.approx(np.max(np.abs(exported - original)))
    within = np.abs(exported - original) <= 1e-4 * np.maximum(1.0, np.abs(original))
    assert report.within_tolerance == pytest.approx(within.mean())
    assert isinstance(report, EquivalenceReport)
