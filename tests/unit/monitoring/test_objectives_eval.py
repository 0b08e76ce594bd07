"""Objectives: parsing with aliases, and met / at risk / breached / unknown."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelyard.errors import InvalidInputError
from modelyard.monitoring.objectives import (
    Objective,
    ObjectiveStatus,
    canonical_metric,
    evaluate_objectives,
    parse_comparison,
    parse_objective,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("latency_p99_ms <= 50", ("latency.p99_ms", "<=", 50.0)),
        ("latency_p50_ms<=20", ("latency.p50_ms", "<=", 20.0)),
        ("latency.p99_ms <= 50", ("latency.p99_ms", "<=", 50.0)),
        ("latency.p99 < 50", ("latency.p99_ms", "<", 50.0)),
        ("accuracy >= 0.9", ("accuracy", ">=", 0.9)),
        ("  error_rate <= 1e-2 ", ("error_rate", "<=", 0.01)),
        ("feature.age.psi < .25", ("feature.age.psi", "<", 0.25)),
        ("r2 > -0.5", ("r2", ">", -0.5)),
    ],
    ids=["alias-p99", "alias-p50-no-spaces", "canonical", "short-latency", "accuracy",
         "exponent", "feature", "negative"],
)
def test_parse_objective(text: str, expected: tuple[str, str, float]) -> None:
    objective = parse_objective(text)
    assert (objective.metric, objective.op, objective.target) == expected
    assert objective.expression == text.strip()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("fast", r"Objective 'fast' is not understood\. Write METRIC OP TARGET"),
        ("accuracy >= high", r"Objective 'accuracy >= high' is not understood"),
        ("<= 50", r"Objective '<= 50' is not understood"),
        ("latency p99 <= 50", r"Objective 'latency p99 <= 50' is not understood"),
        ("accuracy => 0.9", r"Objective 'accuracy => 0.9' is not understood"),
        ("accuracy == 0.9", r"uses '=='; an objective is a bound on a metric\. Use <=, <, >= or >"),
        ("error_rate != 0", r"uses '!='"),
        ("", r"Objective '' is not understood"),
    ],
    ids=["word", "word-target", "no-metric", "space-in-metric", "reversed-op", "equality",
         "inequality", "empty"],
)
def test_garbage_is_refused_clearly(text: str, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        parse_objective(text)


def test_non_string_is_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"Expected a comparison .* got 0\.9"):
        parse_comparison(0.9)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "canonical"),
    [("latency_p99_ms", "latency.p99_ms"), ("latency_p95", "latency.p95_ms"),
     ("latency.p50_ms", "latency.p50_ms"), ("latency_mean_ms", "latency_mean_ms"),
     ("drift.share", "drift.share")],
    ids=["p99", "p95-no-unit", "canonical", "not-an-alias", "other"],
)
def test_canonical_metric(name: str, canonical: str) -> None:
    assert canonical_metric(name) == canonical


# (objective, value, status): bands are 10% of the budget (see evaluate_objectives).
STATUS_CASES = [
    ("latency_p99_ms <= 50", 20.0, "met"),
    ("latency_p99_ms <= 50", 44.9, "met"),
    ("latency_p99_ms <= 50", 45.1, "at_risk"),
    ("latency_p99_ms <= 50", 50.0, "at_risk"),
    ("latency_p99_ms <= 50", 50.1, "breached"),
    ("latency_p99_ms < 50", 50.0, "breached"),
    ("error_rate <= 0.01", 0.0, "met"),
    ("error_rate <= 0.01", 0.0089, "met"),
    ("error_rate <= 0.01", 0.0095, "at_risk"),
    ("error_rate <= 0.01", 0.0101, "breached"),
    ("error_rate <= 0", 0.0, "met"),
    ("error_rate <= 0", 1e-9, "breached"),
    ("accuracy >= 0.9", 0.95, "met"),
    ("accuracy >= 0.9", 0.911, "met"),
    ("accuracy >= 0.9", 0.905, "at_risk"),
    ("accuracy >= 0.9", 0.9, "at_risk"),
    ("accuracy >= 0.9", 0.89, "breached"),
    ("accuracy > 0.9", 0.9, "breached"),
    ("accuracy >= 1", 1.0, "met"),
    ("roc_auc >= 0.8", 0.81, "at_risk"),
    ("roc_auc >= 0.8", 0.83, "met"),
    ("requests >= 100", 105.0, "at_risk"),
    ("requests >= 100", 111.0, "met"),
    ("drift.share < 0.3", 0.28, "at_risk"),
]


@pytest.mark.parametrize(("text", "value", "status"), STATUS_CASES,
                         ids=[f"{t}@{v}" for t, v, _ in STATUS_CASES])
def test_status(text: str, value: float, status: str) -> None:
    objective = parse_objective(text)
    [result] = evaluate_objectives([objective], {objective.metric: value})
    assert result == ObjectiveStatus(objective, value, status)  # type: ignore[arg-type]


def test_unknown_without_a_finite_value() -> None:
    objectives = [parse_objective("accuracy >= 0.9"), parse_objective("latency_p99_ms <= 50"),
                  parse_objective("error_rate <= 0.01")]
    results = evaluate_objectives(objectives, {"latency.p99_ms": float("nan"),
                                               "error_rate": float("inf")})
    assert [(r.status, r.value) for r in results] == [("unknown", None)] * 3


def test_margin_is_configurable_and_order_kept() -> None:
    objectives = [parse_objective("latency_p99_ms <= 50"), parse_objective("accuracy >= 0.9")]
    values = {"latency.p99_ms": 40.0, "accuracy": 0.93}
    assert [s.status for s in evaluate_objectives(objectives, values)] == ["met", "met"]
    wide = evaluate_objectives(objectives, values, at_risk_margin=0.5)
    assert [s.status for s in wide] == ["at_risk", "at_risk"]
    none = evaluate_objectives(objectives, {"latency.p99_ms": 50.0, "accuracy": 0.9},
                               at_risk_margin=0)
    assert [s.status for s in none] == ["met", "met"]


@pytest.mark.parametrize("margin", [-0.1, float("nan")], ids=["negative", "nan"])
def test_bad_margin_is_refused(margin: float) -> None:
    with pytest.raises(InvalidInputError, match=r"'at_risk_margin' parameter .* must be a number"):
        evaluate_objectives([], {}, at_risk_margin=margin)


def test_status_to_dict() -> None:
    [status] = evaluate_objectives([parse_objective("accuracy >= 0.9")], {"accuracy": 0.95})
    assert status.to_dict() == {"expression": "accuracy >= 0.9", "metric": "accuracy",
                                "op": ">=", "target": 0.9, "value": 0.95, "status": "met"}


_names = st.from_regex(r"[a-z][a-z0-9_]{0,10}(\.[a-z0-9_]{1,8}){0,2}", fullmatch=True)
_targets = st.floats(allow_nan=False, allow_infinity=False, width=32)


@given(name=_names, op=st.sampled_from(["<=", "<", ">=", ">"]), target=_targets,
       space=st.sampled_from(["", " ", "  "]))
def test_parse_round_trips(name: str, op: str, target: float, space: str) -> None:
    text = f"{name}{space}{op}{space}{target!r}"
    assert parse_objective(text) == Objective(text, canonical_metric(name), op, target)


@given(value=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6))
def test_status_agrees_with_the_comparison(value: float) -> None:
    objective = parse_objective("latency_p99_ms <= 50")
    [result] = evaluate_objectives([objective], {"latency.p99_ms": value})
    assert (result.status == "breached") == (not value <= 50)
    assert (result.status == "at_risk") == (45 < value <= 50)
