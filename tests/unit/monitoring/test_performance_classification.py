"""Classification metrics against scikit-learn (the oracle) to 1e-12, edge cases and errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn import metrics as skm

from modelyard.errors import InvalidInputError
from modelyard.monitoring.performance import (
    classification_metrics,
    is_classification,
    weighted_auc,
)

TOL = {"rel": 1e-12, "abs": 1e-12}


def oracle(y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None,
           classes: list[Any] | None) -> dict[str, float]:
    """The same metrics computed by scikit-learn, with the documented decisions."""
    labels = sorted(set(y_true.tolist()) | set(y_pred.tolist())) if classes is None else classes
    if len(labels) == 2:
        kw: dict[str, Any] = {"average": "binary", "pos_label": labels[1]}
    else:
        kw = {"average": "macro"}
    out = {
        "n": float(len(y_true)),
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "precision": skm.precision_score(y_true, y_pred, zero_division=0.0, **kw),
        "recall": skm.recall_score(y_true, y_pred, zero_division=0.0, **kw),
        "f1": skm.f1_score(y_true, y_pred, zero_division=0.0, **kw),
    }
    if proba is None:
        return out
    if proba.ndim == 1:
        proba = np.column_stack([1 - proba, proba])
    # scikit-learn reads probability columns in sorted label order.
    ordered = sorted(labels)
    sorted_proba = proba[:, [labels.index(c) for c in ordered]]
    out["log_loss"] = skm.log_loss(y_true, sorted_proba, labels=ordered)
    present = sorted(set(y_true.tolist()))
    if len(present) < 2:
        return out
    if len(labels) == 2:
        out["roc_auc"] = skm.roc_auc_score(y_true == labels[1], proba[:, 1])
    elif len(present) == len(labels):
        out["roc_auc"] = skm.roc_auc_score(y_true, sorted_proba, multi_class="ovr",
                                           labels=ordered)
    else:
        # scikit-learn's macro OvR is NaN here; ours averages the classes present.
        out["roc_auc"] = float(np.mean([
            skm.roc_auc_score(y_true == c, proba[:, labels.index(c)]) for c in present]))
    return out


def _proba(rng: np.random.Generator, n: int, k: int, *, decimals: int | None = None) -> np.ndarray:
    raw = rng.random((n, k)) + 0.05
    if decimals is not None:  # coarse values make many ties
        raw = np.round(raw, decimals) + 0.05
    return raw / raw.sum(axis=1, keepdims=True)


def _case(seed: int, n: int, labels: list[Any], *, given_classes: bool = True,
          decimals: int | None = None, drop_pred: Any = None, drop_true: Any = None,
          dtype: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Any] | None]:
    rng = np.random.default_rng(seed)
    proba = _proba(rng, n, len(labels), decimals=decimals)
    pool = np.array(labels, dtype=dtype)
    y_true = pool[rng.integers(0, len(labels), n)]
    y_pred = pool[np.argmax(proba, axis=1)]
    if drop_pred is not None:  # the model never predicts this class
        y_pred = np.where(y_pred == drop_pred, pool[0], y_pred)
    if drop_true is not None:  # this class never occurs in the window
        y_true = np.where(y_true == drop_true, pool[0], y_true)
    return y_true, y_pred, proba, (labels if given_classes else None)


CASES = {
    "binary-int": _case(0, 300, [0, 1]),
    "binary-int-inferred": _case(1, 300, [0, 1], given_classes=False),
    "binary-str": _case(2, 250, ["no", "yes"]),
    "binary-bool": _case(3, 200, [False, True]),
    "binary-float-labels": _case(4, 200, [0.0, 1.0]),
    "binary-object": _case(5, 200, ["ham", "spam"], dtype=object),
    "binary-ties": _case(6, 400, [0, 1], decimals=1),
    "binary-never-predicts-positive": _case(7, 150, [0, 1], drop_pred=1),
    "binary-unsorted-classes": _case(8, 200, ["yes", "no"]),
    "multiclass-str": _case(9, 500, ["cat", "dog", "eel"]),
    "multiclass-inferred": _case(10, 500, ["a", "b", "c", "d"], given_classes=False),
    "multiclass-never-predicted": _case(11, 400, [0, 1, 2, 3], drop_pred=2),
    "multiclass-absent-from-truth": _case(12, 400, [0, 1, 2, 3], drop_true=3),
    "multiclass-ties": _case(13, 600, ["x", "y", "z"], decimals=1),
    "multiclass-object": _case(14, 300, ["r", "g", "b"], dtype=object),
    "single-row": _case(15, 1, [0, 1]),
}


@pytest.mark.parametrize(("y_true", "y_pred", "proba", "classes"), CASES.values(),
                         ids=CASES.keys())
def test_metrics_equal_sklearn(y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray,
                               classes: list[Any] | None) -> None:
    got = classification_metrics(y_true, y_pred, proba=proba, classes=classes)
    expected = oracle(y_true, y_pred, proba, classes)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, **TOL), key


@pytest.mark.parametrize(("y_true", "y_pred", "proba", "classes"), CASES.values(),
                         ids=CASES.keys())
def test_metrics_without_proba_have_no_probability_keys(
        y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray,
        classes: list[Any] | None) -> None:
    got = classification_metrics(y_true, y_pred, classes=classes)
    assert set(got) == {"n", "accuracy", "precision", "recall", "f1"}
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred), **TOL)


def test_one_dimensional_proba_is_the_positive_class() -> None:
    y_true, y_pred, proba, classes = CASES["binary-str"]
    one = classification_metrics(y_true, y_pred, proba=proba[:, 1], classes=classes)
    two = classification_metrics(y_true, y_pred, proba=proba, classes=classes)
    assert one == pytest.approx(two, **TOL)  # 1 - p rounds the first column


def test_column_vectors_are_accepted() -> None:
    y_true, y_pred, proba, classes = CASES["binary-int"]
    assert classification_metrics(y_true[:, None], y_pred[:, None], proba=proba,
                                  classes=classes) == \
        classification_metrics(y_true, y_pred, proba=proba, classes=classes)


def test_roc_auc_left_out_when_truth_has_one_class() -> None:
    got = classification_metrics(np.array([1, 1, 1]), np.array([1, 0, 1]),
                                 proba=np.array([0.9, 0.4, 0.7]), classes=[0, 1])
    assert "roc_auc" not in got
    assert got["log_loss"] == pytest.approx(
        skm.log_loss([1, 1, 1], np.array([[0.1, 0.9], [0.6, 0.4], [0.3, 0.7]]), labels=[0, 1]),
        **TOL)


def test_perfect_predictions() -> None:
    y = np.array(["a", "b", "c", "a"])
    proba = np.eye(3)[[0, 1, 2, 0]]
    got = classification_metrics(y, y, proba=proba)
    assert got["accuracy"] == got["precision"] == got["recall"] == got["f1"] == 1.0
    assert got["roc_auc"] == 1.0
    assert got["log_loss"] == pytest.approx(-np.log(1 - np.finfo(float).eps), **TOL)


def test_labels_of_another_type_are_unknown_not_coerced() -> None:
    # numpy would turn [1, "1"] into ["1", "1"]; the string "1" is not the class 1.
    with pytest.raises(InvalidInputError,
                       match=r"Labels '1', '0' are not among the classes \[0, 1\]\. Labels "
                             r"are compared by type as well as value"):
        classification_metrics(np.array(["1", "0"]), np.array([1, 0]), classes=[0, 1])


BAD = {
    "empty": (np.array([]), np.array([]), None, None, r"No rows to compute metrics on"),
    "lengths": (np.array([0, 1, 1]), np.array([0, 1]), None, None,
                r"y_true has 3 rows but y_pred has 2"),
    "proba-rows": (np.array([0, 1, 1]), np.array([0, 1, 1]), np.full((2, 2), 0.5), [0, 1],
                   r"y_true has 3 rows but proba has 2"),
    "proba-columns": (np.array([0, 1, 1]), np.array([0, 1, 1]), np.full((3, 3), 1 / 3),
                      [0, 1], r"proba has shape \(3, 3\) but there are 2 classes"),
    "proba-range": (np.array([0, 1]), np.array([0, 1]), np.array([[1.5, -0.5], [0.5, 0.5]]),
                    None, r"values outside \[0, 1\]"),
    "proba-sum": (np.array([0, 1]), np.array([0, 1]), np.array([[0.5, 0.6], [0.5, 0.5]]),
                  None, r"Rows of proba do not sum to 1"),
    "proba-nan": (np.array([0, 1]), np.array([0, 1]), np.array([[np.nan, 1.0], [0.5, 0.5]]),
                  None, r"proba has missing or infinite values"),
    "proba-text": (np.array([0, 1]), np.array([0, 1]), np.array([["a", "b"], ["c", "d"]]),
                   None, r"proba must hold numbers"),
    "unknown-label": (np.array(["a", "c"]), np.array(["a", "b"]), None, ["a", "b"],
                      r"Labels 'c' are not among the classes \['a', 'b'\]"),
    "unknown-object-label": (np.array(["a", 3], dtype=object), np.array(["a", "b"]), None,
                             ["a", "b"], r"Labels 3 are not among the classes"),
    "mixed-types": (np.array(["a", 1], dtype=object), np.array(["a", "a"]), None, None,
                    r"Labels mix types that cannot be ordered \(int, str\)"),
    "nan-label": (np.array([0.0, np.nan]), np.array([0.0, 1.0]), None, None,
                  r"y_true has 1 missing \(NaN\) label"),
    "none-label": (np.array(["a", None], dtype=object), np.array(["a", "b"]), None, None,
                   r"y_true has missing \(None or NaN\) label"),
    "two-dimensional": (np.zeros((2, 2)), np.zeros(2), None, None,
                        r"y_true must be one-dimensional"),
    "duplicate-classes": (np.array([0, 1]), np.array([0, 1]), None, [0, 1, 1],
                          r"classes has duplicates"),
    "no-classes": (np.array([0, 1]), np.array([0, 1]), None, [], r"classes must be a non-empty"),
    "inferred-classes-short-of-proba": (
        np.array(["a", "a"]), np.array(["a", "a"]), np.full((2, 2), 0.5), None,
        r"proba has shape \(2, 2\) but there are 1 classes.*Pass classes=\[\.\.\.\]"),
}


@pytest.mark.parametrize(("y_true", "y_pred", "proba", "classes", "message"), BAD.values(),
                         ids=BAD.keys())
def test_bad_input_is_refused(y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None,
                              classes: list[Any] | None, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        classification_metrics(y_true, y_pred, proba=proba, classes=classes)


def test_classes_of_mixed_types_keep_their_types() -> None:
    y_true = np.array([0, "a", "a", 0], dtype=object)
    y_pred = np.array([0, "a", 0, 0], dtype=object)
    got = classification_metrics(y_true, y_pred, classes=[0, "a"])
    assert (got["accuracy"], got["precision"], got["recall"]) == (0.75, 1.0, 0.5)
    with pytest.raises(InvalidInputError, match=r"Labels '0' are not among the classes"):
        classification_metrics(np.array(["0", "a"]), np.array(["a", "a"]), classes=[0, "a"])


def test_float32_probabilities_that_sum_to_one_loosely_are_accepted() -> None:
    rng = np.random.default_rng(3)
    proba = _proba(rng, 100, 3).astype(np.float32)
    y = np.argmax(proba, axis=1)
    got = classification_metrics(y, y, proba=proba, classes=[0, 1, 2])
    assert got["accuracy"] == 1.0


@pytest.mark.parametrize(
    ("predictions", "proba", "expected"),
    [
        (np.array(["cat", "dog"]), None, True),
        (np.array([0, 1, 1]), None, True),
        (np.array([True, False]), None, True),
        (np.array([0.0, 1.0]), np.array([[1.0, 0.0], [0.0, 1.0]]), True),
        (np.array([0.3, 1.7]), None, False),
        (np.array([1.5, 2.5], dtype=object), None, False),
        (np.array(["a", 2.5], dtype=object), None, True),
        ([3.2, 4.1], None, False),
    ],
    ids=["str", "int", "bool", "float-with-proba", "float", "object-floats", "object-mixed",
         "list-of-floats"],
)
def test_is_classification(predictions: Any, proba: np.ndarray | None, expected: bool) -> None:
    assert is_classification(predictions, proba=proba) is expected


# -- properties ---------------------------------------------------------------------------------

def _brute_force_auc(score: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> float | None:
    ordered = pairs = 0.0
    for i in range(len(score)):
        for j in range(len(score)):
            if i == j:
                continue
            weight = pos[i] * neg[j]
            pairs += weight
            ordered += weight * (1.0 if score[i] > score[j] else 0.5 if score[i] == score[j]
                                 else 0.0)
    return ordered / pairs if pairs > 0 else None


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n=st.integers(1, 25))
def test_weighted_auc_counts_every_pair(data: st.DataObject, n: int) -> None:
    score = data.draw(hnp.arrays(np.float64, n, elements=st.sampled_from([0.0, 0.25, 0.5, 1.0])))
    # Weights on a 1/1000 grid: denormal weights would only test float underflow.
    grid = st.integers(0, 1000).map(lambda v: v / 1000)
    pos = data.draw(hnp.arrays(np.float64, n, elements=grid))
    got = weighted_auc(score, pos, 1.0 - pos)
    expected = _brute_force_auc(score, pos, 1.0 - pos)
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 40),
    labels=st.sampled_from([["a", "b"], [0, 1], ["x", "y", "z"], [1, 2, 3, 4]]),
    give_classes=st.booleans(),
)
def test_metrics_equal_sklearn_on_any_labels(data: st.DataObject, n: int, labels: list[Any],
                                             give_classes: bool) -> None:
    k = len(labels)
    pick = st.integers(0, k - 1)
    t = data.draw(hnp.arrays(np.int64, n, elements=pick))
    p = data.draw(hnp.arrays(np.int64, n, elements=pick))
    raw = data.draw(hnp.arrays(np.float64, (n, k), elements=st.sampled_from([0.1, 0.2, 0.5, 1.0])))
    proba = raw / raw.sum(axis=1, keepdims=True)
    pool = np.array(labels)
    y_true, y_pred = pool[t], pool[p]
    classes = labels if give_classes else None
    if classes is None and len(set(t.tolist()) | set(p.tolist())) != k:
        proba = None  # the inferred classes do not match the probability columns
    got = classification_metrics(y_true, y_pred, proba=proba, classes=classes)
    expected = oracle(y_true, y_pred, proba, classes)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, **TOL), key
