"""The pure rollout rule: when a challenger advances, is promoted, or is rolled back."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelyard.core.rollout import (
    Rollout,
    RolloutMode,
    RolloutPolicy,
    RolloutState,
    VersionStats,
    decide,
    parse_steps,
    sticky_bucket,
)
from modelyard.errors import InvalidInputError

POLICY = RolloutPolicy(steps=(0.1, 0.5, 1.0), min_requests=100, judge_after=20)


def _rollout(step: int = 0, mode: RolloutMode = RolloutMode.CANARY,
             policy: RolloutPolicy = POLICY, state: RolloutState = RolloutState.ACTIVE,
             step_started_at: float = 0.0) -> Rollout:
    return Rollout(id=1, name="m", alias="production", champion=1, challenger=2, mode=mode,
                   weight=policy.steps[step], step=step, policy=policy, state=state,
                   started_at=0.0, step_started_at=step_started_at, updated_at=0.0,
                   actor="test")


GOOD = VersionStats(requests=500, errors=1, p99_ms=3.0)


def test_holds_until_the_step_has_enough_requests() -> None:
    d = decide(_rollout(), GOOD, VersionStats(50, 0, 3.0), step_requests=50, now=10.0)
    assert d.action == "hold"
    assert "50/100 requests" in d.reason


def test_advances_to_the_next_weight() -> None:
    d = decide(_rollout(), GOOD, VersionStats(120, 0, 3.0), step_requests=120, now=10.0)
    assert (d.action, d.weight) == ("advance", 0.5)
    assert "step 2 of 3 at 50%" in d.reason


def test_promotes_after_the_last_step() -> None:
    d = decide(_rollout(step=2), GOOD, VersionStats(400, 0, 3.0), step_requests=150, now=1.0)
    assert d.action == "promote"
    assert "held its objectives" in d.reason


def test_without_auto_promote_it_waits_at_the_last_step() -> None:
    policy = dataclasses.replace(POLICY, auto_promote=False)
    d = decide(_rollout(step=2, policy=policy), GOOD, VersionStats(400, 0, 3.0),
               step_requests=150, now=1.0)
    assert d.action == "hold"
    assert "rollout promote" in d.reason


def test_min_duration_holds_a_step() -> None:
    policy = dataclasses.replace(POLICY, min_duration_s=60)
    d = decide(_rollout(policy=policy, step_started_at=100.0), GOOD, VersionStats(500, 0, 3.0),
               step_requests=500, now=130.0)
    assert d.action == "hold"
    d = decide(_rollout(policy=policy, step_started_at=100.0), GOOD, VersionStats(500, 0, 3.0),
               step_requests=500, now=161.0)
    assert d.action == "advance"


@pytest.mark.parametrize(("challenger", "match"), [
    (VersionStats(40, 10, 3.0), r"error rate 25\.0%"),
    (VersionStats(40, 0, 80.0), r"p99 latency 80\.0 ms"),
    (VersionStats(400, 0, 3.0, labelled=100, correct=80), r"accuracy 0\.800"),
], ids=["errors", "latency", "accuracy"])
def test_rolls_back_a_worse_challenger(challenger: VersionStats, match: str) -> None:
    champion = VersionStats(500, 0, 3.0, labelled=100, correct=95)
    d = decide(_rollout(), champion, challenger, step_requests=40, now=1.0)
    assert d.action == "rollback"
    import re

    assert re.search(match, d.reason), d.reason


def test_no_judgement_before_judge_after_requests() -> None:
    d = decide(_rollout(), GOOD, VersionStats(10, 10, 3.0), step_requests=10, now=1.0)
    assert d.action == "hold"


def test_sub_millisecond_noise_never_rolls_back() -> None:
    d = decide(_rollout(), VersionStats(500, 0, 0.2), VersionStats(150, 0, 2.5),
               step_requests=150, now=1.0)
    assert d.action == "advance"


def test_shadow_agreement_below_the_floor_rolls_back() -> None:
    policy = dataclasses.replace(POLICY, min_agreement=0.9)
    r = dataclasses.replace(_rollout(policy=policy, mode=RolloutMode.SHADOW), weight=0.0)
    d = decide(r, GOOD, VersionStats(200, 0, 3.0, compared=200, agreed=150),
               step_requests=200, now=1.0)
    assert d.action == "rollback"
    assert "agreement" in d.reason
    ok = decide(r, GOOD, VersionStats(200, 0, 3.0, compared=200, agreed=190),
                step_requests=200, now=1.0)
    assert ok.action == "promote"  # shadow has one step


def test_an_ended_rollout_holds() -> None:
    d = decide(_rollout(state=RolloutState.PROMOTED), GOOD, GOOD, step_requests=999, now=1.0)
    assert d.action == "hold"


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"steps": ()}, "traffic weights"),
    ({"steps": (0.5, 1.5)}, "traffic weights"),
    ({"steps": (0.5, 0.1)}, "must not decrease"),
    ({"min_requests": 0}, "min_requests"),
    ({"min_agreement": 2.0}, "min_agreement"),
    ({"sticky": "cookie:x"}, "header:NAME"),
], ids=["empty", "above-one", "decreasing", "min-requests", "agreement", "sticky"])
def test_policy_rejects_bad_values(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        RolloutPolicy(**kwargs)  # type: ignore[arg-type]


def test_policy_round_trips_and_rejects_unknown_fields() -> None:
    policy = RolloutPolicy(steps=(0.2, 1.0), min_agreement=0.8, sticky="header:X-User")
    assert RolloutPolicy.from_dict(policy.to_dict()) == policy
    with pytest.raises(InvalidInputError, match="Unknown rollout policy field"):
        RolloutPolicy.from_dict({"stepz": [0.1]})


@pytest.mark.parametrize(("text", "steps"), [
    ("0.1,0.5,1", (0.1, 0.5, 1.0)), ("10%, 50%,100%", (0.1, 0.5, 1.0)), ("1", (1.0,))])
def test_parse_steps(text: str, steps: tuple[float, ...]) -> None:
    assert parse_steps(text) == pytest.approx(steps)


def test_parse_steps_rejects_words() -> None:
    with pytest.raises(InvalidInputError, match="must be numbers"):
        parse_steps("10%,half")


@given(st.text(min_size=0, max_size=40))
def test_sticky_bucket_is_stable_and_in_range(key: str) -> None:
    b = sticky_bucket(key)
    assert 0.0 <= b < 1.0
    assert sticky_bucket(key) == b


def test_sticky_bucket_spreads_keys_evenly() -> None:
    share = sum(sticky_bucket(f"user-{i}") < 0.3 for i in range(20_000)) / 20_000
    assert share == pytest.approx(0.3, abs=0.02)


@given(st.integers(0, 10_000), st.integers(0, 10_000), st.integers(0, 10_000))
def test_never_advances_a_challenger_with_a_higher_error_rate(champ_err: int, chall_err: int,
                                                              extra: int) -> None:
    champion = VersionStats(10_000, champ_err, 3.0)
    challenger = VersionStats(10_000 + extra, chall_err, 3.0)
    d = decide(_rollout(), champion, challenger, step_requests=challenger.requests, now=1.0)
    if challenger.error_rate > champion.error_rate + POLICY.max_error_rate_delta:
        assert d.action == "rollback"
    else:
        assert d.action in {"advance", "hold"}
