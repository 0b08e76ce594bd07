"""Live rollout statistics: p99 over a bounded window, which failures count, per-step counts,
shadow agreement, and the join of labels with the predictions each version made."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.errors import (
    InvalidInputError,
    OverloadedError,
    PredictionError,
    SignatureError,
    UnavailableError,
)
from modelyard.serving.dataplane import RequestTimeoutError
from modelyard.serving.rollout_stats import (
    CHALLENGER,
    CHAMPION,
    RolloutStats,
    agree,
    is_server_error,
    labels_of,
)


def _stats(**kwargs: int) -> RolloutStats:
    return RolloutStats(rollout_id=1, champion=1, challenger=2, **kwargs)


def test_p99_is_numpys_over_the_recent_window() -> None:
    stats = _stats(latency_window=500)
    rng = np.random.default_rng(0)
    old = rng.uniform(0.5, 1.0, 300)  # slow requests that fall out of the window
    recent = rng.uniform(0.001, 0.01, 500)
    for seconds in (*old, *recent):
        stats.observe(CHAMPION, float(seconds))
    got = stats.version_stats(CHAMPION)
    assert got.requests == 800
    assert got.p99_ms == pytest.approx(np.percentile(recent, 99) * 1000)
    assert stats.version_stats(CHALLENGER).p99_ms is None  # nothing answered yet


@pytest.mark.parametrize(("error", "counts"), [
    (PredictionError("the model raised"), True),
    (RequestTimeoutError("late"), True),
    (UnavailableError("loading"), True),
    (OverloadedError("queue full"), True),
    (RuntimeError("a bug"), True),
    (InvalidInputError("bad input"), False),
    (SignatureError("missing column"), False),
], ids=["prediction", "timeout", "unavailable", "overloaded", "bug", "invalid", "signature"])
def test_only_server_side_failures_count_against_a_version(error: Exception,
                                                           counts: bool) -> None:
    assert is_server_error(error) is counts


def test_errors_and_steps_are_counted_per_version() -> None:
    stats = _stats()
    for step, error in [(0, False), (0, True), (1, False), (1, False), (1, True)]:
        stats.observe(CHALLENGER, 0.002, error=error, step=step)
    stats.observe(CHAMPION, 0.001, step=1)
    challenger = stats.version_stats(CHALLENGER)
    assert (challenger.requests, challenger.errors) == (5, 2)
    assert challenger.error_rate == pytest.approx(0.4)
    assert (stats.step_requests(0), stats.step_requests(1), stats.step_requests(2)) == (2, 3, 0)
    assert stats.to_dict(step=1)["step_requests"] == 3
    assert stats.to_dict()["challenger"]["version"] == 2


def test_shadow_agreement() -> None:
    stats = _stats()
    pairs = [([1, 0], [1, 0]), ([1], [0]), ([0.5], [0.5 + 1e-12]), (["a"], ["a"]),
             ([1, 2], [1])]
    for champion, challenger in pairs:
        stats.compare(agree(np.asarray(champion), np.asarray(challenger)))
    got = stats.version_stats(CHALLENGER)
    assert (got.compared, got.agreed) == (5, 3)
    assert got.agreement == pytest.approx(0.6)
    assert not agree(np.asarray([1.0]), np.asarray(["1.0"]))


def test_labels_join_the_predictions_of_both_versions_on_the_same_requests() -> None:
    stats = _stats()
    # Shadow mode: both versions predicted requests a, b, c (c has two rows).
    stats.remember("a", CHAMPION, np.array([1]))
    stats.remember("a", CHALLENGER, np.array([0]))
    stats.remember("b", CHAMPION, np.array([0]))
    stats.remember("b", CHALLENGER, np.array([0]))
    stats.remember("c", CHAMPION, np.array(["x", "y"], dtype=object))
    stats.remember("c", CHALLENGER, np.array(["x", "x"], dtype=object))
    matched = stats.label(["a", "b", "c", "c", "unknown", "a"], [0, 0, 0, 1, 0, 0],
                          [1, 0, "x", "y", 1, 1])
    assert matched == 4  # the unknown id and the repeated label of "a" do not count
    champion, challenger = stats.version_stats(CHAMPION), stats.version_stats(CHALLENGER)
    assert (champion.labelled, champion.correct) == (4, 4)
    assert (challenger.labelled, challenger.correct) == (4, 2)
    assert champion.accuracy == 1.0
    assert challenger.accuracy == 0.5
    assert stats.labels_unmatched == 1


def test_numeric_labels_match_predictions_of_any_numeric_type() -> None:
    stats = _stats()
    stats.remember("r", CHALLENGER, np.array([1.0, 2.0]))
    assert stats.label(["r", "r"], [0, 1], [1, True]) == 2
    assert stats.version_stats(CHALLENGER).correct == 1  # 2.0 is not True (1)


def test_remembered_predictions_are_bounded_least_recently_used_first() -> None:
    stats = _stats(max_ids=3, max_rows_per_id=2)
    for rid in "abcd":
        stats.remember(rid, CHAMPION, np.arange(5))
    assert stats.remembered() == 3
    assert stats.label(["a"], [0], [0]) == 0  # evicted
    assert stats.label(["b", "b"], [1, 4], [1, 4]) == 1  # row 4 was not kept
    stats.remember("b", CHALLENGER, np.array([1, 1]))  # b is used again: now the newest
    stats.remember("e", CHAMPION, np.array([0]))
    assert stats.label(["c"], [0], [0]) == 0  # c went, b stayed
    assert stats.label(["b"], [0], [0]) == 1


def test_labels_of_a_feedback_table() -> None:
    from modelyard.monitoring.feedback import feedback_from_json

    table = feedback_from_json([{"id": "a", "label": 1}, {"id": "b", "row": 2, "label": "x"}])
    # Labels of mixed types come as strings; a numeric prediction still matches "1".
    assert labels_of(table) == (["a", "b"], [0, 2], ["1", "x"])
    stats = _stats()
    stats.remember("a", CHAMPION, np.array([1.0]))
    stats.remember("b", CHAMPION, np.array([0, 0, 7]))
    assert stats.label(*labels_of(table)) == 2
    assert stats.version_stats(CHAMPION).correct == 1
