"""The default drift decision: calibrated p-values on small samples; at every size from 2,000 to
1,000,000 rows it catches practically significant drift and stays quiet on negligible drift."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from modelyard.monitoring.drift import DriftConfig, column_drift, dataset_drift
from modelyard.monitoring.drift_tests import PSI_EPSILON, chi2_test, ks_test

DRAWS = 400
ALPHA = 0.05


def _band(draws: int, p: float) -> tuple[float, float]:
    """The rates a calibrated test shows over ``draws`` draws 99.9% of the time."""
    low, high = stats.binom.interval(0.999, draws, p)
    return low / draws, high / draws


@pytest.mark.parametrize(
    ("n1", "n2"),
    [(300, 200), (12_000, 11_000)],
    ids=["exact-p-values", "asymptotic-p-values"],
)
def test_ks_flags_alpha_of_unchanged_columns(n1: int, n2: int) -> None:
    rng = np.random.default_rng(n1)
    flagged = 0
    for _ in range(DRAWS):
        p = ks_test(rng.normal(size=n1), rng.normal(size=n2)).p_value
        assert p is not None
        flagged += p < ALPHA
    low, high = _band(DRAWS, ALPHA)
    assert low <= flagged / DRAWS <= high


def test_chi2_flags_alpha_of_unchanged_columns() -> None:
    """The two-sample test of homogeneity; a goodness-of-fit test against the reference
    proportions (scipy's chisquare) would flag far more than alpha here."""
    rng = np.random.default_rng(7)
    cats = np.array(["a", "b", "c", "d", "e"], dtype=object)
    p = [0.4, 0.25, 0.15, 0.12, 0.08]
    flagged = 0
    for _ in range(DRAWS):
        ref, cur = rng.choice(cats, size=600, p=p), rng.choice(cats, size=400, p=p)
        p_value = chi2_test(ref, cur).p_value
        assert p_value is not None
        flagged += p_value < ALPHA
    low, high = _band(DRAWS, ALPHA)
    assert low <= flagged / DRAWS <= high


# -- practically significant against negligible drift, 2k to 1M rows ------------------------------
BASE = np.array([0.35, 0.25, 0.2, 0.12, 0.08])
CATEGORIES = np.array(["a", "b", "c", "d", "e"], dtype=object)


def _psi(p: np.ndarray, q: np.ndarray) -> float:
    p, q = np.where(p == 0, PSI_EPSILON, p), np.where(q == 0, PSI_EPSILON, q)
    return float(np.sum((q - p) * np.log(q / p)))


def _moved(target: float) -> np.ndarray:
    """Category proportions at PSI ``target`` from BASE: BASE moved toward its reverse."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        t = (lo + hi) / 2
        if _psi(BASE, (1 - t) * BASE + t * BASE[::-1]) < target:
            lo = t
        else:
            hi = t
    return (1 - lo) * BASE + lo * BASE[::-1]


# column -> (how the current sample is drawn, whether it must be flagged)
SCENARIOS = {
    "shift_quarter_std": ("numeric", True),
    "scale_up_30pct": ("numeric", True),
    "scale_down_30pct": ("numeric", True),
    "exponential_shift_quarter_std": ("numeric", True),
    "unchanged": ("numeric", False),
    "shift_1pct_std": ("numeric", False),
    "shift_2pct_std": ("numeric", False),
    "exponential_shift_2pct_std": ("numeric", False),
    "t5_shift_1pct_std": ("numeric", False),
    "mix_psi_025": ("categorical", True),
    "new_category_5pct": ("categorical", True),
    "mix_psi_001": ("categorical", False),
    "mix_unchanged": ("categorical", False),
}


def _samples(n: int, seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    ref: dict[str, np.ndarray] = {}
    cur: dict[str, np.ndarray] = {}

    def normal(name: str, loc: float = 0.0, scale: float = 1.0) -> None:
        ref[name] = rng.normal(10.0, 2.0, size=n)
        cur[name] = rng.normal(10.0 + 2.0 * loc, 2.0 * scale, size=n)

    normal("shift_quarter_std", loc=0.25)
    normal("scale_up_30pct", scale=1.3)
    normal("scale_down_30pct", scale=0.7)
    normal("unchanged")
    normal("shift_1pct_std", loc=0.01)
    normal("shift_2pct_std", loc=0.02)
    ref["exponential_shift_quarter_std"] = rng.exponential(3.0, size=n)
    cur["exponential_shift_quarter_std"] = rng.exponential(3.0, size=n) + 0.25 * 3.0
    ref["exponential_shift_2pct_std"] = rng.exponential(3.0, size=n)
    cur["exponential_shift_2pct_std"] = rng.exponential(3.0, size=n) + 0.02 * 3.0
    t5_std = math.sqrt(5 / 3)
    ref["t5_shift_1pct_std"] = rng.standard_t(5, size=n)
    cur["t5_shift_1pct_std"] = rng.standard_t(5, size=n) + 0.01 * t5_std
    with_new = np.append(CATEGORIES, "new")
    for name, p in (
        ("mix_psi_025", _moved(0.25)),
        ("mix_psi_001", _moved(0.01)),
        ("mix_unchanged", BASE),
    ):
        ref[name] = rng.choice(CATEGORIES, size=n, p=BASE)
        cur[name] = rng.choice(CATEGORIES, size=n, p=p)
    ref["new_category_5pct"] = rng.choice(CATEGORIES, size=n, p=BASE)
    cur["new_category_5pct"] = rng.choice(with_new, size=n, p=np.append(BASE * 0.95, 0.05))
    return ref, cur


SIZES = [
    pytest.param(2_000, id="2k"),
    pytest.param(20_000, id="20k"),
    pytest.param(200_000, id="200k"),
    pytest.param(1_000_000, id="1M", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("n", SIZES)
def test_defaults_catch_what_matters_and_ignore_what_does_not(n: int) -> None:
    ref, cur = _samples(n, seed=n)
    kinds = {name: kind for name, (kind, _) in SCENARIOS.items()}
    result = dataset_drift(ref, cur, kinds=kinds)
    by_name = {c.column: c for c in result.columns}
    wrong = {
        name: (by_name[name].method, round(by_name[name].statistic, 4))
        for name, (_, expected) in SCENARIOS.items()
        if by_name[name].drifted != expected
    }
    assert wrong == {}
    for column in result.columns:  # effect sizes decide at these sizes, not p-values
        assert column.method == ("wasserstein" if column.kind == "numeric" else "psi")
        assert (column.n_reference, column.n_current) == (n, n)
    expected = [drifts for _, drifts in SCENARIOS.values()]
    assert result.share == sum(expected) / len(expected)
    assert result.drifted is (result.share >= 0.5)


def test_small_samples_are_judged_by_p_values() -> None:
    rng = np.random.default_rng(3)
    n = 500
    shifted = column_drift("x", rng.normal(size=n), rng.normal(0.5, 1.0, size=n), kind="numeric")
    assert (shifted.method, shifted.threshold, shifted.drifted) == ("ks", ALPHA, True)
    assert shifted.p_value is not None
    assert shifted.p_value < ALPHA
    ref = rng.choice(CATEGORIES, size=n, p=BASE)
    cur = rng.choice(np.append(CATEGORIES, "new"), size=n, p=np.append(BASE * 0.95, 0.05))
    new = column_drift("c", ref, cur, kind="categorical")
    assert (new.method, new.drifted, new.scores["new_categories"]) == ("chi2", True, 1.0)


@pytest.mark.parametrize(
    ("n_reference", "n_current", "method"),
    [(100_000, 999, "ks"), (100_000, 1000, "wasserstein"), (999, 100_000, "ks")],
    ids=["current-below", "both-at-the-limit", "reference-below"],
)
def test_the_smaller_sample_decides_which_test_is_used(
    n_reference: int, n_current: int, method: str
) -> None:
    rng = np.random.default_rng(0)
    result = column_drift(
        "x", rng.normal(size=n_reference), rng.normal(size=n_current), kind="numeric",
        config=DriftConfig(large_sample=1000),
    )  # fmt: skip
    assert result.method == method
