"""The alert state machine: pending, firing, resolving, cooldown, missing data, wildcards."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from modelyard.errors import InvalidInputError
from modelyard.monitoring.alerts import AlertEvent, AlertRule, AlertState, evaluate

NaN = float("nan")
MISSING = object()  # the metric is absent from the values


def _rule(**overrides: Any) -> AlertRule:
    fields: dict[str, Any] = {"name": "drift", "model": "fraud",
                              "condition": "drift.share > 0.3", "cooldown": "30m"}
    fields.update(overrides)
    return AlertRule.model_validate(fields)


def _run(rule: AlertRule, steps: list[tuple[float, object]]) -> list[tuple[str | None, list[str]]]:
    """Feed (time, value) steps to evaluate; return (status, event kinds) after each."""
    states: dict[tuple[str, str], AlertState] = {}
    seen: list[tuple[str | None, list[str]]] = []
    for now, value in steps:
        metrics = {} if value is MISSING else {"drift.share": value}
        states, events = evaluate([rule], {"fraud": metrics}, now=now, states=states)
        state = states.get(("drift", "fraud"))
        seen.append((state.status if state else None, [e.kind for e in events]))
    return seen


# Each case: rule fields, then (time, value) steps with the expected (status, events) after each.
CASES: dict[str, tuple[dict[str, Any], list[tuple[float, object, str | None, list[str]]]]] = {
    "fires-at-once-without-for": ({}, [
        (0, 0.5, "firing", ["firing"]),
        (60, 0.6, "firing", []),
        (120, 0.1, "ok", ["resolved"]),
        (180, 0.1, "ok", []),
    ]),
    "quiet-while-ok": ({}, [
        (0, 0.1, "ok", []),
        (60, 0.3, "ok", []),  # not strictly above 0.3
    ]),
    "pending-until-for-elapses": ({"for": "5m"}, [
        (0, 0.5, "pending", []),
        (120, 0.5, "pending", []),
        (299, 0.5, "pending", []),
        (300, 0.5, "firing", ["firing"]),
        (360, 0.5, "firing", []),
        (420, 0.0, "ok", ["resolved"]),
    ]),
    "pending-cancelled-restarts-the-clock": ({"for": "5m"}, [
        (0, 0.5, "pending", []),
        (120, 0.1, "ok", []),
        (240, 0.5, "pending", []),
        (480, 0.5, "pending", []),  # 240 s since the condition held again
        (540, 0.5, "firing", ["firing"]),
    ]),
    "cooldown-silences-a-quick-refire-and-its-resolve": ({}, [
        (0, 0.5, "firing", ["firing"]),
        (60, 0.1, "ok", ["resolved"]),
        (120, 0.5, "firing", []),  # 60 s after the resolve, within 30 m
        (180, 0.1, "ok", []),  # the silent firing resolves silently
        (1859, 0.5, "firing", []),
        (1860, 0.1, "ok", []),
        (1920, 0.5, "firing", ["firing"]),  # 31 m after the last resolve
    ]),
    "suppressed-firing-is-announced-when-cooldown-ends": ({}, [
        (0, 0.5, "firing", ["firing"]),
        (60, 0.1, "ok", ["resolved"]),
        (120, 0.5, "firing", []),
        (1800, 0.5, "firing", []),
        (1860, 0.5, "firing", ["firing"]),  # 30 m after the resolve, still firing
        (1920, 0.5, "firing", []),
        (1980, 0.1, "ok", ["resolved"]),
    ]),
    "zero-cooldown-notifies-every-episode": ({"cooldown": "0s"}, [
        (0, 0.5, "firing", ["firing"]),
        (60, 0.1, "ok", ["resolved"]),
        (120, 0.5, "firing", ["firing"]),
    ]),
    "missing-metric-neither-fires-nor-resolves": ({}, [
        (0, MISSING, None, []),
        (60, 0.5, "firing", ["firing"]),
        (120, MISSING, "firing", []),
        (180, NaN, "firing", []),
        (240, 0.1, "ok", ["resolved"]),
        (300, MISSING, "ok", []),
    ]),
    "missing-metric-keeps-pending": ({"for": "5m"}, [
        (0, 0.5, "pending", []),
        (200, MISSING, "pending", []),
        (400, 0.5, "firing", ["firing"]),  # held at both observations 400 s apart
    ]),
    "infinite-value-is-no-data": ({}, [
        (0, float("inf"), None, []),
    ]),
}


@pytest.mark.parametrize(("fields", "steps"), list(CASES.values()), ids=list(CASES))
def test_state_machine(
    fields: dict[str, Any], steps: list[tuple[float, object, str | None, list[str]]]
) -> None:
    seen = _run(_rule(**fields), [(now, value) for now, value, _, _ in steps])
    assert seen == [(status, kinds) for _, _, status, kinds in steps]


@pytest.mark.parametrize(
    ("op", "value", "fires"),
    [(">", 0.31, True), (">", 0.3, False), (">=", 0.3, True), (">=", 0.29, False),
     ("<", 0.29, True), ("<", 0.3, False), ("<=", 0.3, True), ("<=", 0.31, False),
     ("==", 0.3, True), ("==", 0.31, False), ("!=", 0.31, True), ("!=", 0.3, False)],
    ids=str,
)
def test_every_comparison(op: str, value: float, fires: bool) -> None:
    rule = AlertRule(name="r", metric="drift.share", op=op, threshold=0.3)  # type: ignore[arg-type]
    states, events = evaluate([rule], {"m": {"drift.share": value}}, now=0, states={})
    assert states["r", "m"].status == ("firing" if fires else "ok")
    assert len(events) == int(fires)


def test_state_fields_track_times_and_values() -> None:
    rule = _rule(**{"for": "1m"})
    states, _ = evaluate([rule], {"fraud": {"drift.share": 0.4}}, now=100, states={})
    assert states["drift", "fraud"] == AlertState("drift", "fraud", "pending", 100, 0.4, None)
    states, _ = evaluate([rule], {"fraud": {"drift.share": 0.45}}, now=160, states=states)
    assert states["drift", "fraud"] == AlertState("drift", "fraud", "firing", 160, 0.45, 160)
    states, _ = evaluate([rule], {"fraud": {"drift.share": 0.5}}, now=220, states=states)
    assert states["drift", "fraud"] == AlertState("drift", "fraud", "firing", 160, 0.5, 160)
    states, _ = evaluate([rule], {"fraud": {"drift.share": 0.2}}, now=280, states=states)
    assert states["drift", "fraud"] == AlertState("drift", "fraud", "ok", 280, 0.2, 280)


def test_events_carry_the_rule() -> None:
    rule = _rule(severity="critical", sinks=["log", "hook"], description="Retrain it.")
    _, [event] = evaluate([rule], {"fraud": {"drift.share": 0.42}}, now=7.5, states={})
    assert event == AlertEvent(
        rule="drift", model="fraud", metric="drift.share", value=0.42, op=">", threshold=0.3,
        severity="critical", kind="firing", at=7.5, sinks=("log", "hook"),
        message="[critical] Alert 'drift' is firing for model 'fraud': drift.share is 0.42 "
        "(fires when drift.share > 0.3). Retrain it.",
    )
    assert AlertEvent.from_dict(json.loads(json.dumps(event.to_dict()))) == event


def test_wildcard_rule_gets_one_state_per_model() -> None:
    rule = _rule(model="*")
    values = {"fraud": {"drift.share": 0.5}, "churn": {"drift.share": 0.1}, "spam": {}}
    states, events = evaluate([rule], values, now=0, states={})
    assert {key: s.status for key, s in states.items()} == {
        ("drift", "churn"): "ok", ("drift", "fraud"): "firing"}
    assert [(e.model, e.kind) for e in events] == [("fraud", "firing")]
    # A model that disappears keeps its state: no data is not a resolve.
    states, events = evaluate([rule], {"churn": {"drift.share": 0.1}}, now=60, states=states)
    assert states["drift", "fraud"].status == "firing"
    assert events == []


def test_pattern_rule_matches_names() -> None:
    rule = _rule(model="fraud-*")
    values = {"fraud-eu": {"drift.share": 0.5}, "fraud-us": {"drift.share": 0.5},
              "churn": {"drift.share": 0.5}}
    states, _ = evaluate([rule], values, now=0, states={})
    assert sorted(model for _, model in states) == ["fraud-eu", "fraud-us"]


def test_rule_for_an_absent_model_has_no_state() -> None:
    states, events = evaluate([_rule()], {"churn": {"drift.share": 0.9}}, now=0, states={})
    assert (states, events) == ({}, [])


def test_states_of_removed_rules_are_dropped() -> None:
    old = AlertState("gone", "fraud", "firing", 0, 1.0, 0)
    states, events = evaluate([_rule()], {"fraud": {"drift.share": 0.1}}, now=60,
                              states={("gone", "fraud"): old})
    assert list(states) == [("drift", "fraud")]
    assert events == []


def test_rules_with_different_windows_can_be_evaluated_apart() -> None:
    hourly = _rule(name="hourly", window="1h")
    daily = _rule(name="daily", window="1d")
    states_h, _ = evaluate([hourly], {"fraud": {"drift.share": 0.5}}, now=0, states={})
    states_d, _ = evaluate([daily], {"fraud": {"drift.share": 0.1}}, now=0, states={})
    merged = {**states_h, **states_d}
    assert {key: s.status for key, s in merged.items()} == {
        ("hourly", "fraud"): "firing", ("daily", "fraud"): "ok"}
    assert (hourly.window_s, daily.window_s) == (3600.0, 86400.0)


def test_duplicate_rule_names_are_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"names must be unique; 'drift' repeat"):
        evaluate([_rule(), _rule()], {}, now=0, states={})


def test_state_round_trips_through_json() -> None:
    state = AlertState("drift", "fraud", "firing", 10.0, 0.5, 10.0)
    assert AlertState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    fresh = AlertState("drift", "fraud", "ok", None, None, None)
    assert AlertState.from_dict(fresh.to_dict()) == fresh


@pytest.mark.parametrize(
    ("data", "match"),
    [({"model": "m", "status": "ok"}, r"not valid: 'rule'"),
     ({"rule": "r", "model": "m", "status": "burning"}, r"status ok\|pending\|firing"),
     ({"rule": "r", "model": "m", "status": "ok", "since": "yesterday"}, r"got 'yesterday'")],
    ids=["no-rule", "bad-status", "bad-time"],
)
def test_invalid_state_is_explained(data: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        AlertState.from_dict(data)


def test_value_is_read_as_float() -> None:
    states, _ = evaluate([_rule()], {"fraud": {"drift.share": 1}}, now=0, states={})
    value = states["drift", "fraud"].value
    assert isinstance(value, float)
    assert math.isclose(value, 1.0)
