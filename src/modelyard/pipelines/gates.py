"""The validation gate: should this candidate version replace the champion?

:func:`run_gates` judges a loaded candidate on a labelled holdout, next to the champion on the
same rows, and returns a :class:`ValidationReport` of named checks; the report passes only
when every check passed. The checks, in report order:

``signature``
    The candidate takes what the champion takes (see :mod:`.compatibility`).
``predict`` (only when it fails)
    The candidate could not predict on the holdout (a signature error, or the model raised).
``<metric>.min`` / ``<metric>.max``
    An absolute floor or ceiling on the candidate's metric.
``<metric>.min_delta`` / ``<metric>.min_relative_delta``
    The candidate beats the champion by at least this much, measured in the metric's better
    direction (up for accuracy, down for rmse): ``min_delta`` in the metric's units,
    ``min_relative_delta`` as a share of the champion's value. A negative value tolerates a
    regression of that size. When both are set, both must pass.
``latency_p99_ms``
    The 99th percentile of single-row predict times, after a warm-up.
``size_mb``
    The stored artifact's size, in MiB.
``check:<module:function>``
    User checks (see :mod:`.checks`).

Example:
    >>> config = load_gates("gates.yaml")                                    # doctest: +SKIP
    >>> report = validate(client, "models:/churn/8", data=holdout,           # doctest: +SKIP
    ...                   against="models:/churn@production", config=config)
    >>> report.passed, [c.name for c in report.failed()]                     # doctest: +SKIP
    (False, ['accuracy.min_delta'])
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from modelyard.core.yaml_files import read_yaml_mapping
from modelyard.errors import (
    ConfigurationError,
    InvalidInputError,
    PredictionError,
    SignatureError,
)
from modelyard.pipelines.checks import CheckContext, load_check, run_check, split_spec
from modelyard.pipelines.compatibility import signature_check
from modelyard.pipelines.evaluation import (
    CLASSIFICATION_METRICS,
    METRIC_NAMES,
    PROBABILITY_METRICS,
    REGRESSION_METRICS,
    evaluate,
    features_of,
    higher_is_better,
    single_row_latencies_ms,
)
from modelyard.pipelines.report import GateCheck, ValidationReport

if TYPE_CHECKING:
    import pandas as pd

    from modelyard.core.entities import ModelVersion
    from modelyard.runtimes.model import Model

__all__ = [
    "CheckContext",
    "GateCheck",
    "GatesConfig",
    "MetricGate",
    "ModelClient",
    "ValidationReport",
    "evaluate",
    "load_gates",
    "run_gates",
    "validate",
]

_MIB = 1024 * 1024


# -- configuration ----------------------------------------------------------------------------


class MetricGate(BaseModel):
    """The rules for one metric; every rule that is set must pass."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: float | None = None
    """Absolute floor: the candidate's value must be at least this (accuracy, r2...)."""
    max: float | None = None
    """Absolute ceiling: the candidate's value must be at most this (rmse, log_loss...)."""
    min_delta: float | None = None
    """The candidate must beat the champion by at least this, in the metric's units and its
    better direction (0.0: no worse; -0.01: at most 0.01 worse)."""
    min_relative_delta: float | None = None
    """... by at least this share of the champion's value (0.01 = 1%)."""

    @model_validator(mode="after")
    def _ordered(self) -> MetricGate:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is above max ({self.max:g}), so nothing "
                             "can pass")
        return self


class GatesConfig(BaseModel):
    """What a candidate must meet, usually read from ``gates.yaml`` by :func:`load_gates`:

    .. code-block:: yaml

        target: churned
        metrics:
          accuracy: {min: 0.90, min_delta: 0.0}
          log_loss: {max: 0.35, min_relative_delta: 0.02}
        signature: compatible
        latency_p99_ms: 25
        max_size_mb: 200
        checks: ["my_checks:no_negative_prices"]
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str | None = None
    """The holdout's label column (default: its one column that is not a model input)."""
    metrics: dict[str, MetricGate] = Field(default_factory=dict)
    """Rules per metric name: accuracy, precision, recall, f1, roc_auc, log_loss (classifiers)
    or mae, rmse, r2, mape (regressors)."""
    signature: Literal["compatible", "identical", "off"] = "compatible"
    """How the candidate's inputs must relate to the champion's."""
    latency_p99_ms: float | None = Field(default=None, gt=0)
    """Budget for the 99th percentile of single-row predict times, in milliseconds."""
    latency_samples: int = Field(default=200, ge=1)
    """Single-row predicts timed (after a warm-up)."""
    max_size_mb: float | None = Field(default=None, gt=0)
    """Largest stored artifact allowed, in MiB."""
    checks: list[str] = Field(default_factory=list)
    """User checks, as ``module:function``."""

    @field_validator("checks")
    @classmethod
    def _specs(cls, checks: list[str]) -> list[str]:
        for spec in checks:
            split_spec(spec)
        return checks


def load_gates(path: str | Path) -> GatesConfig:
    """Read a :class:`GatesConfig` from a YAML file (an empty file gives the defaults).

    Raises:
        NotFoundError: there is no file at ``path``.
        ConfigurationError: the file is not YAML, or holds an unknown field, a value of the
            wrong type or an unknown metric; the message names the field.

    >>> load_gates("gates.yaml").metrics["accuracy"].min                    # doctest: +SKIP
    0.9
    """

    where = str(path)
    doc = read_yaml_mapping(path, what="gates file", contents="gates",
                            hint="Example: 'metrics: {accuracy: {min: 0.9}}'. See docs/ci.md.",
                            error=ConfigurationError)
    try:
        config = GatesConfig.model_validate(doc)
    except ValidationError as exc:
        raise ConfigurationError(f"Invalid gates file {where!r}: {_first_error(exc)}.",
                                 hint="The fields are listed in docs/ci.md.") from None
    _check_metric_names(config)
    return config


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0]
    loc = [str(part) for part in first["loc"]]
    field = ".".join(loc) or "(top level)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if first["type"] == "extra_forbidden":
        known = MetricGate.model_fields if loc[:1] == ["metrics"] else GatesConfig.model_fields
        return f"unknown field {field!r}; the fields are {', '.join(known)}{more}"
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{field}: {message}{more}"


def _check_metric_names(config: GatesConfig) -> None:
    unknown = [name for name in config.metrics if name not in METRIC_NAMES]
    if unknown:
        raise ConfigurationError(
            f"Unknown metric(s) {unknown} in the gates. The metrics are "
            f"{', '.join(CLASSIFICATION_METRICS)} (classifiers) and "
            f"{', '.join(REGRESSION_METRICS)} (regressors).",
            hint="Names are lower case, as listed.")


# -- running the gates ------------------------------------------------------------------------


class ModelClient(Protocol):
    """What :func:`validate` needs of a client (``modelyard.Client`` has both)."""

    def resolve(self, ref: str) -> ModelVersion: ...

    def load(self, ref: str) -> Model: ...


def validate(client: ModelClient, candidate_ref: str, *, data: pd.DataFrame,
             against: str | None = None, config: GatesConfig | None = None,
             target: str | None = None) -> ValidationReport:
    """Resolve and load the candidate (and the champion ``against``), then :func:`run_gates`.

    The champion is loaded at the version ``against`` resolves to when called, so the
    report names the version it was compared with even if the alias moves later.

    Raises:
        NotFoundError: a reference that does not resolve (a missing model, version or alias).
        ConfigurationError, InvalidInputError: see :func:`run_gates`.

    Example:
        >>> import modelyard, pandas as pd                                   # doctest: +SKIP
        >>> report = validate(modelyard.Client(), "models:/churn/8",          # doctest: +SKIP
        ...                   data=pd.read_parquet("holdout.parquet"),
        ...                   against="models:/churn@production")
        >>> report.passed                                                    # doctest: +SKIP
        True
    """
    candidate = client.resolve(candidate_ref)
    candidate_model = client.load(candidate.uri)
    champion = champion_model = None
    if against is not None:
        champion = client.resolve(against)
        champion_model = client.load(champion.uri)
    return run_gates(candidate, candidate_model, data, config or GatesConfig(),
                     champion=champion, champion_model=champion_model, target=target)


def run_gates(candidate: ModelVersion, candidate_model: Model, data: pd.DataFrame,
              config: GatesConfig, *, champion: ModelVersion | None = None,
              champion_model: Model | None = None,
              target: str | None = None) -> ValidationReport:
    """Judge ``candidate`` (and its loaded model) on the holdout ``data``, next to the
    champion when one is given; see the module docstring for the checks.

    A candidate that cannot predict on the holdout fails (``predict``), as do the metric
    gates then; a champion that cannot fails the delta gates. A user check that raises
    fails. Everything else that is wrong is an error, raised before any model runs where
    possible.

    Raises:
        ConfigurationError: an unknown metric, a metric the model cannot have (rmse for a
            classifier, roc_auc without predict_proba), a user check that cannot be imported.
        InvalidInputError: an empty holdout, no target column (or several candidates for
            it), missing labels.

    Example:
        >>> report = run_gates(version, model, holdout,                       # doctest: +SKIP
        ...                    GatesConfig(metrics={"r2": MetricGate(min=0.8)}))
        >>> report.checks[-1].name, report.checks[-1].passed                  # doctest: +SKIP
        ('r2.min', True)
    """
    if champion is None and champion_model is not None:
        champion = champion_model.version
    if champion is not None and champion_model is None:
        raise InvalidInputError(
            f"The champion {champion.uri} was given without its loaded model.",
            hint="Pass champion_model=client.load(champion.uri) as well.")
    _check_metric_names(config)
    user_checks = [(spec, load_check(spec)) for spec in config.checks]  # fail before any work
    label = _resolve_target(data, target or config.target, candidate_model, champion_model)
    _check_holdout(data, label)
    checks: list[GateCheck] = []
    signature = signature_check(
        config.signature, candidate.signature, champion.signature if champion else None,
        holdout_columns=[str(c) for c in data.columns if c != label],
        has_champion=champion is not None)
    if signature is not None:
        checks.append(signature)

    candidate_metrics, candidate_error = _try_evaluate(candidate_model, data, label)
    if candidate_error is not None:
        checks.append(GateCheck("predict", False,
                                f"the candidate cannot predict on the holdout: {candidate_error}"))
    else:
        _check_metrics_available(config, candidate_metrics, candidate_model)
    champion_metrics: dict[str, float] = {}
    champion_error: str | None = None
    if champion_model is not None:
        champion_metrics, error = _try_evaluate(champion_model, data, label)
        champion_error = (None if error is None else
                          f"the champion cannot predict on the holdout: {error}")
    for name, rule in config.metrics.items():
        checks.extend(_metric_checks(name, rule, candidate_metrics, candidate_error,
                                     champion_metrics if champion_model is not None else None,
                                     champion_error))

    if config.latency_p99_ms is not None:
        checks.append(_latency_check(candidate_model, data, label, config))
    if config.max_size_mb is not None:
        size = candidate.size_bytes / _MIB
        checks.append(GateCheck(
            "size_mb", size <= config.max_size_mb,
            f"stored artifact {size:.3g} MiB, at most {config.max_size_mb:g} MiB", size,
            config.max_size_mb))
    if user_checks:
        context = CheckContext(candidate, candidate_model, champion, champion_model, data, label,
                               dict(candidate_metrics), dict(champion_metrics))
        checks.extend(run_check(spec, fn, context) for spec, fn in user_checks)
    return ValidationReport(
        candidate=candidate.uri, champion=champion.uri if champion else None,
        passed=all(c.passed for c in checks), checks=checks,
        candidate_metrics=candidate_metrics, champion_metrics=champion_metrics, rows=len(data))


def _resolve_target(data: pd.DataFrame, target: str | None, *models: Model | None) -> str:
    columns = [str(c) for c in data.columns]
    if target is not None:
        if target not in columns:
            raise InvalidInputError(
                f"The holdout has no target column {target!r}; its columns are {columns}.",
                hint="Pass the label column's name with --target (or 'target:' in the gates).")
        return target
    inputs: set[str] = set()
    for model in models:
        if model is None:
            continue
        signature = model.signature
        if signature is None or signature.inputs.kind != "columns":
            raise InvalidInputError(
                "Cannot tell the holdout's label column: a model has no named input columns.",
                hint="Pass the label column's name with --target (or 'target:' in the gates).")
        inputs.update(signature.inputs.names)
    others = [c for c in columns if c not in inputs]
    if len(others) != 1:
        found = f"columns {others} are" if others else "no column is"
        raise InvalidInputError(
            f"Cannot tell the holdout's label column: {found} not a model input.",
            hint="Pass the label column's name with --target (or 'target:' in the gates).")
    return others[0]


def _check_holdout(data: pd.DataFrame, target: str) -> None:
    if len(data) == 0:
        raise InvalidInputError("The holdout has no rows.",
                                hint="Validate on a labelled holdout of at least a few hundred "
                                     "rows.")
    missing = int(data[target].isna().sum())
    if missing:
        raise InvalidInputError(
            f"The target column {target!r} has {missing} missing label(s) in {len(data)} rows.",
            hint="Drop the unlabelled rows from the holdout.")


def _try_evaluate(model: Model, data: pd.DataFrame,
                  target: str) -> tuple[dict[str, float], str | None]:
    """The model's metrics, or the reason it could not predict on the holdout."""
    try:
        return evaluate(model, data, target), None
    except (SignatureError, PredictionError) as exc:
        return {}, exc.message


def _check_metrics_available(config: GatesConfig, metrics: dict[str, float],
                             model: Model) -> None:
    classifier = "accuracy" in metrics
    for name in config.metrics:
        if name in metrics:
            continue
        if name in (REGRESSION_METRICS if classifier else CLASSIFICATION_METRICS):
            task, other = ("a classifier", "regressors") if classifier else (
                "a regressor", "classifiers")
            raise ConfigurationError(
                f"The gates name {name!r}, a metric of {other}, but {model.version.uri} is "
                f"{task}. Its metrics are {', '.join(sorted(metrics))}.",
                hint="Gate on one of the model's metrics.")
        if name in PROBABILITY_METRICS and not model.has_proba:
            raise ConfigurationError(
                f"The gates name {name!r}, which needs predicted probabilities, but "
                f"{model.version.uri} has no predict_proba. Its metrics are "
                f"{', '.join(sorted(metrics))}.",
                hint="Gate on accuracy, precision, recall or f1 instead.")
        # Otherwise undefined on this holdout (roc_auc with one class): _metric_checks fails it.


def _metric_checks(name: str, rule: MetricGate, candidate: dict[str, float],
                   candidate_error: str | None, champion: dict[str, float] | None,
                   champion_error: str | None) -> list[GateCheck]:
    """The checks of one metric's rules. ``champion`` is None without a champion; then the
    delta rules pass (nothing to beat), while a champion that could not predict
    (``champion_error``) fails them: a comparison that did not happen is not a win."""
    rules = [(kind, getattr(rule, kind)) for kind in
             ("min", "max", "min_delta", "min_relative_delta")]
    out = []
    for kind, threshold in rules:
        if threshold is None:
            continue
        check = f"{name}.{kind}"
        value = candidate.get(name)
        if value is None:
            reason = (f"not evaluated: {candidate_error}" if candidate_error is not None else
                      f"{name} is undefined on this holdout (e.g. roc_auc with one class)")
            out.append(GateCheck(check, False, reason, None, threshold))
        elif kind == "min":
            out.append(GateCheck(check, _at_least(value, threshold),
                                 f"{name} {value:.4g}, needs >= {threshold:g}",
                                 value, threshold))
        elif kind == "max":
            out.append(GateCheck(check, _at_least(threshold, value),
                                 f"{name} {value:.4g}, needs <= {threshold:g}",
                                 value, threshold))
        else:
            out.append(_delta_check(check, name, kind, value, threshold, champion,
                                    champion_error))
    return out


def _delta_check(check: str, name: str, kind: str, value: float, threshold: float,
                 metrics: dict[str, float] | None, champion_error: str | None) -> GateCheck:
    if metrics is None:
        return GateCheck(check, True, "no champion to beat", None, threshold)
    if champion_error is not None:
        return GateCheck(check, False, champion_error, None, threshold)
    champion = metrics.get(name)
    if champion is None:
        return GateCheck(check, False, f"the champion's {name} is undefined on this holdout",
                         None, threshold)
    sign = 1.0 if higher_is_better(name) else -1.0
    gain = sign * (value - champion)  # > 0: the candidate is better
    versus = f"{name} {value:.4g} vs champion {champion:.4g}"
    better = f"{'higher' if sign > 0 else 'lower'} is better"
    if kind == "min_delta":
        return GateCheck(check, _at_least(gain, threshold),
                         f"{versus}, gain {gain:+.4g} ({better}), needs >= {threshold:+g}",
                         gain, threshold)
    required = threshold * abs(champion)
    share = gain / abs(champion) if champion != 0 else (
        0.0 if gain == 0 else math.copysign(math.inf, gain))
    return GateCheck(check, _at_least(gain, required),
                     f"{versus}, gain {share:+.2%} ({better}), needs >= {threshold:+.2%}",
                     share, threshold)


def _at_least(value: float, bound: float) -> bool:
    """value >= bound, forgiving float noise (0.95 - 0.94 is 0.0099999...)."""
    return value >= bound or math.isclose(value, bound, rel_tol=1e-9, abs_tol=1e-12)


def _latency_check(model: Model, data: pd.DataFrame, target: str,
                   config: GatesConfig) -> GateCheck:
    budget = config.latency_p99_ms
    assert budget is not None
    try:
        times = single_row_latencies_ms(model, features_of(model, data, target),
                                        config.latency_samples)
    except (SignatureError, PredictionError) as exc:
        return GateCheck("latency_p99_ms", False, f"not measured: {exc.message}", None, budget)
    p99 = float(np.percentile(times, 99))
    return GateCheck(
        "latency_p99_ms", p99 <= budget,
        f"p99 {p99:.3g} ms, median {float(np.median(times)):.3g} ms over {len(times)} "
        f"single-row predicts; needs <= {budget:g} ms", p99, budget)

