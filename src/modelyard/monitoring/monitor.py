"""One monitoring run: a window of the inference log + feedback labels + the version's
reference -> drift, data quality, performance, latency and errors -> stored metric values ->
alert rules and objectives -> notifications.

The statistics are pure functions in their own modules; this module only gathers the data,
calls them, and keeps the results. It finds versions, profiles and models through the small
``ReferenceSource`` protocol (``modelyard.Client`` satisfies it), so monitoring does not
depend on the registry.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from modelyard.core.yaml_files import read_yaml_mapping
from modelyard.errors import InvalidInputError, ModelyardError
from modelyard.monitoring.alerts import AlertEvent, AlertsConfig, evaluate, load_alerts
from modelyard.monitoring.drift import DatasetDrift, DriftConfig, dataset_drift
from modelyard.monitoring.feedback import join_feedback
from modelyard.monitoring.inference_log import INPUT_PREFIX, OUTPUT_PREFIX
from modelyard.monitoring.log_store import LogStore
from modelyard.monitoring.metric_store import MetricStore
from modelyard.monitoring.objectives import ObjectiveStatus, evaluate_objectives
from modelyard.monitoring.quality import QualityConfig, QualityReport, check_quality
from modelyard.monitoring.windows import Window, parse_window, select

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "BATCH_ROUTE",
    "CLIENT_ERRORS",
    "MonitorConfig",
    "MonitorResult",
    "ReferenceSource",
    "load_monitor_config",
    "monitor_model",
]

log = logging.getLogger("modelyard.monitoring")

CLIENT_ERRORS = frozenset({"InvalidInputError", "SignatureError", "UnsupportedModelError",
                           "NotFoundError"})
"""Errors caused by the request, not the model: counted in ``invalid_input_rate``, not in
``error_rate``."""

BATCH_ROUTE = "batch"
"""The inference log's ``route`` for rows that ``modelyard batch`` scored (one record per
chunk): they count for drift, quality and performance, not for latency."""


class ReferenceSource(Protocol):
    """Where a run finds the served version's signature, profile, reference sample and model
    (``modelyard.Client`` is one)."""

    def resolve(self, ref: str) -> Any: ...

    def get_profile(self, ref: str) -> Any: ...

    def get_reference_sample(self, ref: str) -> Any: ...

    def load(self, ref: str) -> Any: ...


class MonitorConfig(BaseModel):
    """The monitoring YAML file: drift and quality settings, the window, alert rules, sinks
    and objectives (see docs/monitoring.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: str = "1h"
    drift: DriftConfig = Field(default_factory=DriftConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    min_rows: int = Field(default=30, ge=1)
    """Fewer logged rows than this in a window: no drift or quality test is run (too few to
    say anything), latency and errors still are."""


def load_monitor_config(path: Path | None, *, window: str | None = None) -> MonitorConfig:
    """Read the monitoring file; ``window`` (from the command line) overrides the file's."""
    import yaml
    from pydantic import ValidationError

    data: dict[str, Any] = {}
    if path is not None:
        data = read_yaml_mapping(path, what="monitoring config",
                                 contents="monitoring settings",
                                 hint="See docs/monitoring.md for an example.")
    alert_keys = {k: data.pop(k) for k in ("rules", "sinks", "objectives") if k in data}
    alerts = load_alerts(yaml.safe_dump(alert_keys)) if alert_keys else AlertsConfig()
    if window is not None:
        data["window"] = window
    try:
        config = MonitorConfig.model_validate({**data, "alerts": alerts})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise InvalidInputError(f"The monitoring config {str(path)!r} is invalid: {problems}.",
                                hint="See docs/monitoring.md for the keys.") from None
    parse_window(config.window)
    return config


@dataclass
class MonitorResult:
    """What one run found for one model."""

    model: str
    version: int | None
    window: str
    window_start: float
    window_end: float
    n_requests: int
    n_rows: int
    values: dict[str, float]
    drift: DatasetDrift | None = None
    prediction_drift: DatasetDrift | None = None
    quality: QualityReport | None = None
    performance: dict[str, float] = field(default_factory=dict)
    objectives: list[ObjectiveStatus] = field(default_factory=list)
    events: list[AlertEvent] = field(default_factory=list)
    firing: list[dict[str, Any]] = field(default_factory=list)
    reference: dict[str, np.ndarray] = field(default_factory=dict)
    current: dict[str, np.ndarray] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def monitor_model(model: str, *, logs: LogStore, source: ReferenceSource,
                  config: MonitorConfig, metrics: MetricStore | None = None,
                  now: float | None = None, notify: bool = True,
                  notifiers: Mapping[str, Any] | None = None) -> MonitorResult:
    """Run monitoring once for ``model`` over the configured window ending ``now``.

    Stores every value in ``metrics`` (when given), evaluates the alert rules and objectives,
    and sends notifications for alerts that start or stop firing (when ``notify``).
    """
    now = time.time() if now is None else now
    window = parse_window(config.window)
    table, start = _window_rows(logs, model, window, now)
    result = _compute(model, table, start, now, logs=logs, source=source, config=config,
                      window=window)
    if metrics is not None:
        metrics.save(model, result.version, start, now, result.values, computed_at=now)
        states = metrics.alert_states(model)
    else:
        states = {}
    rules = [r for r in config.alerts.rules if r.matches(model)]
    new_states, events = evaluate(rules, {model: result.values}, now=now, states=states)
    if metrics is not None:
        metrics.save_alert_states(new_states)
    result.events = events
    result.firing = [
        {"rule": s.rule, "model": s.model, "value": s.value,
         "metric": next((r.metric for r in rules if r.name == s.rule), ""),
         "severity": next((r.severity for r in rules if r.name == s.rule), "")}
        for s in new_states.values() if s.status == "firing"]
    objectives = config.alerts.parsed_objectives().get(model, [])
    result.objectives = evaluate_objectives(objectives, result.values)
    if notify and events:
        from modelyard.monitoring.notify import build_notifiers, dispatch

        sent = dispatch(events, notifiers if notifiers is not None
                        else build_notifiers(config.alerts))
        for event, sink, error in sent:
            if error is not None:
                log.warning("Alert %s for %s could not be sent to %s: %s",
                            event.rule, event.model, sink, error)
    return result


def _window_rows(logs: LogStore, model: str, window: Window,
                 now: float) -> tuple[pa.Table, float]:
    if window.kind == "time":
        assert window.seconds is not None
        start = now - window.seconds
        return logs.read_inferences(model, since=start, until=now), start
    # A row window: read backwards a day at a time until enough rows are in.
    assert window.rows is not None
    span = 86400.0
    while True:
        table = logs.read_inferences(model, since=now - span, until=now)
        if table.num_rows >= window.rows or span > 366 * 86400.0:
            break
        span *= 4
    if table.num_rows:
        ts = table.column("timestamp").to_numpy()
        table = table.take(select(ts, window, now=now))
        ts = table.column("timestamp").to_numpy()
        return table, float(ts.min()) if ts.size else now
    return table, now


def _compute(model: str, table: pa.Table, start: float, end: float, *, logs: LogStore,
             source: ReferenceSource, config: MonitorConfig, window: Window) -> MonitorResult:
    values: dict[str, float] = {}
    notes: list[str] = []
    version = _served_version(table)
    if version is not None:
        # Everything is about the version serving now: after a swap, rows the previous version
        # answered would blur its figures (the runs that saw them stored them under it).
        table = table.filter(_version_mask(table, version))
    # Requests are what the server answered: a batch job's chunks (route "batch") are not
    # requests, so they count neither in the request totals nor in the error rates.
    first_rows = _first_rows(table)
    if table.num_rows:
        first_rows &= np.asarray(table.column("route").to_numpy(zero_copy_only=False)
                                 != BATCH_ROUTE)
    errors = table.column("error").to_pylist() if table.num_rows else []
    n_requests = int(first_rows.sum())
    request_errors = [e for e, first in zip(errors, first_rows, strict=True) if first and e]
    server_errors = sum(1 for e in request_errors if e not in CLIENT_ERRORS)
    values["requests"] = float(n_requests)
    values["error_rate"] = server_errors / n_requests if n_requests else math.nan
    values["invalid_input_rate"] = (
        (len(request_errors) - server_errors) / n_requests if n_requests else math.nan)
    ok = table.filter(_ok_mask(table)) if table.num_rows else table
    latency = _request_latency(ok)
    if latency.size:
        values["latency.p50_ms"] = float(np.quantile(latency, 0.5))
        values["latency.p99_ms"] = float(np.quantile(latency, 0.99))
        values["latency.mean_ms"] = float(latency.mean())
    values["rows"] = float(ok.num_rows)
    result = MonitorResult(model=model, version=version, window=config.window,
                           window_start=start, window_end=end, n_requests=n_requests,
                           n_rows=ok.num_rows, values=values, notes=notes)
    if version is None:
        notes.append("No requests in the window.")
        return result
    ref = f"models:/{model}/{version}"
    loaded = _load(source, ref, notes)
    current = _columns(ok, INPUT_PREFIX)
    reference, kinds, profile = _reference(source, ref, notes)
    result.reference, result.kinds = reference, kinds
    result.current = {k: v for k, v in current.items() if k in reference} or current
    if ok.num_rows < config.min_rows:
        notes.append(f"Only {ok.num_rows} rows in the window (min_rows {config.min_rows}): "
                     "drift and quality were not tested.")
    elif profile is not None and reference:
        signature = getattr(source.resolve(ref), "signature", None)
        # Sensitive columns reach the log hashed or not at all: comparing them with the clear
        # reference would report nonsense drift and unseen categories, so they are left out.
        hidden = signature.sensitive_columns if signature is not None else frozenset()
        if hidden:
            notes.append(f"Sensitive columns not monitored: {sorted(hidden)}.")
        result.drift = dataset_drift(
            {k: v for k, v in reference.items() if k not in hidden},
            {k: v for k, v in current.items() if k not in hidden},
            kinds=kinds, config=config.drift)
        values.update(result.drift.metrics())
        quality = config.quality if not hidden else config.quality.model_copy(update={
            "ignore_columns": (*config.quality.ignore_columns, *sorted(hidden))})
        result.quality = check_quality(current, profile, signature=signature, config=quality)
        values.update(result.quality.metrics())
        result.prediction_drift = _prediction_drift(loaded, reference, ok, config, notes)
        if result.prediction_drift is not None:
            for column in result.prediction_drift.columns:
                for name, score in column.scores.items():
                    values[f"prediction.{name}"] = score
                values["prediction.drifted"] = float(column.drifted)
    classes = getattr(getattr(loaded, "predictor", None), "classes", None)
    result.performance = _performance(
        ok, logs, model, start, notes,
        None if classes is None else list(np.asarray(classes).tolist()))
    values.update(result.performance)
    return result


def _first_rows(table: pa.Table) -> np.ndarray:
    if table.num_rows == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray(table.column("row").to_numpy(zero_copy_only=False) == 0)


def _request_latency(ok: pa.Table) -> np.ndarray:
    """Latency of the answered requests, one value per request. Batch rows are left out: their
    latency is a whole chunk's (thousands of rows), not a request's, and would make the
    latency objectives meaningless; drift, quality and performance still use those rows."""
    import pyarrow.compute as pc

    if ok.num_rows == 0:
        return np.zeros(0)
    live = pc.and_(_first_mask(ok), pc.not_equal(ok.column("route"), BATCH_ROUTE))
    return np.asarray(ok.filter(live).column("latency_ms").to_numpy(), dtype=np.float64)


def _first_mask(table: pa.Table) -> Any:
    import pyarrow.compute as pc

    return pc.equal(table.column("row"), 0)


def _version_mask(table: pa.Table, version: int) -> Any:
    import pyarrow.compute as pc

    return pc.equal(table.column("version"), version)


def _ok_mask(table: pa.Table) -> Any:
    import pyarrow.compute as pc

    return pc.is_null(table.column("error"))


def _served_version(table: pa.Table) -> int | None:
    """The version that answered the newest request in the window."""
    if table.num_rows == 0:
        return None
    ts = table.column("timestamp").to_numpy()
    return int(table.column("version")[int(np.argmax(ts))].as_py())


def _columns(table: pa.Table, prefix: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in table.column_names:
        if name.startswith(prefix):
            column = table.column(name)
            if hasattr(column.type, "value_type"):  # list columns (tensors) are not features
                continue
            out[name[len(prefix):]] = column.to_numpy(zero_copy_only=False)
    return out


def _reference(source: ReferenceSource, ref: str, notes: list[str]
               ) -> tuple[dict[str, np.ndarray], dict[str, str], Any]:
    from modelyard.core.tabular import as_columns

    try:
        profile = source.get_profile(ref)
        sample = as_columns(source.get_reference_sample(ref))
    except ModelyardError as exc:
        notes.append(f"No reference profile for {ref}: {exc}")
        return {}, {}, None
    kinds = {column.name: "numeric" if column.kind in ("numeric", "datetime") else "categorical"
             for column in profile.columns}
    return dict(sample), kinds, profile


def _prediction_drift(loaded: Any, reference: Mapping[str, np.ndarray],
                      ok: pa.Table, config: MonitorConfig,
                      notes: list[str]) -> DatasetDrift | None:
    """Drift of the predictions: the model's answers on its reference sample against the
    answers it gave in the window."""
    column = OUTPUT_PREFIX + "predict"
    if column not in ok.column_names or loaded is None:
        return None
    try:
        expected = np.asarray(loaded.predict(dict(reference)))
    except ModelyardError as exc:
        notes.append(f"Prediction drift skipped: {exc}")
        return None
    current = ok.column(column).to_numpy(zero_copy_only=False)
    if expected.ndim != 1 or current.ndim != 1:
        return None
    kind = "categorical" if (expected.dtype.kind in "OUSb" or _few_values(expected)) \
        else "numeric"
    return dataset_drift({"prediction": expected}, {"prediction": current},
                         kinds={"prediction": kind}, config=config.drift)


def _few_values(values: np.ndarray) -> bool:
    return values.dtype.kind in "iu" and np.unique(values).size <= 20


def _load(source: ReferenceSource, ref: str, notes: list[str]) -> Any:
    try:
        return source.load(ref)
    except ModelyardError as exc:
        notes.append(f"Could not load {ref} (prediction drift and classes skipped): {exc}")
        return None


def _performance(ok: pa.Table, logs: LogStore, model: str, start: float,
                 notes: list[str], model_classes: list[Any] | None) -> dict[str, float]:
    """Metrics against ground truth where labels arrived, and the label-free estimate."""
    from modelyard.monitoring.estimation import estimate_classification
    from modelyard.monitoring.performance import classification_metrics, regression_metrics

    out: dict[str, float] = {}
    proba_column = OUTPUT_PREFIX + "predict_proba"
    predict_column = OUTPUT_PREFIX + "predict"
    if predict_column not in ok.column_names:
        return out
    classes = model_classes or _classes(ok, proba_column)
    if proba_column in ok.column_names and classes is not None:
        proba = _matrix(ok.column(proba_column))
        if proba is not None and proba.shape[1] == len(classes):
            out.update(estimate_classification(proba, classes))
    # Labels arrive after their predictions, so any label from the window's start on.
    feedback = logs.read_feedback(model, since=start)
    if feedback.num_rows == 0:
        return out
    joined = join_feedback(ok, feedback)
    if joined.num_rows == 0:
        return out
    y_pred = joined.column(predict_column).to_numpy(zero_copy_only=False)
    y_true = joined.column("label").to_numpy(zero_copy_only=False)
    out["labelled_rows"] = float(joined.num_rows)
    try:
        if proba_column in joined.column_names and classes is not None:
            y_true = _like(y_true, y_pred)
            proba = _matrix(joined.column(proba_column))
            out.update(classification_metrics(y_true, y_pred, proba=proba, classes=classes))
        elif y_pred.dtype.kind == "f":
            out.update(regression_metrics(y_true.astype(np.float64), y_pred))
        else:
            out.update(classification_metrics(_like(y_true, y_pred), y_pred))
    except InvalidInputError as exc:
        notes.append(f"Performance not computed: {exc}")
    out.pop("n", None)
    return out


def _like(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Labels in the predictions' type (feedback JSON may carry 1 for a class 1.0, '1' ...)."""
    try:
        return y_true.astype(y_pred.dtype)
    except (TypeError, ValueError):
        return y_true.astype(str)


def _classes(ok: pa.Table, proba_column: str) -> list[Any] | None:
    """Class labels in probability-column order: the model's predictions are the argmax, so
    every predicted label tells which column it is."""
    predict_column = OUTPUT_PREFIX + "predict"
    if proba_column not in ok.column_names:
        return None
    proba = _matrix(ok.column(proba_column))
    if proba is None:
        return None
    labels = ok.column(predict_column).to_numpy(zero_copy_only=False)
    found: dict[int, Any] = {}
    for column, label in zip(np.argmax(proba, axis=1), labels, strict=True):
        found.setdefault(int(column), label)
        if len(found) == proba.shape[1]:
            break
    if len(found) == proba.shape[1]:
        return [found[i] for i in range(proba.shape[1])]
    if proba.shape[1] == 2 and labels.dtype.kind in "iub":
        return [0, 1]
    return None


def _matrix(column: Any) -> np.ndarray | None:
    values = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    try:
        flat = values.flatten().to_numpy(zero_copy_only=False)
    except AttributeError:
        return None
    n = len(values)
    if n == 0 or flat.size % n:
        return None
    return np.asarray(flat, dtype=np.float64).reshape(n, flat.size // n)


def monitored_models(logs: LogStore, names: Sequence[str] | None = None) -> list[str]:
    """The models to monitor: the ones named, or every model that has a log."""
    return list(names) if names else logs.models()
