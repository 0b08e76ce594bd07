"""Measure a loaded model on a labelled holdout: quality metrics and single-row latency.

Predictions go through the same :class:`~modelyard.runtimes.model.Model` API that serving and
batch scoring use (signature check, then the runtime), so what is measured here is what
production runs. The metrics themselves are :mod:`modelyard.monitoring.performance`'s, the
ones monitoring reports from live feedback, so a gate and a dashboard never disagree.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from modelyard.core.tabular import as_columns
from modelyard.errors import InvalidInputError
from modelyard.monitoring.performance import (
    classification_metrics,
    is_classification,
    regression_metrics,
)

if TYPE_CHECKING:
    import pandas as pd

    from modelyard.runtimes.model import Model

__all__ = [
    "CLASSIFICATION_METRICS",
    "METRIC_NAMES",
    "REGRESSION_METRICS",
    "evaluate",
    "features_of",
    "higher_is_better",
    "single_row_latencies_ms",
]

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
"""Metrics of a classifier; ``roc_auc`` and ``log_loss`` need ``predict_proba``."""

REGRESSION_METRICS = ("mae", "rmse", "r2", "mape")
"""Metrics of a regressor."""

METRIC_NAMES = CLASSIFICATION_METRICS + REGRESSION_METRICS
"""Every metric a gate can name."""

PROBABILITY_METRICS = frozenset({"roc_auc", "log_loss"})

_HIGHER_IS_BETTER = frozenset({"accuracy", "precision", "recall", "f1", "roc_auc", "r2"})

_WARMUP = 10
"""Single-row predicts run before timing: the first calls pay for lazy imports and caches."""


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (accuracy) or worse (rmse).

    >>> higher_is_better("roc_auc"), higher_is_better("log_loss")
    (True, False)
    """
    if metric not in METRIC_NAMES:
        raise InvalidInputError(f"Unknown metric {metric!r}.",
                                hint=f"The metrics are {', '.join(METRIC_NAMES)}.")
    return metric in _HIGHER_IS_BETTER


def features_of(model: Model, data: pd.DataFrame, target: str) -> pd.DataFrame:
    """The columns of ``data`` that ``model`` takes: its signature's input columns in its
    order (those present: the signature check names the missing ones), else every column but
    ``target``. Other columns are dropped because the signature check refuses unknown
    columns, and a holdout shared by a champion and a candidate may hold inputs of either."""
    signature = model.signature
    if signature is not None and signature.inputs.kind == "columns":
        present = set(data.columns)
        return data[[name for name in signature.inputs.names if name in present]]
    return data.drop(columns=[target])


def evaluate(model: Model, data: pd.DataFrame, target: str) -> dict[str, float]:
    """Score ``model`` on ``data`` and compare with its ``target`` column.

    A model whose predictions are labels (or that has ``predict_proba``) is a classifier:
    accuracy, precision, recall and F1 (of the positive class ``classes[1]`` with two
    classes, macro-averaged with more), plus ``roc_auc`` and ``log_loss`` when it has
    probabilities. Otherwise a regressor: ``mae``, ``rmse``, ``r2`` and ``mape``. See
    :mod:`modelyard.monitoring.performance` for each definition.

    Raises:
        SignatureError: the holdout does not fit the model's signature.
        PredictionError: the model raised while predicting.
        InvalidInputError: labels that are not among the model's classes, a target that is
            not numeric for a regressor.

    Example:
        >>> model = client.load("models:/churn/7")                         # doctest: +SKIP
        >>> evaluate(model, holdout, target="churned")["accuracy"]         # doctest: +SKIP
        0.912
    """
    if target not in data.columns:
        raise InvalidInputError(
            f"The holdout has no column {target!r}; its columns are "
            f"{[str(c) for c in data.columns]}.",
            hint="Pass the name of the label column as the target.")
    features = features_of(model, data, target)
    truth = data[target].to_numpy()
    predictions = np.asarray(model.predict(features))
    proba = np.asarray(model.predict_proba(features)) if model.has_proba else None
    if is_classification(predictions, proba=proba):
        classes = getattr(model.predictor, "classes", None)
        # The model's classes, when it knows them: they fix the positive class (classes[1])
        # the same way for a candidate and its champion, and name labels it cannot predict.
        metrics = classification_metrics(
            truth, predictions, proba=proba,
            classes=list(classes) if classes is not None else None)
    else:
        metrics = regression_metrics(truth, predictions)
    metrics.pop("n", None)  # the row count is the report's, not a metric to gate on
    return metrics


def single_row_latencies_ms(model: Model, features: pd.DataFrame | Mapping[str, Any],
                            samples: int) -> np.ndarray:
    """Milliseconds taken by each of ``samples`` single-row ``model.predict`` calls, after a
    short warm-up; rows are taken from ``features`` in turn.

    Each call runs the signature check and the runtime, as a served request does; the rows
    are cut beforehand so that only the model's own work is timed.

    >>> times = single_row_latencies_ms(model, holdout, samples=200)      # doctest: +SKIP
    >>> float(np.percentile(times, 99))                                   # doctest: +SKIP
    0.41
    """
    if samples < 1:
        raise InvalidInputError(f"samples must be at least 1. Got {samples} instead.",
                                hint="Measure 200 calls or more for a stable p99.")
    columns = as_columns(features)
    n = len(next(iter(columns.values()))) if columns else 0
    if n == 0:
        raise InvalidInputError("There are no rows to measure latency on.",
                                hint="Pass a holdout with at least one row.")
    rows = [{name: values[i:i + 1] for name, values in columns.items()}
            for i in range(min(n, samples))]
    for i in range(min(_WARMUP, samples)):
        model.predict(rows[i % len(rows)])
    times = np.empty(samples, dtype=np.float64)
    clock = time.perf_counter
    for i in range(samples):
        row = rows[i % len(rows)]
        start = clock()
        model.predict(row)
        times[i] = (clock() - start) * 1000.0
    return times
