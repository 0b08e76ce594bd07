"""Drift: does the data a model sees now still look like its reference data?

Per column, every registered test that applies to the column's kind is computed (the scores
end up in the metric store), and one of them decides whether the column drifted:

* **Small samples** (``min(n_reference, n_current) < DriftConfig.large_sample``): a
  hypothesis test at ``alpha``: Kolmogorov-Smirnov for numeric columns, the chi-square test of
  homogeneity for categorical ones. Their p-values are calibrated: on unchanged data they
  flag ``alpha`` of the columns.
* **Large samples**: an effect size against a threshold: the normalised Wasserstein distance
  (in reference standard deviations) for numeric columns, the PSI for categorical ones. With
  a million rows every p-value is tiny and a 1% change of scale is "significant"; a distance
  says whether the change is large enough to matter, whatever the sample size.

Why ``large_sample = 1000``, ``0.1`` and ``0.1``: two samples of n rows from the same normal
distribution are on average ``1.36 * sqrt(2 / n)`` standard deviations apart in Wasserstein
distance: 0.06 at n = 1,000, where 5% of such pairs reach 0.1 (the false alarm rate of a
p-value test at alpha 0.05) and 0.04 at n = 2,000, where none do. Below 1,000 rows the
distance is mostly noise and the p-value test is the better judge; above it the distance is
at least as quiet and does not grow more sensitive with n. A threshold of 0.1 lies well
between what must be caught (a mean shift of 0.25 standard deviations is 0.25, a 30% change
of scale about 0.24) and what must not (a 1-2% shift is 0.01-0.02 plus the noise above).
Measured over 200 seeded draws of 2,000 rows: unchanged or 2%-shifted columns reach 0.1 in at
most 1% of draws for normal, uniform, exponential, Student-t(5) and lognormal(0, 1) data, in
2-4% for a very skewed lognormal(0, 1.5) (whose standard deviation is itself noisy); none do
at 5,000 rows. Give very skewed features a log transform upstream or their own rule. For
categories, PSI 0.1 is the usual "moderate shift" line; sampling noise adds about
``(K - 1) * (1/n_reference + 1/n_current)`` for K categories (0.02 at 1,000 rows and 10
categories), so columns with hundreds of categories want larger windows or their own rule. A
new category moves PSI through the ``PSI_EPSILON`` its empty reference bin gets: one that
holds 2% of the current rows adds about 0.1, one with 5% about 0.3.

Prediction drift is the same computation on prediction columns: pass the model's outputs on
its reference sample and its logged outputs, e.g. ``dataset_drift({"prediction": expected},
{"prediction": logged}, kinds={"prediction": "categorical"})``.

Missing values (None, NaN, NaT and, in numeric columns, ±inf) are dropped before testing;
``n_reference``/``n_current`` count the values tested. A column with no value left on either
side cannot be tested: :func:`column_drift` raises :class:`~modelyard.errors.InvalidInputError`
and :func:`dataset_drift` lists it in ``DatasetDrift.skipped`` (the data-quality checks report
its missing values).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from modelyard.core.tabular import is_missing
from modelyard.errors import InvalidInputError
from modelyard.monitoring.drift_tests import (
    FAST_PATHS,
    DriftTest,
    TestResult,
    builtin_tests,
    categorical_scores,
    category_counts,
    count_categories,
    numeric_scores,
)

__all__ = [
    "ColumnDrift",
    "ColumnRule",
    "DatasetDrift",
    "DriftConfig",
    "DriftTest",
    "TestResult",
    "builtin_tests",
    "column_drift",
    "dataset_drift",
]

ColumnKind = Literal["numeric", "categorical"]

# The kinds a reference profile knows, and the kind of test each one gets.
_KINDS: Mapping[str, ColumnKind] = {
    "numeric": "numeric",
    "datetime": "numeric",
    "categorical": "categorical",
    "boolean": "categorical",
}


class ColumnRule(BaseModel):
    """A per-feature override: which test decides, and at what threshold.

    ``threshold`` None means the configured one for that test (``alpha`` for p-value tests),
    else the test's default.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str
    """A registered test name: ``ks``, ``wasserstein``, ``psi``, ``jensenshannon``, ``chi2``."""
    threshold: float | None = Field(default=None, gt=0)
    """The p-value below which (p-value tests) or the distance from which the column drifts."""


class DriftConfig(BaseModel):
    """How drift is decided, per column and for the data set (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    share_threshold: float = Field(default=0.5, gt=0, le=1)
    """The data set drifted when at least this share of its columns drifted."""
    alpha: float = Field(default=0.05, gt=0, lt=1)
    """Significance level of the p-value tests used on small samples."""
    large_sample: int = Field(default=1000, ge=0)
    """From this many values on both sides, the effect-size tests decide instead of p-values."""
    numeric_test: str = "ks"
    """The p-value test for numeric columns on small samples."""
    categorical_test: str = "chi2"
    """The p-value test for categorical columns on small samples."""
    numeric_distance: str = "wasserstein"
    """The effect-size test for numeric columns on large samples."""
    numeric_distance_threshold: float = Field(default=0.1, gt=0)
    """Distance from which a numeric column drifted (0.1: a tenth of a standard deviation)."""
    categorical_distance: str = "psi"
    """The effect-size test for categorical columns on large samples."""
    categorical_distance_threshold: float = Field(default=0.1, gt=0)
    """Distance from which a categorical column drifted (PSI 0.1: a moderate shift)."""
    columns: dict[str, ColumnRule] = Field(default_factory=dict)
    """Per-feature overrides of the method and threshold, by column name."""


@dataclass(frozen=True, slots=True)
class ColumnDrift:
    """The drift of one column.

    ``method`` is the test that decided, ``statistic``/``p_value`` its result and ``threshold``
    its threshold. ``scores`` holds every test computed for the column: numeric columns
    ``ks``, ``ks_p_value``, ``wasserstein``, ``psi``, ``jensenshannon``; categorical columns
    ``chi2``, ``chi2_p_value``, ``psi``, ``jensenshannon`` and ``new_categories`` (how many
    categories of the current data the reference lacks).
    """

    column: str
    kind: ColumnKind
    method: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    scores: dict[str, float]
    n_reference: int
    n_current: int


@dataclass(frozen=True, slots=True)
class DatasetDrift:
    """The drift of a data set: its columns, the share that drifted, and the verdict.

    ``skipped`` names the columns that could not be tested (no present values on one side);
    they do not count in ``share``.
    """

    columns: tuple[ColumnDrift, ...]
    share: float
    threshold: float
    drifted: bool
    skipped: tuple[str, ...] = field(default=())

    def metrics(self) -> dict[str, float]:
        """Metric values to store: ``drift.share``, ``drift.dataset`` (0/1), ``drift.n_drifted``,
        ``drift.n_columns``, ``drift.n_skipped``, and per column ``feature.<col>.<score>`` for
        every score and ``feature.<col>.drifted`` (0/1).

        >>> result = dataset_drift({"x": np.arange(50.0)}, {"x": np.arange(50.0)})
        >>> result.metrics()["drift.share"], result.metrics()["feature.x.ks"]
        (0.0, 0.0)
        """
        n_drifted = sum(c.drifted for c in self.columns)
        out = {
            "drift.share": self.share,
            "drift.dataset": float(self.drifted),
            "drift.n_drifted": float(n_drifted),
            "drift.n_columns": float(len(self.columns)),
            "drift.n_skipped": float(len(self.skipped)),
        }
        for col in self.columns:
            for name, value in col.scores.items():
                out[f"feature.{col.column}.{name}"] = value
            out[f"feature.{col.column}.drifted"] = float(col.drifted)
        return out


def column_drift(
    name: str,
    reference: np.ndarray,
    current: np.ndarray,
    *,
    kind: str,
    config: DriftConfig | None = None,
    tests: Mapping[str, DriftTest] | None = None,
) -> ColumnDrift:
    """Test one column of current data against its reference.

    ``kind`` is a profile kind: ``numeric``, ``datetime`` (tested as numeric on nanoseconds),
    ``categorical`` or ``boolean`` (tested as categorical). ``tests`` replaces the built-in
    registry (:func:`builtin_tests`); every test in it that applies to the kind is computed.

    >>> rng = np.random.default_rng(0)
    >>> ref, cur = rng.normal(size=5000), rng.normal(0.5, 1, size=5000)
    >>> result = column_drift("x", ref, cur, kind="numeric")
    >>> result.method, result.drifted, round(result.statistic, 1)
    ('wasserstein', True, 0.5)
    """
    config = config or DriftConfig()
    registry = builtin_tests() if tests is None else tests
    col_kind = _kind(name, kind)
    applicable = {n: t for n, t in registry.items() if col_kind in t.kinds}
    _check_config(col_kind, config, registry, applicable)
    method, threshold, deciding = _rule(name, col_kind, config, registry, applicable)
    if col_kind == "numeric":
        ref, cur = _numeric(name, reference, "reference"), _numeric(name, current, "current")
        n_ref, n_cur = _check_sizes(name, len(ref), len(cur))
        results = _numeric_results(ref, cur, applicable)
        scores: dict[str, float] = {}
    else:
        ref_counts, cur_counts = count_categories(reference), count_categories(current)
        n_ref, n_cur = _check_sizes(name, sum(ref_counts.values()), sum(cur_counts.values()))
        results = _categorical_results(reference, current, ref_counts, cur_counts, applicable)
        scores = {"new_categories": float(sum(k not in ref_counts for k in cur_counts))}
    for test_name, result in results.items():
        scores[test_name] = result.statistic
        if result.p_value is not None:
            scores[f"{test_name}_p_value"] = result.p_value
    if deciding is None:  # no rule for this column: the sample size picks the test
        method, threshold = _default_method(col_kind, min(n_ref, n_cur), config, applicable)
    test = applicable[method]
    decided = results[method]
    if test.score == "p_value":
        p_value = decided.p_value
        if p_value is None or not math.isfinite(p_value):
            raise InvalidInputError(
                f"Drift test {method!r} is registered as a p-value test but returned "
                f"p_value={p_value!r} for column {name!r}.",
                hint="Register it with score='distance', or return a p-value.",
            )
        drifted = p_value < threshold
    else:
        drifted = decided.statistic >= threshold
    return ColumnDrift(
        column=name,
        kind=col_kind,
        method=method,
        statistic=decided.statistic,
        p_value=decided.p_value,
        threshold=threshold,
        drifted=bool(drifted),
        scores=scores,
        n_reference=n_ref,
        n_current=n_cur,
    )


def dataset_drift(
    reference: Mapping[str, np.ndarray],
    current: Mapping[str, np.ndarray],
    *,
    kinds: Mapping[str, str] | None = None,
    config: DriftConfig | None = None,
    tests: Mapping[str, DriftTest] | None = None,
) -> DatasetDrift:
    """Test every column of ``reference`` that ``current`` also has; the data set drifted when
    at least ``config.share_threshold`` of the tested columns drifted.

    Columns only in ``current`` are ignored (the data-quality checks report them), and so
    are rules in ``config.columns`` for columns ``reference`` lacks. ``kinds``
    maps column names to profile kinds; a column without one gets a kind from its reference
    dtype: numbers and datetimes are numeric, booleans and text categorical, and object
    columns numeric when they hold only numbers. Prediction drift is this function applied to
    prediction columns.

    >>> ref = {"x": np.arange(100.0), "c": np.array(["a", "b"] * 50, dtype=object)}
    >>> cur = {"x": np.arange(100.0) + 50, "c": np.array(["a", "b"] * 50, dtype=object)}
    >>> result = dataset_drift(ref, cur)
    >>> [(c.column, c.method, c.drifted) for c in result.columns], result.share
    ([('x', 'ks', True), ('c', 'chi2', False)], 0.5)
    """
    config = config or DriftConfig()
    kinds = kinds or {}
    # Rules for columns not in ``reference`` are ignored: one config serves the features and
    # the predictions alike. Whoever knows the feature names checks them when loading it.
    names = [n for n in reference if n in current]
    if not names:
        raise InvalidInputError(
            f"The current data shares no column with the reference: reference has "
            f"{list(reference)[:20]}, current has {list(current)[:20]}.",
            hint="Pass current data with the features the model was profiled with.",
        )
    columns: list[ColumnDrift] = []
    skipped: list[str] = []
    for name in names:
        kind = kinds.get(name) or infer_kind(reference[name])
        try:
            columns.append(
                column_drift(
                    name, reference[name], current[name], kind=kind, config=config, tests=tests
                )
            )
        except _NoValuesError:
            skipped.append(name)
    share = sum(c.drifted for c in columns) / len(columns) if columns else 0.0
    return DatasetDrift(
        columns=tuple(columns),
        share=share,
        threshold=config.share_threshold,
        drifted=bool(columns) and share >= config.share_threshold,
        skipped=tuple(skipped),
    )


def infer_kind(values: np.ndarray) -> ColumnKind:
    """``numeric`` for numbers and datetimes (and object columns holding only numbers),
    ``categorical`` for booleans, text and anything else."""
    arr = np.asarray(values)
    kind = arr.dtype.kind
    if kind in "iufMm":
        return "numeric"
    if kind != "O":
        return "categorical"
    if not _hashable(arr):
        return "categorical"
    seen = {type(v) for v in set(arr.tolist()) if not is_missing(v)}
    numbers = all(t in (int, float) or issubclass(t, np.integer | np.floating) for t in seen)
    return "numeric" if seen and numbers else "categorical"


class _NoValuesError(InvalidInputError):
    """A column with no present values on one side (dataset_drift skips it)."""


def _hashable(arr: np.ndarray) -> bool:
    try:
        set(arr[:1].tolist())
    except TypeError:
        return False
    return True


def _kind(name: str, kind: str) -> ColumnKind:
    try:
        return _KINDS[kind]
    except KeyError:
        raise InvalidInputError(
            f"The kind of column {name!r} must be one of {sorted(_KINDS)}. Got {kind!r} instead."
        ) from None


def _rule(
    name: str,
    kind: ColumnKind,
    config: DriftConfig,
    registry: Mapping[str, DriftTest],
    applicable: Mapping[str, DriftTest],
) -> tuple[str, float, ColumnRule | None]:
    """The column's own rule, checked; ``("", nan, None)`` when it has none."""
    rule = config.columns.get(name)
    if rule is None:
        return "", math.nan, None
    _check_method(rule.method, kind, registry, applicable, f"the rule for column {name!r}")
    threshold = rule.threshold
    if threshold is None:
        threshold = _configured_threshold(rule.method, applicable[rule.method], config)
    return rule.method, threshold, rule


def _default_method(
    kind: ColumnKind, n: int, config: DriftConfig, applicable: Mapping[str, DriftTest]
) -> tuple[str, float]:
    if kind == "numeric":
        method = config.numeric_test if n < config.large_sample else config.numeric_distance
    elif n < config.large_sample:
        method = config.categorical_test
    else:
        method = config.categorical_distance
    return method, _configured_threshold(method, applicable[method], config)


def _configured_threshold(method: str, test: DriftTest, config: DriftConfig) -> float:
    if test.score == "p_value":
        return config.alpha
    if method == config.numeric_distance:
        return config.numeric_distance_threshold
    if method == config.categorical_distance:
        return config.categorical_distance_threshold
    return test.default_threshold


def _check_method(
    method: str,
    kind: ColumnKind,
    registry: Mapping[str, DriftTest],
    applicable: Mapping[str, DriftTest],
    where: str,
) -> None:
    if method not in registry:
        raise InvalidInputError(
            f"Unknown drift test {method!r} in {where}; the known tests are {sorted(registry)}.",
            hint="Use one of those names, or register the test in the mapping you pass.",
        )
    if method not in applicable:
        raise InvalidInputError(
            f"Drift test {method!r} in {where} does not apply to {kind} columns; the tests "
            f"for {kind} columns are {sorted(applicable)}.",
        )


def _check_config(
    kind: ColumnKind,
    config: DriftConfig,
    registry: Mapping[str, DriftTest],
    applicable: Mapping[str, DriftTest],
) -> None:
    if kind == "numeric":
        pairs = [("numeric_test", config.numeric_test),
                 ("numeric_distance", config.numeric_distance)]  # fmt: skip
    else:
        pairs = [("categorical_test", config.categorical_test),
                 ("categorical_distance", config.categorical_distance)]  # fmt: skip
    for key, method in pairs:
        _check_method(method, kind, registry, applicable, f"the drift config's {key!r}")


def _check_sizes(name: str, n_ref: int, n_cur: int) -> tuple[int, int]:
    for side, n in (("reference", n_ref), ("current", n_cur)):
        if n == 0:
            raise _NoValuesError(
                f"Column {name!r} has no present values in the {side} data (all missing or "
                f"empty), so its drift cannot be tested.",
                hint="Check the column's missing values with the data-quality checks.",
            )
    return n_ref, n_cur


def _numeric(name: str, values: np.ndarray, side: str) -> np.ndarray:
    """Present values of a numeric column as float64 (datetimes as int64 nanoseconds)."""
    arr = np.asarray(values)
    kind = arr.dtype.kind
    if kind in "Mm":
        arr = arr[~np.isnat(arr)]
        unit = "datetime64[ns]" if kind == "M" else "timedelta64[ns]"
        nanoseconds: np.ndarray = arr.astype(unit).view(np.int64)
        return nanoseconds.astype(np.float64)
    if kind not in "iufb":
        try:
            arr = np.array(arr.tolist(), dtype=np.float64)  # None becomes NaN
        except (TypeError, ValueError):
            raise InvalidInputError(
                f"Column {name!r} is tested as numeric but its {side} data holds values that "
                f"are not numbers (dtype {arr.dtype}).",
                hint="Give it kind 'categorical', or send numbers.",
            ) from None
    arr = arr.astype(np.float64, copy=False)
    finite = np.isfinite(arr)
    return arr if finite.all() else arr[finite]


def _numeric_results(
    ref: np.ndarray, cur: np.ndarray, applicable: Mapping[str, DriftTest]
) -> dict[str, TestResult]:
    fast = frozenset(
        FAST_PATHS[t.func] for t in applicable.values() if FAST_PATHS.get(t.func) == t.name
    )
    out: dict[str, TestResult] = {}
    if fast:
        # One sort per sample, shared by every built-in numeric test.
        out.update(numeric_scores(np.sort(ref), np.sort(cur), fast))
    for test_name, test in applicable.items():
        if test_name not in fast:
            out[test_name] = _checked(test, ref, cur)
    return out


def _categorical_results(
    reference: np.ndarray,
    current: np.ndarray,
    ref_counts: dict[str, int],
    cur_counts: dict[str, int],
    applicable: Mapping[str, DriftTest],
) -> dict[str, TestResult]:
    fast = frozenset(
        FAST_PATHS[t.func] for t in applicable.values() if FAST_PATHS.get(t.func) == t.name
    )
    out: dict[str, TestResult] = {}
    if fast:
        _, ref, cur = category_counts(ref_counts, cur_counts)
        out.update(categorical_scores(ref, cur, fast))
    others = [n for n in applicable if n not in fast]
    if others:  # other tests get the values, missing ones dropped, as text or booleans
        ref_values, cur_values = _present(reference), _present(current)
        for test_name in others:
            out[test_name] = _checked(applicable[test_name], ref_values, cur_values)
    return out


def _present(values: np.ndarray) -> np.ndarray:
    """The present values in their order, as the text the built-in tests count them by."""
    arr = np.asarray(values)
    if arr.dtype.kind == "b":
        return arr
    if arr.dtype.kind == "f":
        arr = arr[~np.isnan(arr)]
    text = [v if type(v) is str else str(v) for v in arr.tolist() if not is_missing(v)]
    return np.array(text, dtype=object)


def _checked(test: DriftTest, ref: np.ndarray, cur: np.ndarray) -> TestResult:
    result = test.func(ref, cur)
    if not isinstance(result, TestResult):
        raise InvalidInputError(
            f"Drift test {test.name!r} returned {type(result).__name__}; it must return a "
            f"TestResult(statistic, p_value)."
        )
    return result
