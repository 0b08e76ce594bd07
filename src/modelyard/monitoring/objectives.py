"""Objectives: the business targets a deployed model exists for, and whether they are met.

An objective is one comparison written the way people say it: ``latency_p99_ms <= 50``,
``accuracy >= 0.9``, ``error_rate <= 0.01``. Against the current metric values each one is
*met*, *at risk* (met, but close to breaching), *breached*, or *unknown* (no value yet).

This module also owns the small comparison grammar that alert rules share
(``drift.share > 0.3``) and the metric-name aliases (``latency_p99_ms`` is
``latency.p99_ms``), so that a name means the same thing in a rule and in an objective.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from modelyard.errors import InvalidInputError

__all__ = [
    "COMPARISONS",
    "Objective",
    "ObjectiveStatus",
    "canonical_metric",
    "compare",
    "evaluate_objectives",
    "parse_comparison",
    "parse_objective",
]

COMPARISONS: tuple[str, ...] = (">=", "<=", "==", "!=", ">", "<")
"""Every comparison a rule or an objective may use."""

_BOUNDS = (">=", "<=", ">", "<")

# Two-character operators first, so that ">=" is not read as ">" followed by "=0.3".
_COMPARISON = re.compile(
    r"^\s*(?P<metric>\S.*?)\s*(?P<op>>=|<=|==|!=|>|<)\s*"
    r"(?P<number>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)
_METRIC = re.compile(r"^[A-Za-z_][^\s<>=!]*$")
# latency_p99_ms, latency_p99, latency.p99 -> latency.p99_ms (the issue writes all three).
_LATENCY = re.compile(r"^latency[._]p(?P<q>\d+(?:\.\d+)?)(?:_ms)?$")

# Scores that never exceed 1, where higher is better: the room left below 1 is the budget.
_UNIT_SCORES = frozenset(
    {"accuracy", "precision", "recall", "f1", "roc_auc", "r2", "estimated_accuracy"}
)

ObjectiveState = Literal["met", "at_risk", "breached", "unknown"]


def canonical_metric(name: str) -> str:
    """The canonical name of a metric, resolving the underscore aliases of latency.

    Example:
        >>> canonical_metric("latency_p99_ms")
        'latency.p99_ms'
        >>> canonical_metric("drift.share")
        'drift.share'
    """
    name = name.strip()
    match = _LATENCY.match(name)
    if match is not None:
        return f"latency.p{match.group('q')}_ms"
    return name


def compare(value: float, op: str, threshold: float) -> bool:
    """Whether ``value op threshold`` holds (``op`` is one of :data:`COMPARISONS`).

    Example:
        >>> compare(0.42, ">", 0.3)
        True
    """
    if op == ">":
        return value > threshold
    if op == ">=":
        return value >= threshold
    if op == "<":
        return value < threshold
    if op == "<=":
        return value <= threshold
    if op == "==":
        return value == threshold
    if op == "!=":
        return value != threshold
    raise InvalidInputError(
        f"Comparison {op!r} is not supported.", hint=f"Use one of {', '.join(COMPARISONS)}."
    )


def parse_comparison(text: str) -> tuple[str, str, float]:
    """Split ``"METRIC OP NUMBER"`` into its canonical metric, operator and number.

    Example:
        >>> parse_comparison("latency_p99_ms <= 50")
        ('latency.p99_ms', '<=', 50.0)
    """
    if not isinstance(text, str):
        raise InvalidInputError(
            f"Expected a comparison such as 'accuracy >= 0.9'; got {text!r}.",
            hint="Write it as a string: METRIC OP NUMBER.",
        )
    match = _COMPARISON.match(text)
    if match is None or not _METRIC.match(match.group("metric")):
        raise InvalidInputError(
            f"{text!r} is not a comparison of a metric with a number.",
            hint="Write METRIC OP NUMBER with OP one of >, >=, <, <=, ==, !=; for example "
            "'drift.share > 0.3' or 'latency_p99_ms <= 50'.",
        )
    return canonical_metric(match.group("metric")), match.group("op"), float(match.group("number"))


@dataclass(frozen=True, slots=True)
class Objective:
    """One target, such as ``accuracy >= 0.9``: ``metric`` is the canonical metric name."""

    expression: str
    metric: str
    op: str
    target: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the fields."""
        return {"expression": self.expression, "metric": self.metric, "op": self.op,
                "target": self.target}


@dataclass(frozen=True, slots=True)
class ObjectiveStatus:
    """Where one objective stands: its current value (``None`` without data) and status."""

    objective: Objective
    value: float | None
    status: ObjectiveState

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict: the objective's fields plus ``value`` and ``status``."""
        return {**self.objective.to_dict(), "value": self.value, "status": self.status}


def parse_objective(text: str) -> Objective:
    """Parse one objective, ``METRIC OP TARGET`` with OP one of ``<=``, ``<``, ``>=``, ``>``.

    Underscore aliases are accepted beside the canonical names (``latency_p99_ms`` for
    ``latency.p99_ms``, ``latency_p50_ms`` for ``latency.p50_ms``).

    Example:
        >>> parse_objective("latency_p99_ms <= 50")
        Objective(expression='latency_p99_ms <= 50', metric='latency.p99_ms', op='<=', target=50.0)
    """
    try:
        metric, op, target = parse_comparison(text)
    except InvalidInputError as exc:
        raise InvalidInputError(
            f"Objective {text!r} is not understood.",
            hint="Write METRIC OP TARGET, for example 'latency_p99_ms <= 50', "
            "'accuracy >= 0.9' or 'error_rate <= 0.01'.",
        ) from exc
    if op not in _BOUNDS:
        raise InvalidInputError(
            f"Objective {text!r} uses {op!r}; an objective is a bound on a metric.",
            hint="Use <=, <, >= or >, for example 'error_rate <= 0.01'.",
        )
    if not math.isfinite(target):
        raise InvalidInputError(
            f"Objective {text!r} has no finite target.", hint="Give a finite number."
        )
    return Objective(expression=text.strip(), metric=metric, op=op, target=target)


def _budget(objective: Objective) -> float:
    """How far the target lies from the metric's ideal value: the band at-risk is a share of.

    For an upper bound (``latency.p99_ms <= 50``, ``error_rate <= 0.01``) the ideal is 0, so
    the budget is the target itself. For a lower bound on a score that cannot exceed 1
    (``accuracy >= 0.9``) the ideal is 1 and the budget is the room left, 0.1: read as an
    error rate, ``accuracy >= 0.9`` is ``1 - accuracy <= 0.1`` and gets the same band.
    Other lower bounds (``requests >= 100``) fall back to the size of the target.
    """
    if objective.op in (">=", ">") and objective.metric in _UNIT_SCORES:
        return max(1.0 - objective.target, 0.0)
    return abs(objective.target)


def evaluate_objectives(
    objectives: Sequence[Objective],
    values: Mapping[str, float],
    *,
    at_risk_margin: float = 0.1,
) -> list[ObjectiveStatus]:
    """The status of each objective against the current metric values, in the same order.

    * ``unknown``: the metric is absent from ``values`` or not a finite number (the status
      then carries ``value=None``).
    * ``breached``: the comparison does not hold.
    * ``at_risk``: it holds, but the value is within ``at_risk_margin`` of a *budget* from the
      target. The budget is the distance from the target to the metric's ideal value: the
      target itself for upper bounds (``latency_p99_ms <= 50`` is at risk above 45,
      ``error_rate <= 0.01`` above 0.009), the room below 1 for scores bounded by 1
      (``accuracy >= 0.9`` is at risk below 0.91), and the size of the target for other
      lower bounds (``requests >= 100`` below 110). A target at the ideal (``error_rate <= 0``)
      leaves no band: met or breached.
    * ``met``: otherwise.

    Example:
        >>> [s.status for s in evaluate_objectives(
        ...     [parse_objective("latency_p99_ms <= 50"), parse_objective("accuracy >= 0.9")],
        ...     {"latency.p99_ms": 47.0, "accuracy": 0.95})]
        ['at_risk', 'met']
    """
    if not (math.isfinite(at_risk_margin) and at_risk_margin >= 0):
        raise InvalidInputError(
            f"The 'at_risk_margin' parameter of evaluate_objectives must be a number >= 0. "
            f"Got {at_risk_margin!r} instead.",
            hint="Use for example 0.1 (within 10% of the budget).",
        )
    statuses: list[ObjectiveStatus] = []
    for objective in objectives:
        raw = values.get(objective.metric)
        value = float(raw) if raw is not None else None
        if value is None or not math.isfinite(value):
            statuses.append(ObjectiveStatus(objective, None, "unknown"))
            continue
        if not compare(value, objective.op, objective.target):
            statuses.append(ObjectiveStatus(objective, value, "breached"))
            continue
        room = objective.target - value if objective.op in ("<=", "<") else value - objective.target
        band = at_risk_margin * _budget(objective)
        status: ObjectiveState = "at_risk" if room < band else "met"
        statuses.append(ObjectiveStatus(objective, value, status))
    return statuses
