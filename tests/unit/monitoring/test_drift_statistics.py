"""Every drift statistic equals scipy's (or, for PSI, the direct formula) on the same data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon
from scipy.special import chdtrc, smirnov

from modelyard.monitoring import drift_tests as dt
from modelyard.monitoring.drift_tests import (
    NUMERIC_BINS,
    PSI_EPSILON,
    chi2_test,
    jensenshannon_test,
    ks_test,
    numeric_scores,
    psi_test,
    wasserstein_test,
)

floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
small_ints = st.integers(min_value=-5, max_value=5).map(float)
samples = st.one_of(
    st.lists(floats, min_size=1, max_size=60), st.lists(small_ints, min_size=1, max_size=60)
)


def close(expected: float) -> object:
    return pytest.approx(expected, rel=1e-9, abs=1e-12)


def _normal(rng: np.random.Generator, n: int, loc: float = 0.0, scale: float = 1.0) -> np.ndarray:
    return rng.normal(loc, scale, size=n)


# (n_reference, n_current, shift, integer-valued): exact p-values (equal and unequal sizes),
# ties, asymptotic p-values (sizes above 10,000), and scipy's slow smirnov branch.
KS_CASES = [
    ((1, 1, 0.0, False), "one-value-each"),
    ((7, 5, 0.5, False), "tiny"),
    ((300, 300, 0.0, False), "equal-sizes-exact"),
    ((300, 300, 0.3, False), "equal-sizes-shifted"),
    ((1000, 700, 0.1, False), "unequal-exact"),
    ((2000, 1500, 0.0, True), "ties"),
    ((10_000, 10_000, 0.02, False), "largest-exact"),
    ((10_001, 9000, 0.02, False), "smallest-asymptotic"),
    ((30_000, 20_000, 0.0, True), "asymptotic-ties"),
    ((40_000, 40_000, 0.02, False), "smirnov-branch"),
    ((60_000, 50_000, 0.5, False), "p-value-underflows"),
]


@pytest.mark.parametrize(
    ("n1", "n2", "shift", "integers"), [c for c, _ in KS_CASES], ids=[i for _, i in KS_CASES]
)
def test_ks_equals_scipy(n1: int, n2: int, shift: float, integers: bool) -> None:
    rng = np.random.default_rng(n1 + n2)
    ref, cur = _normal(rng, n1), _normal(rng, n2, loc=shift)
    if integers:
        ref, cur = np.round(ref * 3), np.round(cur * 3)
    got, want = ks_test(ref, cur), stats.ks_2samp(ref, cur)
    assert got.statistic == close(float(want.statistic))
    assert got.p_value == close(float(want.pvalue))


SMIRNOV_CASES = [
    pytest.param(n, nx2, id=f"n{n}-nx2-{nx2}")
    for n in (141, 1000, 23_456, 120_000)
    for nx2 in (2.2, 3.0, 9.5, 40.0, 200.0, 369.9)
    if math.sqrt(nx2 / n) < 0.5
] + [
    pytest.param(1_000_000, 5.0, id="n1M", marks=pytest.mark.slow),  # cephes takes ~1 s here
    pytest.param(1_000_001, 5.0, id="n-above-cephes-exact-limit"),
]


@pytest.mark.parametrize(("n", "nx2"), SMIRNOV_CASES)
def test_smirnov_branch_equals_cephes(n: int, nx2: float) -> None:
    x = math.sqrt(nx2 / n)
    want = float(smirnov(n, x))
    assert dt._smirnov_sf(n, x) == pytest.approx(want, rel=1e-11, abs=1e-300)
    if n <= 23_456:  # kstwo.sf calls the same smirnov: slow for large n
        want_sf = float(stats.kstwo.sf(x, float(n)))
        assert dt._kstwo_sf(x, float(n)) == pytest.approx(want_sf, rel=1e-11, abs=1e-300)


def _kstwo_grid() -> list[tuple[float, float]]:
    """(d, n) pairs through every branch of kstwo.sf, skipping the slow smirnov branch (n d**2
    in [2.2, 370)) for large n, where scipy needs seconds (it is checked above)."""
    pairs = []
    for n in (1, 2, 7, 60, 140, 141, 500, 5000, 40_000, 100_000, 100_001, 700_000, 3_000_000):
        for nd2 in (1e-4, 0.01, 0.1, 0.3, 0.8, 1.5, 2.19, 2.2, 5.0, 17.0, 19.0, 100.0, 369.0,
                    371.0, 800.0):  # fmt: skip
            d = math.sqrt(nd2 / n)
            if d < 1 and not (n > 30_000 and 2.2 <= nd2 < 370):
                pairs.append((d, float(n)))
        pairs += [(0.4 / n, float(n)), (0.9 / n, float(n)), (1 - 0.5 / n, float(n))]
    return [*pairs, (0.5, 1000.0), (0.7, 5000.0), (0.0, 50.0), (1.0, 50.0)]


def test_kstwo_sf_equals_scipy_in_every_branch() -> None:
    wrong = []
    for d, n in _kstwo_grid():
        want = float(stats.kstwo.sf(d, n))
        got = dt._kstwo_sf(d, n)
        if got != pytest.approx(want, rel=1e-12, abs=1e-300):
            wrong.append((d, n, got, want))
    assert wrong == []


@pytest.mark.parametrize(
    ("n1", "n2", "scale"),
    [(50, 50, 1.0), (1000, 800, 1.3), (5000, 200, 0.5), (20_000, 20_000, 1.0)],
    ids=["equal", "unequal-scaled", "small-current", "large"],
)
def test_wasserstein_is_scipys_over_the_reference_std(n1: int, n2: int, scale: float) -> None:
    rng = np.random.default_rng(n1)
    ref, cur = _normal(rng, n1, 3.0, 2.0), _normal(rng, n2, 3.1, 2.0 * scale)
    want = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert wasserstein_test(ref, cur).statistic == close(want)


def test_wasserstein_of_a_constant_reference_is_the_raw_distance() -> None:
    ref, cur = np.full(10, 2.0), np.array([2.0, 3.0] * 5)
    assert wasserstein_test(ref, cur).statistic == close(stats.wasserstein_distance(ref, cur))


@settings(max_examples=200, deadline=None)
@given(samples)
def test_decile_edges_are_numpys_quantiles(values: list[float]) -> None:
    a = np.sort(np.array(values))
    want = np.unique(np.quantile(a, np.arange(1, NUMERIC_BINS) / NUMERIC_BINS))
    np.testing.assert_array_equal(dt.quantile_bins(a), want)


def _decile_counts(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The documented binning, computed independently: bin i holds [edge[i-1], edge[i])."""
    edges = np.unique(np.quantile(ref, np.arange(1, NUMERIC_BINS) / NUMERIC_BINS))
    count = lambda x: np.bincount(np.digitize(x, edges), minlength=len(edges) + 1)  # noqa: E731
    return count(ref), count(cur)


def _direct_psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    total = 0.0
    for r, c in zip(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum(), strict=True):
        r_, c_ = (r or PSI_EPSILON), (c or PSI_EPSILON)
        total += (c_ - r_) * math.log(c_ / r_)
    return total


NUMERIC_BIN_CASES = [
    ((2000, 1500, 0.0, 1.0, False), "unchanged"),
    ((2000, 1500, 0.5, 1.0, False), "shifted"),
    ((3000, 3000, 0.0, 2.0, False), "scaled"),
    ((3000, 1000, 0.0, 1.0, True), "repeated-edges"),
    ((500, 800, 8.0, 1.0, False), "beyond-the-reference"),
]


@pytest.mark.parametrize(
    ("n1", "n2", "shift", "scale", "integers"),
    [c for c, _ in NUMERIC_BIN_CASES],
    ids=[i for _, i in NUMERIC_BIN_CASES],
)
def test_numeric_psi_and_jensenshannon_on_reference_deciles(
    n1: int, n2: int, shift: float, scale: float, integers: bool
) -> None:
    rng = np.random.default_rng(n2)
    ref, cur = _normal(rng, n1), _normal(rng, n2, shift, scale)
    if integers:  # few distinct values: several deciles coincide
        ref, cur = np.round(np.abs(ref)), np.round(np.abs(cur))
    ref_counts, cur_counts = _decile_counts(ref, cur)
    assert psi_test(ref, cur).statistic == close(_direct_psi(ref_counts, cur_counts))
    want = float(jensenshannon(ref_counts, cur_counts, base=2))
    assert jensenshannon_test(ref, cur).statistic == close(want)


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 9, 10, 49, 50, 199, 1000, 1999])
def test_chi2_sf_equals_chdtrc(dof: int) -> None:
    for x in (0.0, 1e-8, 0.01, 0.5, dof / 4, dof - 1.0, float(dof), dof + 3.0 * math.sqrt(dof),
              dof * 2.0, dof * 5.0 + 50.0, 1400.0):  # fmt: skip
        want = float(chdtrc(dof, x))
        assert dt.chi2_sf(x, dof) == pytest.approx(want, rel=1e-12, abs=1e-300), x


def _category_table(ref: np.ndarray, cur: np.ndarray) -> np.ndarray:
    cats = np.union1d(np.unique(ref), np.unique(cur))
    return np.array([[np.sum(ref == c) for c in cats], [np.sum(cur == c) for c in cats]])


CATEGORY_CASES = [
    ((["a", "b", "c"], [0.5, 0.3, 0.2], [0.5, 0.3, 0.2], 800, 600), "unchanged"),
    ((["a", "b", "c"], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], 800, 600), "moved"),
    ((["a", "b"], [0.5, 0.5], [0.45, 0.55], 500, 500), "two-categories-yates"),
    ((["a", "b", "c", "new"], [0.5, 0.3, 0.2, 0.0], [0.4, 0.3, 0.2, 0.1], 1000, 1000), "new"),
    ((["a", "b", "c", "gone"], [0.4, 0.3, 0.2, 0.1], [0.5, 0.3, 0.2, 0.0], 1000, 1000), "gone"),
]


@pytest.mark.parametrize(
    ("cats", "p_ref", "p_cur", "n1", "n2"),
    [c for c, _ in CATEGORY_CASES],
    ids=[i for _, i in CATEGORY_CASES],
)
def test_categorical_tests_equal_scipy(
    cats: list[str], p_ref: list[float], p_cur: list[float], n1: int, n2: int
) -> None:
    rng = np.random.default_rng(n1 + n2)
    values = np.array(cats, dtype=object)
    ref, cur = rng.choice(values, size=n1, p=p_ref), rng.choice(values, size=n2, p=p_cur)
    table = _category_table(ref, cur)
    want = stats.chi2_contingency(table)
    got = chi2_test(ref, cur)
    assert got.statistic == close(float(want.statistic))
    assert got.p_value == close(float(want.pvalue))
    assert psi_test(ref, cur).statistic == close(_direct_psi(table[0], table[1]))
    want_js = float(jensenshannon(table[0], table[1], base=2))
    assert jensenshannon_test(ref, cur).statistic == close(want_js)


def test_jensenshannon_of_nearly_equal_large_counts_is_scipys() -> None:
    """The divergence of two nearly equal distributions is a sum of terms that almost cancel:
    it takes scipy's own formula per term to agree with it (numpy's log is off by 1e-5)."""
    rng = np.random.default_rng(1)
    for _ in range(200):
        p = rng.dirichlet(np.ones(int(rng.integers(2, 12))))
        ref, cur = rng.multinomial(1_000_000, p), rng.multinomial(1_000_000, p)
        want = float(jensenshannon(ref, cur, base=2))
        assert dt._jensenshannon(ref, cur).statistic == close(want)


def test_categories_are_compared_by_their_text() -> None:
    ints = np.array([1, 2, 2, 3] * 25)
    text = np.array(["1", "2", "2", "3"] * 25, dtype=object)
    assert chi2_test(ints, text).statistic == 0.0
    assert chi2_test(np.array([True, False] * 10), np.array(["True", "False"] * 10, dtype=object)) \
        .p_value == 1.0  # fmt: skip


def test_the_shared_numeric_path_equals_the_registered_functions() -> None:
    rng = np.random.default_rng(5)
    ref, cur = _normal(rng, 3000), _normal(rng, 2500, 0.1, 1.2)
    together = numeric_scores(np.sort(ref), np.sort(cur))
    assert together == {
        "ks": ks_test(ref, cur),
        "wasserstein": wasserstein_test(ref, cur),
        "psi": psi_test(ref, cur),
        "jensenshannon": jensenshannon_test(ref, cur),
    }


@pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful:RuntimeWarning")
@settings(max_examples=150, deadline=None)
@given(samples, samples)
def test_ks_equals_scipy_on_any_data(ref: list[float], cur: list[float]) -> None:
    a, b = np.array(ref), np.array(cur)
    got, want = ks_test(a, b), stats.ks_2samp(a, b)
    assert got.statistic == close(float(want.statistic))
    assert got.p_value == close(float(want.pvalue))


@settings(max_examples=150, deadline=None)
@given(samples, samples)
def test_wasserstein_equals_scipy_on_any_data(ref: list[float], cur: list[float]) -> None:
    a, b = np.array(ref), np.array(cur)
    std = float(np.std(a))
    want = stats.wasserstein_distance(a, b) / (std if std > 0 else 1.0)
    assert wasserstein_test(a, b).statistic == pytest.approx(want, rel=1e-9, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(samples, samples)
def test_binned_scores_equal_the_definitions_on_any_data(
    ref: list[float], cur: list[float]
) -> None:
    a, b = np.array(ref), np.array(cur)
    ref_counts, cur_counts = _decile_counts(a, b)
    assert psi_test(a, b).statistic == close(_direct_psi(ref_counts, cur_counts))
    want = float(jensenshannon(ref_counts, cur_counts, base=2))
    assert jensenshannon_test(a, b).statistic == pytest.approx(want, rel=1e-9, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from("abcde"), min_size=1, max_size=80),
    st.lists(st.sampled_from("abcdef"), min_size=1, max_size=80),
)
def test_chi2_equals_chi2_contingency_on_any_data(ref: list[str], cur: list[str]) -> None:
    a, b = np.array(ref, dtype=object), np.array(cur, dtype=object)
    want = stats.chi2_contingency(_category_table(a, b))
    got = chi2_test(a, b)
    assert got.statistic == close(float(want.statistic))
    assert got.p_value == close(float(want.pvalue))
