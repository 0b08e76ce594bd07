"""Rollouts stored in the registry (SQLite and PostgreSQL): one active challenger per model,
conditional decisions, and every decision in the alias history and the audit log."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelyard import Client
from modelyard.core.rollout import Decision, RolloutPolicy, RolloutState
from modelyard.errors import ConflictError, InvalidInputError, NotFoundError
from modelyard.registry.sql.audit import SqlAuditLog


@pytest.fixture
def three_versions(client: Client, iris: tuple[pd.DataFrame, np.ndarray],
                   iris_model: LogisticRegression) -> Client:
    X, _ = iris
    for _ in range(3):
        client.register(iris_model, "flower", data=X)
    client.set_alias("flower", "production", 1)
    return client


def test_start_records_the_challenger_alias_and_audit(three_versions: Client) -> None:
    client = three_versions
    r = client.start_rollout("flower", 2, mode="canary", steps=[0.1, 0.5, 1.0],
                             reason="nightly retrain")
    assert (r.champion, r.challenger, r.weight, r.step, r.state) == (
        1, 2, 0.1, 0, RolloutState.ACTIVE)
    assert client.get_model("flower").aliases == {"production": 1, "challenger": 2}
    last = client.alias_history("flower", "challenger")[-1]
    assert last.to_version == 2
    assert "canary with 10% against production version 1; nightly retrain" in last.reason
    actions = [e.action for e in SqlAuditLog(client.store.engine).entries(model="flower")]
    assert "rollout.start" in actions


def test_one_active_rollout_per_model(three_versions: Client) -> None:
    client = three_versions
    client.start_rollout("flower", 2)
    with pytest.raises(ConflictError, match="already has an active rollout"):
        client.start_rollout("flower", 3)


@pytest.mark.parametrize(("version", "alias", "error", "match"), [
    (1, "production", ConflictError, "already is 'production'"),
    (2, "staging", ConflictError, "no 'staging' version"),
    (9, "production", NotFoundError, "Version 9"),
], ids=["champion-itself", "no-champion", "no-version"])
def test_start_refuses(three_versions: Client, version: int, alias: str,
                       error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        three_versions.start_rollout("flower", version, alias=alias)


def test_bad_mode_and_weight(three_versions: Client) -> None:
    with pytest.raises(InvalidInputError, match="mode must be one of"):
        three_versions.start_rollout("flower", 2, mode="blue-green")
    with pytest.raises(InvalidInputError, match="traffic weights"):
        three_versions.start_rollout("flower", 2, weight=1.5)


def test_a_weight_without_steps_starts_there(three_versions: Client) -> None:
    r = three_versions.start_rollout("flower", 2, weight=0.3)
    assert r.weight == 0.3
    assert r.policy.steps == (0.3, 0.5, 1.0)


def test_advance_then_promote_moves_production(three_versions: Client) -> None:
    client = three_versions
    r = client.start_rollout("flower", 2)
    r2 = client.decide_rollout(r, Decision("advance", "step 2 of 3 at 50%: fine", 0.5))
    assert r2 is not None
    assert (r2.step, r2.weight) == (1, 0.5)
    # A stale decision (judged at step 0) does not land twice.
    assert client.decide_rollout(r, Decision("advance", "again", 0.5)) is None
    done = client.decide_rollout(r2, Decision("promote", "held its objectives"))
    assert done is not None
    assert done.state == RolloutState.PROMOTED
    assert client.get_model("flower").aliases == {"production": 2}
    reasons = [c.reason for c in client.alias_history("flower")]
    assert any("advanced to step 2 of 3 at 50%" in x for x in reasons)
    assert any("promoted version 2: held its objectives" in x for x in reasons)
    assert client.get_rollout("flower") is None
    assert client.rollout_history("flower")[0].state == RolloutState.PROMOTED


def test_rollback_keeps_the_champion(three_versions: Client) -> None:
    client = three_versions
    r = client.start_rollout("flower", 2, mode="shadow")
    assert r.weight == 0.0
    done = client.decide_rollout(r, Decision("rollback", "error rate 30% against 0%"))
    assert done is not None
    assert done.state == RolloutState.ROLLED_BACK
    assert client.get_model("flower").aliases == {"production": 1}
    last = client.alias_history("flower", "challenger")[-1]
    assert (last.from_version, last.to_version) == (2, None)
    assert "rolled back version 2: error rate 30% against 0%" in last.reason
    # A new rollout may start once the old one ended.
    assert client.start_rollout("flower", 3).challenger == 3


def test_promote_and_abort_by_hand(three_versions: Client) -> None:
    client = three_versions
    client.start_rollout("flower", 2)
    aborted = client.abort_rollout("flower", reason="wrong data")
    assert aborted.state == RolloutState.ABORTED
    assert aborted.reason == "wrong data"
    with pytest.raises(NotFoundError, match="no active rollout"):
        client.abort_rollout("flower")
    client.start_rollout("flower", 3)
    assert client.promote_rollout("flower").state == RolloutState.PROMOTED
    assert client.get_model("flower").aliases["production"] == 3


def test_concurrent_deciders_land_one_decision(three_versions: Client) -> None:
    client = three_versions
    r = client.start_rollout("flower", 2, policy=RolloutPolicy(steps=(0.5, 1.0)))
    results: list[object] = []

    def judge(action: str) -> None:
        with Client(client.settings) as other:
            results.append(other.decide_rollout(r, Decision(action, action, 1.0)))  # type: ignore[arg-type]

    threads = [threading.Thread(target=judge, args=(a,))
               for a in ("advance", "rollback", "promote", "advance")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    landed = [x for x in results if x is not None]
    assert len(landed) == 1
