"""A conformance check every drift test passes, in the spirit of sklearn's estimator checks.

>>> from modelyard.monitoring.drift import builtin_tests
>>> for test in builtin_tests().values():
...     check_detector(test)
"""

from __future__ import annotations

import math

import numpy as np

from modelyard.monitoring.drift import DriftTest, TestResult

__all__ = ["check_detector"]

_KINDS = frozenset({"numeric", "categorical"})
_CATEGORIES = np.array(["a", "b", "c", "d"], dtype=object)


def check_detector(test: DriftTest, *, size: int = 2000, seed: int = 0) -> None:
    """Check that ``test`` behaves as the drift functions expect; raise AssertionError naming
    the broken rule.

    For each kind it applies to, on seeded samples of ``size`` values: it returns a
    :class:`TestResult` of finite floats (a p-value in [0, 1] for p-value tests, none for
    distances); it is deterministic and leaves its inputs unchanged; identical samples show no
    drift (p-value >= 0.5, or a distance of ~0); a clearly shifted sample (one standard
    deviation, or a category mix moved from uniform to mostly one category) drifts at the
    test's default threshold.
    """
    _require(isinstance(test.name, str) and test.name, "name must be a non-empty str")
    _require(
        test.kinds and test.kinds <= _KINDS,
        f"{test.name}: kinds must be a non-empty subset of {sorted(_KINDS)}, got {test.kinds}",
    )
    _require(
        test.score in ("p_value", "distance"),
        f"{test.name}: score must be 'p_value' or 'distance', got {test.score!r}",
    )
    _require(
        math.isfinite(test.default_threshold) and test.default_threshold > 0,
        f"{test.name}: default_threshold must be a finite number > 0",
    )
    if test.score == "p_value":
        _require(test.default_threshold < 1, f"{test.name}: a p-value threshold must be < 1")
    rng = np.random.default_rng(seed)
    for kind in sorted(test.kinds):
        if kind == "numeric":
            ref = rng.normal(size=size)
            same = rng.normal(size=size)
            shifted = rng.normal(loc=1.0, size=size)
        else:
            ref = rng.choice(_CATEGORIES, size=size)
            same = rng.choice(_CATEGORIES, size=size)
            shifted = rng.choice(_CATEGORIES, size=size, p=[0.7, 0.1, 0.1, 0.1])
        _check_kind(test, kind, ref, same, shifted)


def _check_kind(
    test: DriftTest, kind: str, ref: np.ndarray, same: np.ndarray, shifted: np.ndarray
) -> None:
    where = f"{test.name} ({kind})"
    copies = [ref.copy(), same.copy(), shifted.copy()]
    first = _result(test, ref, same, where)
    again = _result(test, ref, same, where)
    _require(first == again, f"{where}: two calls on the same data differ: {first} and {again}")
    identical = _result(test, ref, ref.copy(), where)
    drifted = _result(test, ref, shifted, where)
    for before, after in zip(copies, (ref, same, shifted), strict=True):
        _require(np.array_equal(before, after), f"{where}: the test changed its input arrays")
    if test.score == "p_value":
        _require(
            identical.p_value is not None and identical.p_value >= 0.5,
            f"{where}: identical samples give p-value {identical.p_value}, expected >= 0.5",
        )
        _require(
            drifted.p_value is not None and drifted.p_value < test.default_threshold,
            f"{where}: a shifted sample gives p-value {drifted.p_value}, expected below "
            f"{test.default_threshold}",
        )
    else:
        _require(
            abs(identical.statistic) <= 1e-9,
            f"{where}: identical samples give distance {identical.statistic}, expected 0",
        )
        _require(
            drifted.statistic >= test.default_threshold,
            f"{where}: a shifted sample gives distance {drifted.statistic}, expected at least "
            f"{test.default_threshold}",
        )


def _result(test: DriftTest, ref: np.ndarray, cur: np.ndarray, where: str) -> TestResult:
    result = test.func(ref, cur)
    _require(
        isinstance(result, TestResult),
        f"{where}: returned {type(result).__name__}, expected a TestResult",
    )
    _require(
        isinstance(result.statistic, float) and math.isfinite(result.statistic),
        f"{where}: statistic must be a finite float, got {result.statistic!r}",
    )
    if test.score == "p_value":
        p = result.p_value
        _require(
            isinstance(p, float) and 0.0 <= p <= 1.0,
            f"{where}: p_value must be a float in [0, 1], got {p!r}",
        )
    else:
        _require(result.p_value is None, f"{where}: a distance test returns p_value=None")
    return result


def _require(condition: object, message: str) -> None:
    # An explicit raise, not assert: the check must also hold under ``python -O``.
    if not condition:
        raise AssertionError(message)
