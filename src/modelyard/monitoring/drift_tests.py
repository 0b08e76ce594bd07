"""Drift tests: pure functions of a reference and a current sample, registered by name.

Every test takes two one-dimensional arrays whose missing values are already dropped and
returns a :class:`TestResult`. Numeric samples are float64 arrays; categorical samples are
object, text or boolean arrays, compared by category (a value's text, as the reference
profile keys them). The built-in tests, and the scipy functions each one equals on the same
data (checked to 1e-9 in the tests):

========================  ===========  ========================================================
name                      kinds        definition
========================  ===========  ========================================================
``ks``                    numeric      two-sample Kolmogorov-Smirnov: ``scipy.stats.ks_2samp``
                                       (statistic and p-value, with its choice of exact or
                                       asymptotic p-value)
``wasserstein``           numeric      ``scipy.stats.wasserstein_distance`` divided by the
                                       reference's standard deviation (ddof=0), so that 0.1
                                       means a tenth of a standard deviation; a constant
                                       reference keeps the raw distance
``psi``                   both         population stability index over the bins below:
                                       ``sum((c - r) * ln(c / r))`` of the bin proportions,
                                       where an empty bin's proportion becomes ``PSI_EPSILON``
``jensenshannon``         both         ``scipy.spatial.distance.jensenshannon`` of the bin
                                       counts with ``base=2`` (a distance in [0, 1])
``chi2``                  categorical  two-sample test of homogeneity on the 2 x K table of
                                       category counts: ``scipy.stats.chi2_contingency``
========================  ===========  ========================================================

Bins. Numeric samples are binned on the reference's deciles (``NUMERIC_BINS`` quantile
bins): the interior edges are ``np.quantile(reference, np.arange(1, 10) / 10)`` without
repeats, bin ``i`` holds the values in ``[edge[i-1], edge[i])``, and the outer bins are open
(values of the current sample beyond the reference's range fall into them). Categorical
samples have one bin per category seen in either sample, so a new category is an empty
reference bin.

Speed. The numeric tests share one sort of each sample: :func:`numeric_scores` computes all
four from two sorted arrays (one merge of the two gives KS and Wasserstein, one binning PSI
and Jensen-Shannon), which is what :func:`~modelyard.monitoring.drift.column_drift` uses. The
p-values are computed here, branch for branch as scipy computes them, rather than by calling
scipy: its KS p-value for large samples sums ~n terms one by one (a second per column at a
million rows), and importing scipy.stats costs 75 MiB. scipy is imported only for what is
cheap to delegate: exact KS p-values of samples up to 10,000 values, and rare branches.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from modelyard.core.tabular import is_missing

__all__ = [
    "NUMERIC_BINS",
    "PSI_EPSILON",
    "DriftTest",
    "TestResult",
    "builtin_tests",
    "categorical_scores",
    "category_counts",
    "chi2_test",
    "jensenshannon_test",
    "ks_test",
    "numeric_scores",
    "psi_test",
    "wasserstein_test",
]

NUMERIC_BINS = 10
"""Numeric samples are binned on the reference's quantiles into this many bins (deciles)."""

PSI_EPSILON = 1e-4
"""The proportion PSI puts in place of an empty bin's zero (the other proportions unchanged)."""

# scipy.stats.ks_2samp computes exact p-values when both samples have at most this many values.
_KS_MAX_EXACT = 10_000

Score = Literal["p_value", "distance"]


@dataclass(frozen=True, slots=True)
class TestResult:
    """What one drift test found: its statistic and, for hypothesis tests, its p-value."""

    __test__ = False  # not a pytest test class, despite its name

    statistic: float
    p_value: float | None


@dataclass(frozen=True, slots=True)
class DriftTest:
    """One registered drift test.

    ``kinds`` says which columns it applies to (``"numeric"``, ``"categorical"``). With
    ``score="p_value"`` a column drifts when the p-value is below the threshold (alpha); with
    ``score="distance"`` when the statistic is at least the threshold. ``func(reference,
    current)`` is pure and deterministic; it gets the samples with missing values dropped.
    """

    __test__ = False

    name: str
    kinds: frozenset[str]
    score: Score
    default_threshold: float
    func: Callable[[np.ndarray, np.ndarray], TestResult]


# -- numeric ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Merged:
    """Both sorted samples merged (reference first among equal values), with the ECDFs.

    ``diff[k]`` is ``F_ref(x) - F_cur(x)`` just after ``values[k]`` counting the values up to
    position ``k``; at the last position of a run of equal values that is exactly
    ``searchsorted(side="right") / n`` of each sample, as ``ks_2samp`` evaluates it.
    """

    values: np.ndarray
    diff: np.ndarray
    run_end: np.ndarray | None  # None: no repeated values, every position ends a run


def _merge(ref: np.ndarray, cur: np.ndarray) -> _Merged:
    n1, n2 = len(ref), len(cur)
    both = np.concatenate((ref, cur))
    # A stable argsort of two sorted runs is a merge (timsort finds the runs): ~2x one sort.
    order = np.argsort(both, kind="stable")
    values = both[order]
    del both
    in_ref = order < n1
    del order
    c_ref: np.ndarray = np.cumsum(in_ref, dtype=np.int32 if n1 + n2 < 2**31 else np.int64)
    del in_ref
    # F_ref - F_cur from the same integer counts, divided as ks_2samp divides them, so the
    # values are bit-identical to scipy's; c_cur = k - c_ref is exact in float64.
    diff = c_ref / n1
    c_cur = np.arange(1, n1 + n2 + 1, dtype=np.float64)
    c_cur -= c_ref
    del c_ref
    c_cur /= n2
    diff -= c_cur
    del c_cur
    same = values[1:] == values[:-1]
    run_end = None
    if same.any():
        run_end = np.append(~same, True)
    return _Merged(values, diff, run_end)


def _ks(merged: _Merged, ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> TestResult:
    n1, n2 = len(ref_sorted), len(cur_sorted)
    diff = merged.diff if merged.run_end is None else merged.diff[merged.run_end]
    max_s = float(diff.max())
    min_s = float(np.clip(-diff.min(), 0, 1))
    d = min_s if min_s > max_s else max_s
    g = math.gcd(n1, n2)
    if max(n1, n2) <= _KS_MAX_EXACT:
        # ks_2samp's 'auto' method: exact, rounding d to the lattice of the lcm first; when the
        # exact sum over- or underflows it falls back to the asymptotic p-value (scipy warns
        # about that fall-back; we do not).
        lcm = (n1 // g) * n2
        h = int(np.round(d * lcm))
        d = h * 1.0 / lcm
        if h == 0:
            return TestResult(d, 1.0)
        ok, prob = _exact_ks_p(ref_sorted, cur_sorted, g, d)
        if ok:
            return TestResult(d, float(np.clip(prob, 0, 1)))
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    return TestResult(d, float(np.clip(_kstwo_sf(d, float(np.round(en))), 0, 1)))


def _kstwo_sf(d: float, n: float) -> float:
    """``scipy.stats.kstwo.sf(d, n)``: the branches of scipy's ``_kolmogn(n, d, cdf=False)``.

    Two reasons not to call it: its branch ``2 * smirnov(n, d)`` (``n > 140``,
    ``2.2 <= n d**2 < 370``) is an exact sum over ~n terms that cephes evaluates one by one,
    0.3 s at n = 100,000 and 1 s at 1,000,000 (:func:`_smirnov_sf` computes it in
    milliseconds); and importing scipy.stats costs 75 MiB of memory. The branches for
    ``n <= 140`` and the Durbin matrix branch (``n <= 100,000`` and ``n d**1.5 <= 1.4``, where
    the p-value is ~1) still call scipy.stats, and ``d >= 0.5`` scipy.special.
    """
    x, n_int = d, int(n)
    if x >= 1.0:
        return 0.0
    if x <= 0.0:
        return 1.0
    t = n * x
    if t <= 1.0:  # Ruben-Gambino
        if t <= 0.5:
            return 1.0
        if n_int <= 140:
            return _scipy_kstwo_sf(d, n)
        prob = math.exp(_log_nfactorial_div_n_pow_n(n_int) + n_int * math.log(2 * t - 1))
        return _clip(1.0 - prob)
    if t >= n - 1:  # Ruben-Gambino
        return _clip(2 * (1.0 - x) ** n_int)
    if x >= 0.5:
        from scipy.special import smirnov

        return _clip(2 * float(smirnov(n_int, x)))
    nxsquared = t * x
    if n_int <= 140:
        return _scipy_kstwo_sf(d, n)
    if nxsquared >= 370.0:
        return 0.0
    if nxsquared >= 2.2:
        return _clip(2.0 * _smirnov_sf(n_int, x))
    if n_int <= 100_000 and n_int * x**1.5 <= 1.4:
        return _scipy_kstwo_sf(d, n)
    return _clip(1.0 - _pelz_good_cdf(n_int, x))


def _scipy_kstwo_sf(d: float, n: float) -> float:
    from scipy.stats import kstwo

    return float(kstwo.sf(d, n))


def _clip(p: float) -> float:
    return min(max(float(p), 0.0), 1.0)


# Stirling coefficients B_2j / (2j (2j - 1)), j = 8..1, as scipy.stats._ksstats has them.
_STIRLING_COEFFS = [-2.955065359477124183e-2, 6.4102564102564102564e-3,
                    -1.9175269175269175269e-3, 8.4175084175084175084e-4,
                    -5.952380952380952381e-4, 7.9365079365079365079e-4,
                    -2.7777777777777777778e-3, 8.3333333333333333333e-2]  # fmt: skip
_PI_SQUARED = math.pi**2
_PI_FOUR = math.pi**4
_PI_SIX = math.pi**6
_SQRT2PI = math.sqrt(2 * math.pi)
_SQRT3 = math.sqrt(3)


def _log_nfactorial_div_n_pow_n(n: int) -> float:
    """log(n! / n**n) by Stirling's series, as scipy computes it."""
    rn = 1.0 / n
    return float(
        np.log(n) / 2 - n + np.log(2 * np.pi) / 2 + rn * np.polyval(_STIRLING_COEFFS, rn / n)
    )


def _pelz_good_cdf(n: int, x: float) -> float:
    """scipy.stats._ksstats._kolmogn_PelzGood(n, x, cdf=True), operation for operation."""
    z = np.sqrt(n) * x
    zsquared, zthree, zfour, zsix = z**2, z**3, z**4, z**6
    qlog = -_PI_SQUARED / 8 / zsquared
    if qlog < -708:
        return 0.0
    q = np.exp(qlog)
    k1a = -zsquared
    k1b = _PI_SQUARED / 4
    k2a = 6 * zsix + 2 * zfour
    k2b = (2 * zfour - 5 * zsquared) * _PI_SQUARED / 4
    k2c = _PI_FOUR * (1 - 2 * zsquared) / 16
    k3d = _PI_SIX * (5 - 30 * zsquared) / 64
    k3c = _PI_FOUR * (-60 * zsquared + 212 * zfour) / 16
    k3b = _PI_SQUARED * (135 * zfour - 96 * zsix) / 4
    k3a = -30 * zsix - 90 * z**8
    k0to3 = np.zeros(4)
    maxk = int(np.ceil(16 * z / np.pi))
    for k in range(maxk, 0, -1):  # Horner scheme over the odd integers
        m = 2 * k - 1
        msquared, mfour, msix = m**2, m**4, m**6
        qpower = np.power(q, 8 * k)
        coeffs = np.array([1.0,
                           k1a + k1b * msquared,
                           k2a + k2b * msquared + k2c * mfour,
                           k3a + k3b * msquared + k3c * mfour + k3d * msix])  # fmt: skip
        k0to3 *= qpower
        k0to3 += coeffs
    k0to3 *= q
    k0to3 *= _SQRT2PI
    k0to3 /= np.array([z, 6 * zfour, 72 * z**7, 6480 * z**10])
    q = np.exp(-_PI_SQUARED / 2 / zsquared)
    ks = np.arange(maxk, 0, -1)
    ksquared = ks**2
    sqrt3z = _SQRT3 * z
    kspi = np.pi * ks
    qpwers = q**ksquared
    k2extra = np.sum(ksquared * qpwers)
    k2extra *= _PI_SQUARED * _SQRT2PI / (-36 * zthree)
    k0to3[2] += k2extra
    k3extra = np.sum((sqrt3z + kspi) * (sqrt3z - kspi) * ksquared * qpwers)
    k3extra *= _PI_SQUARED * _SQRT2PI / (216 * zsix)
    k0to3[3] += k3extra
    powers_of_n = np.power(n * 1.0, np.arange(len(k0to3)) / 2.0)
    k0to3 /= powers_of_n
    return float(sum(k0to3))


# cephes' MINLOG: log(2**-1075); below it the one-sided sf underflows.
_MINLOG = -7.451332191019412076235e2
# cephes computes smirnov exactly up to this n and approximates above it.
_SMIRNOV_MAX_COMPUTE_N = 1_000_000
_LN_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
# Loader's stirlerr(k) = log(k!) - log(sqrt(2 pi k) (k/e)**k) for k = 0..15, from lgamma.
_STIRLERR_SMALL = np.array(
    [0.0] + [math.lgamma(k + 1.0) - (k + 0.5) * math.log(k) + k - _LN_SQRT_2PI
             for k in range(1, 16)]
)  # fmt: skip


def _stirlerr(k: np.ndarray) -> np.ndarray:
    out = np.empty_like(k)
    small = k <= 15
    out[small] = _STIRLERR_SMALL[k[small].astype(np.int64)]
    kb = k[~small]
    k2 = kb * kb
    out[~small] = (
        1 / 12 - (1 / 360 - (1 / 1260 - (1 / 1680 - (1 / 1188) / k2) / k2) / k2) / k2
    ) / kb
    return out


def _smirnov_log_terms(n: int, x: float, j: np.ndarray) -> np.ndarray:
    """log A_j of the Birnbaum-Tingey sum, ``smirnov(n, x) = x * sum_j A_j`` with
    ``A_j = binom.pmf(j; n, p_j) / p_j``, ``p_j = x + j/n``, for ``1 <= j < n(1-x)``.

    The binomial log-pmf is Loader's saddle-point form (as R and boost compute it): stirlerr
    and deviance terms that stay small, so each term is accurate to ~1e-14.
    """
    nx = n * x
    nj = n - j
    stirlerr_n = float(_stirlerr(np.array([float(n)]))[0])
    return (  # type: ignore[no-any-return]
        stirlerr_n
        - _stirlerr(j)
        - _stirlerr(nj)
        - (nx - j * np.log1p(nx / j))  # bd0(j, n p_j)
        - (-nx - nj * np.log1p(-nx / nj))  # bd0(n - j, n q_j)
        + 0.5 * np.log(n / (2.0 * math.pi * j * nj))
        - np.log(x + j / n)
    )


def _smirnov_sf(n: int, x: float) -> float:
    """``scipy.special.smirnov(n, x)`` for ``n > 140`` and ``1/n < x < 0.5`` (relative
    difference ~1e-13, checked in the tests), vectorised, summing only the terms that count."""
    if -2.0 * n * x * x < _MINLOG:
        return 0.0
    if n > _SMIRNOV_MAX_COMPUTE_N:  # cephes' own approximation for such n
        logp = -((6.0 * n * x + 1) ** 2) / 18.0 / n
        return math.exp(logp) if logp < -math.log(2.0) else -math.expm1(logp)
    last = n - math.floor(n * x) - 1  # the terms j with x + j/n < 1
    lo, hi = 1, last
    if last > 4096:
        # log A_j is unimodal in j: find on a coarse grid where the terms exceed e**-50 of the
        # largest (what is left out is below 1e-16 of the sum), then sum those exactly.
        grid = np.unique(np.linspace(1.0, float(last), 1025).round())
        coarse = _smirnov_log_terms(n, x, grid)
        keep = np.flatnonzero(coarse > coarse.max() - 50.0)
        lo = int(grid[max(keep[0] - 1, 0)])
        hi = int(grid[min(keep[-1] + 1, len(grid) - 1)])
    j = np.arange(lo, hi + 1, dtype=np.float64)
    a0 = n * math.log1p(-x) - math.log(x)  # j = 0: (1 - x)**n / x
    log_terms = np.append(_smirnov_log_terms(n, x, j), a0)
    top = float(log_terms.max())
    total = float(np.sum(np.exp(log_terms - top)))
    return math.exp(math.log(x) + top + math.log(total))


def _exact_ks_p(ref: np.ndarray, cur: np.ndarray, g: int, d: float) -> tuple[bool, float]:
    """ks_2samp's exact two-sided p-value; ``(False, nan)`` when it cannot be computed."""
    try:
        # scipy's own routine (compiled with pythran), so the p-value is scipy's to the bit.
        from scipy.stats._stats_py import _attempt_exact_2kssamp
    except ImportError:  # pragma: no cover - a scipy that moved it: ask ks_2samp itself
        import warnings

        from scipy.stats import ks_2samp

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # its exact-to-asymp fall-back
            return True, float(ks_2samp(ref, cur).pvalue)
    ok, _, prob = _attempt_exact_2kssamp(len(ref), len(cur), g, d, "two-sided")
    return bool(ok), float(prob)


def _wasserstein(merged: _Merged, ref_sorted: np.ndarray) -> TestResult:
    """The Wasserstein distance; it takes ``merged.diff`` over (KS must come first)."""
    deltas = np.diff(merged.values)
    # Inside a run of equal values deltas are 0, so the terms there are 0 as in scipy's sum.
    magnitude = np.abs(merged.diff[:-1], out=merged.diff[:-1])
    distance = float(np.dot(magnitude, deltas))
    scale = float(ref_sorted.std())
    if scale > 0 and math.isfinite(scale):
        distance /= scale
    return TestResult(distance, None)


def quantile_bins(ref_sorted: np.ndarray) -> np.ndarray:
    """The interior bin edges of a sorted reference: its deciles, repeats removed.

    The values of ``np.quantile(reference, np.arange(1, 10) / 10)`` (its default 'linear'
    method, interpolated the same way), read off the sorted array without numpy's copy and
    partition.
    """
    qs = np.arange(1, NUMERIC_BINS) / NUMERIC_BINS  # 0.3 exactly, where linspace has 0.30..04
    n = len(ref_sorted)
    virtual = (n - 1) * qs
    previous = np.floor(virtual)
    following = previous + 1
    above = virtual >= n - 1
    previous[above] = -1
    following[above] = -1
    lo, hi = ref_sorted[previous.astype(np.intp)], ref_sorted[following.astype(np.intp)]
    gamma = virtual - previous
    diff = hi - lo
    edges = lo + diff * gamma
    upper = gamma >= 0.5
    edges[upper] = (hi - diff * (1 - gamma))[upper]
    return np.unique(edges)


def _binned(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # Values below each edge; bin i holds [edge[i-1], edge[i]).
    below = np.searchsorted(sorted_values, edges, side="left")
    return np.diff(np.concatenate(([0], below, [len(sorted_values)])))


def _psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> TestResult:
    r = ref_counts / ref_counts.sum()
    c = cur_counts / cur_counts.sum()
    r = np.where(r == 0, PSI_EPSILON, r)
    c = np.where(c == 0, PSI_EPSILON, c)
    return TestResult(float(np.sum((c - r) * np.log(c / r))), None)


def _jensenshannon(ref_counts: np.ndarray, cur_counts: np.ndarray) -> TestResult:
    # scipy.spatial.distance.jensenshannon(ref_counts, cur_counts, base=2), step by step
    # (importing scipy costs more than the computation).
    p = ref_counts / np.sum(ref_counts)
    q = cur_counts / np.sum(cur_counts)
    m = (p + q) / 2.0
    js = (_rel_entr_sum(p, m) + _rel_entr_sum(q, m)) / math.log(2.0)
    return TestResult(math.sqrt(max(js, 0.0) / 2.0), None)  # rounding may give -1e-17


def _rel_entr_sum(x: np.ndarray, y: np.ndarray) -> float:
    """``scipy.special.rel_entr(x, y).sum()`` where ``y > 0`` wherever ``x > 0`` (as here).

    Term by term as scipy's ``rel_entr`` computes it, with the C library's ``log1p`` when the
    two are close and ``log`` otherwise: for two nearly equal distributions the divergence is
    a sum of terms that almost cancel, and another formula (or numpy's vectorised ``log``)
    would move the result by up to 1e-5 relative (measured). There are only as many terms as
    bins or categories.
    """
    terms = [_rel_entr(a, b) for a, b in zip(x.tolist(), y.tolist(), strict=True)]
    return float(np.sum(np.array(terms, dtype=np.float64)))


def _rel_entr(x: float, y: float) -> float:
    if x <= 0:
        return 0.0
    ratio = x / y
    if 0.5 < ratio < 2:
        return x * math.log1p((x - y) / y)
    if sys.float_info.min < ratio < math.inf:
        return x * math.log(ratio)
    return x * (math.log(x) - math.log(y))


def numeric_scores(
    ref_sorted: np.ndarray, cur_sorted: np.ndarray, names: frozenset[str] | None = None
) -> dict[str, TestResult]:
    """``ks``, ``wasserstein``, ``psi`` and ``jensenshannon`` of two sorted float samples.

    Each sample is sorted once by the caller; KS and Wasserstein share one merge of the two,
    PSI and Jensen-Shannon one binning. ``names`` limits which are computed.
    """
    wanted = names if names is not None else frozenset(_NUMERIC_FAST)
    out: dict[str, TestResult] = {}
    if wanted & {"ks", "wasserstein"}:
        merged = _merge(ref_sorted, cur_sorted)
        if "ks" in wanted:
            out["ks"] = _ks(merged, ref_sorted, cur_sorted)
        if "wasserstein" in wanted:
            out["wasserstein"] = _wasserstein(merged, ref_sorted)
        del merged
    if wanted & {"psi", "jensenshannon"}:
        edges = quantile_bins(ref_sorted)
        ref_counts, cur_counts = _binned(ref_sorted, edges), _binned(cur_sorted, edges)
        if "psi" in wanted:
            out["psi"] = _psi(ref_counts, cur_counts)
        if "jensenshannon" in wanted:
            out["jensenshannon"] = _jensenshannon(ref_counts, cur_counts)
    return out


_NUMERIC_FAST = ("ks", "wasserstein", "psi", "jensenshannon")


# -- categorical ------------------------------------------------------------------------------
def count_categories(values: np.ndarray) -> dict[str, int]:
    """Counts of each category of ``values``, keyed by its text; missing values left out.

    Booleans become ``"True"``/``"False"`` and other non-text values ``str(value)``, the keys
    the reference profile uses, so integers logged live match the text stored in the sample.
    """
    kind = values.dtype.kind
    if kind == "b":
        n_true = int(np.count_nonzero(values))
        return {k: c for k, c in (("True", n_true), ("False", len(values) - n_true)) if c}
    if kind in "iu":
        uniq, counts = np.unique(values, return_counts=True)
        return {str(u): int(c) for u, c in zip(uniq.tolist(), counts.tolist(), strict=True)}
    if kind == "f":
        present = values[~np.isnan(values)]
        uniq, counts = np.unique(present, return_counts=True)
        return {str(u): int(c) for u, c in zip(uniq.tolist(), counts.tolist(), strict=True)}
    # Counter hashes in C; then the loop runs over distinct values only.
    try:
        counted = Counter(values.tolist())
    except TypeError:  # unhashable values (lists): count their text
        counted = Counter(None if is_missing(v) else str(v) for v in values.tolist())
    out = {v: c for v, c in counted.items() if type(v) is str}
    if len(out) == len(counted):
        return out
    for value, c in counted.items():
        if type(value) is str or is_missing(value):
            continue
        key = str(value)
        out[key] = out.get(key, 0) + c
    return out


def category_counts(
    reference: Mapping[str, int], current: Mapping[str, int]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Align two category counts: the categories (the reference's, then new ones) and the
    reference and current counts of each, zero where a sample lacks the category."""
    categories = list(reference) + [k for k in current if k not in reference]
    ref = np.array([reference.get(k, 0) for k in categories], dtype=np.int64)
    cur = np.array([current.get(k, 0) for k in categories], dtype=np.int64)
    return categories, ref, cur


def _chi2(ref_counts: np.ndarray, cur_counts: np.ndarray) -> TestResult:
    """``scipy.stats.chi2_contingency`` of the 2 x K table, step by step: expected counts from
    the margins, Yates' correction when there is one degree of freedom, Pearson's statistic
    and its chi-square survival function."""
    observed = np.stack((ref_counts, cur_counts))
    expected = observed.sum(axis=1, keepdims=True) * observed.sum(axis=0, keepdims=True)
    expected = expected / observed.sum()
    dof = expected.size - sum(expected.shape) + expected.ndim - 1
    if dof == 0:
        return TestResult(0.0, 1.0)
    f_obs = observed.astype(np.float64)
    if dof == 1:
        diff = expected - f_obs
        f_obs = f_obs + np.minimum(0.5, np.abs(diff)) * np.sign(diff)
    statistic = float(np.sum((f_obs - expected) ** 2 / expected))
    return TestResult(statistic, chi2_sf(statistic, int(dof)))


def chi2_sf(x: float, dof: int) -> float:
    """P(X > x) for X chi-square with ``dof`` (a positive integer) degrees of freedom: what
    ``scipy.special.chdtrc`` computes (to ~1e-14, checked in the tests).

    With integer degrees of freedom the regularised upper incomplete gamma function
    Q(dof/2, x/2) has closed forms: a Poisson sum for even ``dof``, ``erfc`` plus a finite sum
    for odd ``dof``. Each term is evaluated in log space, so neither large ``x`` nor many
    categories overflow. (Not importing scipy.special saves 30 MiB of memory.)
    """
    if x <= 0:
        return 1.0
    h = x / 2.0
    log_h = math.log(h)
    if dof % 2 == 0:  # Q(m, h) = e^-h sum_{j<m} h^j / j!
        j = np.arange(dof // 2, dtype=np.float64)
        log_gamma = np.array([math.lgamma(v + 1.0) for v in j.tolist()])
        terms = -h + j * log_h - log_gamma
        base = 0.0
    else:  # Q(m + 1/2, h) = erfc(sqrt h) + e^-h sum_{j<m} h^(j+1/2) / Gamma(j + 3/2)
        j = np.arange((dof - 1) // 2, dtype=np.float64)
        log_gamma = np.array([math.lgamma(v + 1.5) for v in j.tolist()])
        terms = -h + (j + 0.5) * log_h - log_gamma
        base = math.erfc(math.sqrt(h))
    return min(base + float(np.sum(np.exp(terms))), 1.0)


def categorical_scores(
    ref_counts: np.ndarray, cur_counts: np.ndarray, names: frozenset[str] | None = None
) -> dict[str, TestResult]:
    """``chi2``, ``psi`` and ``jensenshannon`` of aligned category counts."""
    wanted = names if names is not None else frozenset(("chi2", "psi", "jensenshannon"))
    fns = {"chi2": _chi2, "psi": _psi, "jensenshannon": _jensenshannon}
    return {name: fns[name](ref_counts, cur_counts) for name in fns if name in wanted}


# -- the registered pure functions ------------------------------------------------------------
def _is_categorical(values: np.ndarray) -> bool:
    return values.dtype.kind not in "iufM"


def _sorted_floats(values: np.ndarray) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind == "M":
        arr = arr.astype("datetime64[ns]").view(np.int64)
    return np.sort(arr.astype(np.float64, copy=False))


def _counts(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    _, ref, cur = category_counts(count_categories(reference), count_categories(current))
    return ref, cur


def ks_test(reference: np.ndarray, current: np.ndarray) -> TestResult:
    """Two-sample Kolmogorov-Smirnov test; equals ``scipy.stats.ks_2samp``.

    >>> r = ks_test(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]))
    >>> r.statistic, r.p_value
    (0.0, 1.0)
    """
    ref, cur = _sorted_floats(reference), _sorted_floats(current)
    return _ks(_merge(ref, cur), ref, cur)


def wasserstein_test(reference: np.ndarray, current: np.ndarray) -> TestResult:
    """``scipy.stats.wasserstein_distance`` divided by the reference's std (ddof=0).

    >>> wasserstein_test(np.array([0.0, 2.0]), np.array([1.0, 3.0])).statistic
    1.0
    """
    ref, cur = _sorted_floats(reference), _sorted_floats(current)
    return _wasserstein(_merge(ref, cur), ref)


def psi_test(reference: np.ndarray, current: np.ndarray) -> TestResult:
    """Population stability index over reference deciles (numeric) or categories.

    >>> psi_test(np.array(["a", "b"], dtype=object), np.array(["a", "b"], dtype=object))
    TestResult(statistic=0.0, p_value=None)
    """
    if _is_categorical(reference):
        return _psi(*_counts(reference, current))
    return numeric_scores(_sorted_floats(reference), _sorted_floats(current), _PSI)["psi"]


def jensenshannon_test(reference: np.ndarray, current: np.ndarray) -> TestResult:
    """Jensen-Shannon distance (base 2) over reference deciles (numeric) or categories.

    >>> round(jensenshannon_test(np.array([True, False]), np.array([True, True])).statistic, 4)
    0.5579
    """
    if _is_categorical(reference):
        return _jensenshannon(*_counts(reference, current))
    ref, cur = _sorted_floats(reference), _sorted_floats(current)
    return numeric_scores(ref, cur, _JS)["jensenshannon"]


def chi2_test(reference: np.ndarray, current: np.ndarray) -> TestResult:
    """Chi-square test of homogeneity of the 2 x K category table (``chi2_contingency``).

    >>> chi2_test(np.array(["a", "b"], dtype=object), np.array(["b", "a"], dtype=object))
    TestResult(statistic=0.0, p_value=1.0)
    """
    return _chi2(*_counts(reference, current))


_PSI = frozenset({"psi"})
_JS = frozenset({"jensenshannon"})
_BOTH = frozenset({"numeric", "categorical"})

_BUILTINS: Mapping[str, DriftTest] = MappingProxyType(
    {
        "ks": DriftTest("ks", frozenset({"numeric"}), "p_value", 0.05, ks_test),
        "wasserstein": DriftTest(
            "wasserstein", frozenset({"numeric"}), "distance", 0.1, wasserstein_test
        ),
        "psi": DriftTest("psi", _BOTH, "distance", 0.1, psi_test),
        "jensenshannon": DriftTest("jensenshannon", _BOTH, "distance", 0.1, jensenshannon_test),
        "chi2": DriftTest("chi2", frozenset({"categorical"}), "p_value", 0.05, chi2_test),
    }
)

# Functions the engine computes from shared work (one sort, one count) instead of calling them.
FAST_PATHS: Mapping[Callable[..., Any], str] = MappingProxyType(
    {t.func: name for name, t in _BUILTINS.items()}
)


def builtin_tests() -> Mapping[str, DriftTest]:
    """The built-in tests by name (an immutable mapping): ``ks``, ``wasserstein``, ``psi``,
    ``jensenshannon`` and ``chi2``.

    Pass a mapping of your own to the drift functions to add tests:

    >>> tests = {**builtin_tests()}
    >>> sorted(tests)
    ['chi2', 'jensenshannon', 'ks', 'psi', 'wasserstein']
    """
    return _BUILTINS
