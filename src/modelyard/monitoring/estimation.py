"""Label-free performance estimation for classifiers, before the ground truth arrives.

The method is confidence-based performance estimation, in the spirit of NannyML's CBPE
(Confidence-Based Performance Estimation). If a classifier's probabilities are
**calibrated** (of all rows given probability 0.8 for a class, 80% really are that class),
then each logged row carries its own expected outcome:

* the model predicts the class with the highest probability, and is right with probability
  ``max(p)``, so the expected accuracy is ``mean(max(p))`` (exact in expectation);
* the expected confusion matrix sums, over the rows predicted as class j, the probability
  of each true class i: ``E[C[i, j]] = sum(p[r, i] for rows r predicted j)``. Precision,
  recall and F1 are computed from it exactly as from a realised confusion matrix (binary:
  of the positive class, the second column; more classes: macro averages);
* the expected ROC AUC counts, for every pair of distinct rows, the probability that they
  form a (positive, negative) pair, ``p_i * (1 - p_j)``, and whether the scores order it
  correctly (ties count one half), over the expected number of such pairs. With more than
  two classes it is the mean of the one-vs-rest values.

Precision, recall, F1 and ROC AUC are ratios of expectations, not expectations of ratios:
they are consistent (the bias shrinks as 1/n), which is what a window of a few hundred rows
or more needs. ``estimated_accuracy_sd`` is the standard deviation of the realised accuracy
around the estimate, ``sqrt(sum(m * (1 - m))) / n`` with ``m = max(p)``, to tell a real drop
from noise.

**The assumption.** The estimate is only as good as the calibration of the probabilities on
the data being scored. It stays right under covariate shift (the inputs move, the relation
from inputs to labels does not), and it follows a model that becomes less sure of itself
(scores move toward 0.5, so the expected accuracy falls). It cannot see concept drift (the
same inputs now mean another label) and it is biased for over- or under-confident models:
calibrate the model on held-out data first (for example with scikit-learn's
``CalibratedClassifierCV``), and compare the estimate with the realised metrics once labels
arrive. Unlike NannyML, no calibration step runs here; the probabilities are taken as given.

Example:
    >>> import numpy as np
    >>> est = estimate_classification(np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]]))
    >>> round(est["estimated_accuracy"], 3)
    0.767
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from modelyard.errors import InvalidInputError
from modelyard.monitoring.performance import check_probabilities, prf_from_confusion, weighted_auc

__all__ = ["estimate_classification"]


def _as_proba(proba: Any, classes: Sequence[Any] | None) -> np.ndarray:
    try:
        array = np.asarray(proba, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(
            "proba must hold numbers (predict_proba's output).",
            hint="Pass the probabilities the model logged, one row per prediction.",
        ) from None
    if array.ndim == 1:
        # One column: the probability of the positive class of a binary model.
        array = np.column_stack([1.0 - array, array])
    if array.ndim != 2 or array.shape[1] < 2:
        raise InvalidInputError(
            f"proba must have one row per prediction and one column per class (at least 2); "
            f"got shape {array.shape}.",
            hint="Pass predict_proba's output as logged.",
        )
    if len(array) == 0:
        raise InvalidInputError(
            "No rows to estimate performance on (proba is empty).",
            hint="Widen the window or wait until predictions are logged.",
        )
    if classes is not None and len(classes) != array.shape[1]:
        raise InvalidInputError(
            f"proba has {array.shape[1]} columns but {len(classes)} classes were given "
            f"({list(classes)!r}).",
            hint="Pass the model's classes in the order of its probability columns.",
        )
    check_probabilities(array)
    return array


def estimate_classification(proba: np.ndarray,
                            classes: Sequence[Any] | None = None) -> dict[str, float]:
    """Estimate a classifier's accuracy, precision, recall, F1 and ROC AUC from its predicted
    probabilities alone, assuming they are calibrated (see the module docstring).

    Args:
        proba: predicted probabilities, shape (n, k), one column per class; a 1-D array is
            the probability of the positive class of a binary model.
        classes: the classes in the order of the columns; only checked against the column
            count (with two classes the positive class is the second column).

    Returns:
        ``n``, ``estimated_accuracy``, ``estimated_accuracy_sd``, ``estimated_precision``,
        ``estimated_recall``, ``estimated_f1`` (binary: of the positive class; more classes:
        macro averages) and ``estimated_roc_auc`` (left out when every probability is 0 or
        every one is 1, where no pair can be formed).

    Raises:
        InvalidInputError: no rows, fewer than two columns, values outside [0, 1], rows that
            do not sum to 1, or a ``classes`` list of another length.

    Example:
        >>> import numpy as np
        >>> est = estimate_classification(np.array([0.9, 0.8, 0.3, 0.1]))
        >>> round(est["estimated_accuracy"], 3), round(est["estimated_recall"], 3)
        (0.825, 0.81)
    """
    p = _as_proba(proba, classes)
    n, k = p.shape
    predicted = np.argmax(p, axis=1)
    confidence = p[np.arange(n), predicted]
    # E[C[i, j]]: for the rows predicted j, the summed probability of each true class i.
    expected = np.zeros((k, k), dtype=np.float64)
    for j in range(k):
        expected[:, j] = p[predicted == j].sum(axis=0)
    prf = prf_from_confusion(expected)
    result: dict[str, float] = {
        "n": float(n),
        "estimated_accuracy": float(np.mean(confidence)),
        "estimated_accuracy_sd": float(np.sqrt(np.sum(confidence * (1.0 - confidence))) / n),
        "estimated_precision": prf["precision"],
        "estimated_recall": prf["recall"],
        "estimated_f1": prf["f1"],
    }
    if k == 2:
        auc = weighted_auc(p[:, 1], p[:, 1], 1.0 - p[:, 1])
    else:
        values = [weighted_auc(p[:, c], p[:, c], 1.0 - p[:, c]) for c in range(k)]
        present = [v for v in values if v is not None]
        auc = float(np.mean(present)) if present else None
    if auc is not None:
        result["estimated_roc_auc"] = auc
    return result
