"""Performance metrics from ground truth: classification and regression, pure numpy.

Each metric equals scikit-learn's on the same data (the unit tests check it to 1e-12):

============  ======================================================================
metric        scikit-learn equivalent
============  ======================================================================
accuracy      ``accuracy_score(y_true, y_pred)``
precision     ``precision_score(..., pos_label=classes[1], zero_division=0.0)`` (binary)
              or ``average="macro"`` (more than two classes)
recall        ``recall_score`` likewise
f1            ``f1_score`` likewise
roc_auc       ``roc_auc_score(y_true == classes[1], proba[:, 1])`` (binary), or
              ``roc_auc_score(..., multi_class="ovr", average="macro")``
log_loss      ``log_loss(y_true, proba, labels=classes)``
mae           ``mean_absolute_error``
rmse          ``root_mean_squared_error``
r2            ``r2_score``
mape          ``mean_absolute_percentage_error`` (a fraction, not a percentage)
============  ======================================================================

Decisions, where scikit-learn leaves a choice or warns:

* **Zero division.** A ratio whose denominator is zero (precision of a class never
  predicted, recall of a class absent from ``y_true``) is 0.0: scikit-learn's default value
  (its default ``zero_division="warn"`` returns 0.0 and warns; here nothing warns).
* **Macro averages** run over the classes that occur in ``y_true`` or ``y_pred``, which is
  what scikit-learn does when ``labels`` is not given: a class missing from a window does
  not add a zero to the mean.
* **ROC AUC is left out** of the result when it is undefined: when ``y_true`` holds a single
  class (scikit-learn returns NaN and warns). With more than two classes it is the mean of
  the one-vs-rest AUCs of the classes present in ``y_true``; when every class is present
  this is exactly scikit-learn's ``multi_class="ovr"`` macro average (which returns NaN as
  soon as one class is missing from the window).
* **R²** follows scikit-learn's ``force_finite=True``: a constant ``y_true`` gives 1.0 for a
  perfect prediction and 0.0 otherwise. It is left out for a single row, where it is
  undefined (scikit-learn returns NaN and warns).
* **Probabilities** are used as float64 and are not renormalised (like scikit-learn's
  ``log_loss``); log loss clips them to ``[eps, 1 - eps]`` with float64's ``eps``.

Example:
    >>> import numpy as np
    >>> m = classification_metrics(np.array(["a", "b", "b"]), np.array(["a", "b", "a"]))
    >>> round(m["accuracy"], 3), m["precision"], m["recall"]
    (0.667, 1.0, 0.5)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard.errors import InvalidInputError

__all__ = [
    "check_probabilities",
    "classification_metrics",
    "confusion_counts",
    "is_classification",
    "prf_from_confusion",
    "regression_metrics",
    "weighted_auc",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

_PROBA_SUM_TOLERANCE = 1e-4
"""How far a row of probabilities may sum from 1 (float32 models land around 1e-7)."""


# -- inputs -------------------------------------------------------------------------------------


def _as_vector(values: Any, name: str) -> npt.NDArray[Any]:
    """A 1-D array from a list, Series, (n,) or (n, 1) array."""
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise InvalidInputError(
            f"{name} must be one-dimensional (one value per row); got shape {array.shape}.",
            hint="Pass one label or value per row.",
        )
    return array


def _check_lengths(y_true: npt.NDArray[Any], y_pred: npt.NDArray[Any], other: str) -> int:
    if len(y_true) != len(y_pred):
        raise InvalidInputError(
            f"y_true has {len(y_true)} rows but {other} has {len(y_pred)}.",
            hint="Pass one ground-truth value per prediction (join labels to predictions by "
            "request id first).",
        )
    if len(y_true) == 0:
        raise InvalidInputError(
            "No rows to compute metrics on (y_true and y_pred are empty).",
            hint="Widen the window or wait until labelled predictions arrive.",
        )
    return len(y_true)


def _label_kind(array: npt.NDArray[Any]) -> str:
    """Which labels can be compared with numpy directly: numbers, str, bytes; else object."""
    kind = array.dtype.kind
    return "number" if kind in "biuf" else kind


def _reject_missing_labels(array: npt.NDArray[Any], name: str) -> None:
    if array.dtype.kind == "f" and np.isnan(array).any():
        raise InvalidInputError(
            f"{name} has {int(np.isnan(array).sum())} missing (NaN) label(s).",
            hint="Drop the rows without a label before computing metrics.",
        )
    if array.dtype.kind == "O" and any(v is None or v != v for v in array):  # noqa: PLR0124
        # ``v != v`` is the NaN test that works on any object.
        raise InvalidInputError(
            f"{name} has missing (None or NaN) label(s).",
            hint="Drop the rows without a label before computing metrics.",
        )


def _encode_labels(y_true: npt.NDArray[Any], y_pred: npt.NDArray[Any],
                   classes: Sequence[Any] | None) -> tuple[IntArray, IntArray, list[Any]]:
    """Class indices of ``y_true`` and ``y_pred`` and the class list they index.

    Without ``classes``, the classes are the sorted union of the labels seen. Labels of
    different kinds (``"1"`` and ``1``) are never equal.
    """
    _reject_missing_labels(y_true, "y_true")
    _reject_missing_labels(y_pred, "y_pred")
    given = None if classes is None else _as_classes(classes)
    if given is not None:
        if given.ndim != 1 or len(given) == 0:
            raise InvalidInputError(
                f"classes must be a non-empty list of labels; got {list(classes or [])!r}.",
                hint="Pass the model's classes in the order of its probability columns.",
            )
        if len(set(given.tolist())) != len(given):
            raise InvalidInputError(
                f"classes has duplicates: {given.tolist()!r}.",
                hint="List each class once, in the order of the probability columns.",
            )
    arrays = [y_true, y_pred] if given is None else [given, y_true, y_pred]
    kinds = {_label_kind(a) for a in arrays}
    n = len(y_true)
    k0 = 0 if given is None else len(given)
    if len(kinds) == 1 and kinds <= {"number", "U", "S"}:
        # Fast path: one sort over all labels gives every index at once.
        uniques, inverse = np.unique(np.concatenate(arrays), return_inverse=True)
        inverse = inverse.reshape(-1)
        if given is None:
            lookup = np.arange(len(uniques))
            names = uniques.tolist()
        else:
            lookup = np.full(len(uniques), -1)
            lookup[inverse[:k0]] = np.arange(k0)
            names = given.tolist()
        codes = lookup[inverse[k0:]]
        unknown = [uniques[i].item() for i in np.unique(inverse[k0:][codes < 0])]
    else:
        values = [*y_true.tolist(), *y_pred.tolist()]
        if given is None:
            try:
                names = sorted(set(values))
            except TypeError:
                kinds_seen = sorted({type(v).__name__ for v in values})
                raise InvalidInputError(
                    f"Labels mix types that cannot be ordered ({', '.join(kinds_seen)}).",
                    hint="Make labels and predictions one type (all strings or all numbers), "
                    "or pass classes=[...] in the order of the model's probability columns.",
                ) from None
        else:
            names = given.tolist()
        index = {name: i for i, name in enumerate(names)}
        codes = np.fromiter((index.get(v, -1) for v in values), dtype=np.intp, count=2 * n)
        unknown = list(dict.fromkeys(v for v, c in zip(values, codes, strict=True) if c < 0))
    if unknown:
        shown = ", ".join(repr(_py(u)) for u in unknown[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        mismatch = {isinstance(_py(u), str) for u in unknown} != {isinstance(c, str)
                                                                   for c in names}
        raise InvalidInputError(
            f"Labels {shown}{more} are not among the classes {names!r}.",
            hint=("Labels are compared by type as well as value ('1' is not 1): convert the "
                  "labels to the classes' type." if mismatch else
                  "Pass every class the labels can take in classes=[...] (in the order of the "
                  "probability columns), or drop the rows with unknown labels."),
        )
    codes = codes.astype(np.intp, copy=False)
    return codes[:n], codes[n:], names


def _as_classes(classes: Sequence[Any]) -> npt.NDArray[Any]:
    items = list(classes)
    array = np.asarray(items)
    if array.dtype.kind in "US" and not all(isinstance(c, str | bytes) for c in items):
        array = np.array(items, dtype=object)  # numpy would turn [0, "a"] into ["0", "a"]
    return array


def _py(value: Any) -> Any:
    """A numpy scalar as the Python value it stands for (for messages)."""
    return value.item() if isinstance(value, np.generic) else value


def _as_proba(proba: Any, n: int, k: int) -> FloatArray:
    """Probabilities as an (n, k) float64 array; a 1-D array is P(classes[1]) for k == 2."""
    try:
        array = np.asarray(proba, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(
            "proba must hold numbers (predict_proba's output).",
            hint="Pass the probabilities the model logged, one row per prediction.",
        ) from None
    if array.ndim == 1 and k == 2:
        array = np.column_stack([1.0 - array, array])
    if array.ndim != 2 or array.shape[1] != k:
        raise InvalidInputError(
            f"proba has shape {array.shape} but there are {k} classes, so it must have shape "
            f"({n}, {k}).",
            hint="Pass classes=[...] in the order of the probability columns (the model's "
            "classes_).",
        )
    if array.shape[0] != n:
        raise InvalidInputError(
            f"y_true has {n} rows but proba has {array.shape[0]}.",
            hint="Pass one row of probabilities per prediction.",
        )
    check_probabilities(array)
    return array


def check_probabilities(proba: FloatArray) -> None:
    """Raise InvalidInputError unless ``proba`` holds finite values in [0, 1] whose rows sum
    to 1 (within 1e-4, so that float32 outputs pass)."""
    if not np.isfinite(proba).all():
        raise InvalidInputError(
            "proba has missing or infinite values.",
            hint="Drop the rows whose probabilities were not logged.",
        )
    if proba.size and (proba.min() < 0.0 or proba.max() > 1.0):
        raise InvalidInputError(
            f"proba has values outside [0, 1] (from {proba.min():g} to {proba.max():g}).",
            hint="Pass probabilities (predict_proba), not scores or logits.",
        )
    if proba.shape[1] > 1:
        worst = float(np.abs(proba.sum(axis=1) - 1.0).max(initial=0.0))
        if worst > _PROBA_SUM_TOLERANCE:
            raise InvalidInputError(
                f"Rows of proba do not sum to 1 (off by up to {worst:g}).",
                hint="Pass every class's probability (all predict_proba columns), or "
                "normalise each row.",
            )


# -- AUC --------------------------------------------------------------------------------------


def weighted_auc(score: FloatArray, positive: FloatArray, negative: FloatArray) -> float | None:
    """Area under the ROC curve of ``score`` where row i counts ``positive[i]`` times as a
    positive and ``negative[i]`` times as a negative; None when there is no (positive,
    negative) pair of distinct rows.

    With 0/1 weights (``positive = y``, ``negative = 1 - y``) this is the ROC AUC
    (the Mann-Whitney U statistic, ties counted one half). With ``positive = p`` and
    ``negative = 1 - p`` for calibrated probabilities ``p`` it is the expected number of
    correctly ordered pairs over the expected number of pairs, which the label-free estimate
    uses. A row is never paired with itself.
    """
    if len(score) == 0:
        return None
    order = np.argsort(score)  # the order within a run of ties does not matter
    s = score[order]
    pos = positive[order]
    neg = negative[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    pos_g = np.add.reduceat(pos, starts)
    neg_g = np.add.reduceat(neg, starts)
    self_g = np.add.reduceat(pos * neg, starts)
    neg_below = np.cumsum(neg_g) - neg_g
    pairs = float(pos.sum() * neg.sum() - self_g.sum())
    if pairs <= 0.0:
        return None
    ordered = float((pos_g * neg_below).sum() + 0.5 * (pos_g * neg_g - self_g).sum())
    return ordered / pairs


# -- classification ---------------------------------------------------------------------------


def _ratio(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    """numerator / denominator, 0.0 where the denominator is 0 (scikit-learn's default)."""
    out = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def confusion_counts(true_codes: IntArray, pred_codes: IntArray, k: int) -> FloatArray:
    """The k x k confusion matrix (rows: true class, columns: predicted class) as floats."""
    flat = np.bincount(true_codes * k + pred_codes, minlength=k * k)
    return flat.reshape(k, k).astype(np.float64)


def prf_from_confusion(matrix: FloatArray) -> dict[str, float]:
    """Precision, recall and F1 from a (possibly expected, fractional) confusion matrix:
    of class 1 when there are two classes, else macro-averaged over the classes that occur
    as a true or a predicted class."""
    tp = np.diag(matrix)
    true_sum = matrix.sum(axis=1)
    pred_sum = matrix.sum(axis=0)
    precision = _ratio(tp, pred_sum)
    recall = _ratio(tp, true_sum)
    f1 = _ratio(2.0 * tp, true_sum + pred_sum)
    if len(tp) == 2:
        return {"precision": float(precision[1]), "recall": float(recall[1]),
                "f1": float(f1[1])}
    present = (true_sum + pred_sum) > 0
    return {"precision": float(precision[present].mean()),
            "recall": float(recall[present].mean()),
            "f1": float(f1[present].mean())}


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, *,
                           proba: np.ndarray | None = None,
                           classes: Sequence[Any] | None = None) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of predicted labels; ROC AUC and log loss too when
    the predicted probabilities are given.

    Args:
        y_true: the ground-truth labels (strings, numbers or booleans), one per row.
        y_pred: the predicted labels, one per row.
        proba: predicted probabilities, shape (n, k) with columns in the order of
            ``classes``; for two classes a 1-D array is read as the probability of
            ``classes[1]``.
        classes: every class, in the order of the probability columns (a scikit-learn
            model's ``classes_``). Defaults to the sorted labels seen in y_true and y_pred.

    Returns:
        ``n``, ``accuracy``, ``precision``, ``recall``, ``f1`` and, with ``proba``,
        ``log_loss`` and ``roc_auc`` (left out when ``y_true`` holds one class only). With two
        classes, precision, recall and F1 are those of the positive class ``classes[1]``;
        with more, they are macro averages. See the module docstring for each decision.

    Raises:
        InvalidInputError: empty or mismatched inputs, labels not among ``classes``,
            probabilities of the wrong shape or not in [0, 1].

    Example:
        >>> import numpy as np
        >>> m = classification_metrics(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]),
        ...                            proba=np.array([0.2, 0.9, 0.4, 0.3]))
        >>> m["accuracy"], m["recall"], m["roc_auc"]
        (0.75, 0.5, 1.0)
    """
    truth = _as_vector(y_true, "y_true")
    pred = _as_vector(y_pred, "y_pred")
    n = _check_lengths(truth, pred, "y_pred")
    t, p, names = _encode_labels(truth, pred, classes)
    k = len(names)
    matrix = confusion_counts(t, p, k)
    result: dict[str, float] = {"n": float(n),
                                "accuracy": float(np.trace(matrix) / n)}
    result.update(prf_from_confusion(matrix))
    if proba is not None:
        probabilities = _as_proba(proba, n, k)
        result.update(_probability_metrics(t, probabilities))
    return result


def _probability_metrics(t: IntArray, proba: FloatArray) -> dict[str, float]:
    n, k = proba.shape
    eps = np.finfo(np.float64).eps
    clipped = np.clip(proba[np.arange(n), t], eps, 1.0 - eps)
    result = {"log_loss": float(-np.mean(np.log(clipped)))}
    if k == 2:
        y = (t == 1).astype(np.float64)
        auc = weighted_auc(proba[:, 1], y, 1.0 - y)
    else:
        aucs = []
        for c in np.unique(t):
            y = (t == c).astype(np.float64)
            value = weighted_auc(proba[:, c], y, 1.0 - y)
            if value is not None:
                aucs.append(value)
        auc = float(np.mean(aucs)) if aucs else None
    if auc is not None:
        result["roc_auc"] = auc
    return result


# -- regression -------------------------------------------------------------------------------


def _as_numbers(values: Any, name: str) -> FloatArray:
    array = _as_vector(values, name)
    try:
        numbers = array.astype(np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"{name} must hold numbers for regression metrics; got {array.dtype} values.",
            hint="For labels, use classification_metrics instead.",
        ) from None
    if not np.isfinite(numbers).all():
        raise InvalidInputError(
            f"{name} has {int((~np.isfinite(numbers)).sum())} missing or infinite value(s).",
            hint="Drop the rows without a value before computing metrics.",
        )
    return numbers


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Mean absolute error, root mean squared error, R² and mean absolute percentage error.

    ``mape`` is a fraction (0.1 is 10%) and, like scikit-learn's, divides by
    ``max(|y_true|, eps)``: a true value of zero makes it huge. ``r2`` is left out for a
    single row (undefined).

    Raises:
        InvalidInputError: empty or mismatched inputs, values that are not finite numbers.

    Example:
        >>> import numpy as np
        >>> m = regression_metrics(np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 2.0]))
        >>> m["mae"], round(m["r2"], 3)
        (1.0, -0.071)
    """
    truth = _as_numbers(y_true, "y_true")
    pred = _as_numbers(y_pred, "y_pred")
    n = _check_lengths(truth, pred, "y_pred")
    # Values whose squares leave float64's range give inf (or NaN for R²), without a warning.
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        error = truth - pred
        result = {
            "n": float(n),
            "mae": float(np.mean(np.abs(error))),
            "rmse": float(np.sqrt(np.mean(error**2))),
            "mape": float(np.mean(np.abs(error) / np.maximum(np.abs(truth),
                                                             np.finfo(np.float64).eps))),
        }
        if n >= 2:
            residual = float((error**2).sum())
            total = float(((truth - np.mean(truth)) ** 2).sum())
            if total != 0.0:
                result["r2"] = 1.0 - residual / total
            else:
                result["r2"] = 1.0 if residual == 0.0 else 0.0
    return result


# -- which kind -------------------------------------------------------------------------------


def is_classification(predictions: Any, *, proba: Any = None) -> bool:
    """Whether logged outputs come from a classifier: probabilities were logged, or the
    predictions are labels (strings, booleans, integers) rather than floats.

    A classifier whose labels are floats (0.0, 1.0) and that logs no probabilities reads as
    a regressor: pass the task explicitly in that case.

    Example:
        >>> import numpy as np
        >>> is_classification(np.array(["cat", "dog"])), is_classification(np.array([0.5]))
        (True, False)
    """
    if proba is not None:
        return True
    array = np.asarray(predictions)
    if array.dtype.kind in "fc":
        return False
    if array.dtype.kind == "O":
        return not all(isinstance(v, float | np.floating) for v in array.ravel().tolist())
    return True
