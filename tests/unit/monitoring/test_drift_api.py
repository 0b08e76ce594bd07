"""The drift API: configuration, per-feature rules, kinds, missing values, errors, metrics, the
test registry and the detector conformance check."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from pydantic import ValidationError

from modelyard.errors import InvalidInputError
from modelyard.monitoring.drift import (
    ColumnRule,
    DriftConfig,
    DriftTest,
    TestResult,
    builtin_tests,
    column_drift,
    dataset_drift,
    infer_kind,
)
from modelyard.monitoring.drift_tests import ks_test, psi_test, wasserstein_test
from modelyard.testing import check_detector

RNG_SEED = 11


def _normal(n: int, loc: float = 0.0, seed: int = RNG_SEED) -> np.ndarray:
    return np.random.default_rng(seed).normal(loc, 1.0, size=n)


def _cats(n: int, p: list[float], seed: int = RNG_SEED) -> np.ndarray:
    values = np.array(["a", "b", "c"], dtype=object)
    return np.random.default_rng(seed).choice(values, size=n, p=p)


# -- scores and the decision -------------------------------------------------------------------
def test_a_numeric_column_gets_every_numeric_score() -> None:
    ref, cur = _normal(3000), _normal(2500, 0.3, seed=2)
    result = column_drift("age", ref, cur, kind="numeric")
    assert set(result.scores) == {"ks", "ks_p_value", "wasserstein", "psi", "jensenshannon"}
    assert result.scores["ks"] == ks_test(ref, cur).statistic
    assert result.scores["ks_p_value"] == ks_test(ref, cur).p_value
    assert result.scores["wasserstein"] == wasserstein_test(ref, cur).statistic
    assert (result.method, result.statistic, result.p_value, result.threshold) == (
        "wasserstein",
        result.scores["wasserstein"],
        None,
        0.1,
    )
    assert result.drifted
    assert (result.kind, result.n_reference, result.n_current) == ("numeric", 3000, 2500)


def test_a_categorical_column_gets_every_categorical_score() -> None:
    ref = _cats(2000, [0.5, 0.3, 0.2])
    cur = np.append(_cats(1990, [0.5, 0.3, 0.2], seed=3), ["z"] * 10).astype(object)
    result = column_drift("plan", ref, cur, kind="categorical")
    assert set(result.scores) == {"chi2", "chi2_p_value", "psi", "jensenshannon",
                                  "new_categories"}  # fmt: skip
    assert result.scores["new_categories"] == 1.0
    assert result.scores["psi"] == psi_test(ref, cur).statistic
    assert (result.kind, result.method) == ("categorical", "psi")


@pytest.mark.parametrize(
    ("share_threshold", "drifted"), [(0.5, True), (0.51, False)], ids=["at-share", "below"]
)
def test_the_data_set_drifts_when_the_share_reaches_the_threshold(
    share_threshold: float, drifted: bool
) -> None:
    ref = {"moved": _normal(2000), "same": _normal(2000, seed=4)}
    cur = {"moved": _normal(2000, 1.0, seed=5), "same": _normal(2000, seed=6)}
    result = dataset_drift(ref, cur, config=DriftConfig(share_threshold=share_threshold))
    assert [c.drifted for c in result.columns] == [True, False]
    assert (result.share, result.threshold, result.drifted) == (0.5, share_threshold, drifted)


def test_metrics_name_every_score_of_every_column() -> None:
    ref = {"x": _normal(500), "c": _cats(500, [0.5, 0.3, 0.2])}
    cur = {"x": _normal(500, 2.0, seed=1), "c": _cats(500, [0.5, 0.3, 0.2], seed=2)}
    metrics = dataset_drift(ref, cur).metrics()
    assert {k: metrics[k] for k in ("drift.share", "drift.dataset", "drift.n_drifted")} == {
        "drift.share": 0.5,
        "drift.dataset": 1.0,
        "drift.n_drifted": 1.0,
    }
    assert metrics["feature.x.drifted"] == 1.0
    assert metrics["feature.c.drifted"] == 0.0
    expected = {f"feature.x.{s}" for s in ("ks", "ks_p_value", "wasserstein", "psi",
                                           "jensenshannon", "drifted")}  # fmt: skip
    expected |= {f"feature.c.{s}" for s in ("chi2", "chi2_p_value", "psi", "jensenshannon",
                                            "new_categories", "drifted")}  # fmt: skip
    assert {k for k in metrics if k.startswith("feature.")} == expected
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())


# -- configuration -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rule", "method", "threshold"),
    [
        (ColumnRule(method="psi", threshold=0.05), "psi", 0.05),
        (ColumnRule(method="ks"), "ks", 0.01),  # p-value tests default to the config's alpha
        (ColumnRule(method="wasserstein"), "wasserstein", 0.3),  # the configured threshold
        (ColumnRule(method="jensenshannon"), "jensenshannon", 0.1),  # the test's default
    ],
    ids=["method-and-threshold", "p-value-alpha", "configured-distance", "test-default"],
)
def test_a_column_rule_picks_the_method_and_threshold(
    rule: ColumnRule, method: str, threshold: float
) -> None:
    config = DriftConfig(alpha=0.01, numeric_distance_threshold=0.3, columns={"x": rule})
    result = column_drift("x", _normal(5000), _normal(5000, 0.2, seed=1), kind="numeric",
                          config=config)  # fmt: skip
    assert (result.method, result.threshold) == (method, threshold)
    if method == "ks":
        assert result.p_value == result.scores["ks_p_value"]
        assert result.drifted is (result.scores["ks_p_value"] < 0.01)
    else:
        assert result.drifted is (result.scores[method] >= threshold)


def test_the_config_loads_from_plain_data_and_rejects_typos() -> None:
    config = DriftConfig.model_validate(
        {"share_threshold": 0.3, "columns": {"age": {"method": "ks", "threshold": 0.01}}}
    )
    assert config.columns["age"] == ColumnRule(method="ks", threshold=0.01)
    with pytest.raises(ValidationError, match="share_treshold"):
        DriftConfig.model_validate({"share_treshold": 0.3})
    with pytest.raises(ValidationError, match="alpha"):
        DriftConfig(alpha=1.5)
    with pytest.raises(ValidationError, match="threshold"):
        ColumnRule(method="psi", threshold=-1)


@pytest.mark.parametrize(
    ("config", "kind", "match"),
    [
        (DriftConfig(columns={"x": ColumnRule(method="kolmogorov")}), "numeric",
         r"Unknown drift test 'kolmogorov' in the rule for column 'x'; the known tests are "
         r"\['chi2', 'jensenshannon', 'ks', 'psi', 'wasserstein'\]"),
        (DriftConfig(columns={"x": ColumnRule(method="chi2")}), "numeric",
         r"Drift test 'chi2' in the rule for column 'x' does not apply to numeric columns; "
         r"the tests for numeric columns are \['jensenshannon', 'ks', 'psi', 'wasserstein'\]"),
        (DriftConfig(numeric_distance="energy"), "numeric",
         r"Unknown drift test 'energy' in the drift config's 'numeric_distance'"),
        (DriftConfig(categorical_test="ks"), "categorical",
         r"Drift test 'ks' in the drift config's 'categorical_test' does not apply"),
    ],
    ids=["unknown-rule", "wrong-kind-rule", "unknown-default", "wrong-kind-default"],
)  # fmt: skip
def test_unknown_or_unfit_methods_are_refused(config: DriftConfig, kind: str, match: str) -> None:
    values = _normal(100) if kind == "numeric" else _cats(100, [0.5, 0.3, 0.2])
    with pytest.raises(InvalidInputError, match=match):
        column_drift("x", values, values, kind=kind, config=config)


def test_rules_for_columns_the_reference_lacks_are_ignored() -> None:
    """One config serves the features and the predictions."""
    config = DriftConfig(columns={"age": ColumnRule(method="psi")})
    ref, cur = {"prediction": _normal(100)}, {"prediction": _normal(100, seed=3)}
    (column,) = dataset_drift(ref, cur, config=config).columns
    assert column.method == "ks"


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="kind of column 'x' must be one of"):
        column_drift("x", _normal(10), _normal(10), kind="text")


# -- kinds, missing values, columns ----------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (np.array([1.5, 2.0]), "numeric"),
        (np.array([1, 2]), "numeric"),
        (np.array(["2024-01-01", "2024-01-02"], dtype="datetime64[ns]"), "numeric"),
        (np.array([True, False]), "categorical"),
        (np.array(["a", "b"], dtype=object), "categorical"),
        (np.array([1, None, 2.5], dtype=object), "numeric"),
        (np.array([1, "a"], dtype=object), "categorical"),
        (np.array([True, None], dtype=object), "categorical"),
        (np.array([None, None], dtype=object), "categorical"),
    ],
    ids=["float", "int", "datetime", "bool", "text", "object-numbers", "mixed", "object-bools",
         "all-missing"],
)  # fmt: skip
def test_kinds_are_inferred_from_the_reference(values: np.ndarray, kind: str) -> None:
    assert infer_kind(values) == kind


def test_missing_values_are_dropped_and_not_counted() -> None:
    ref, cur = _normal(1000), _normal(800, 0.1, seed=2)
    holes = np.concatenate([cur, [np.nan, np.inf, -np.inf]])
    with_holes = column_drift("x", ref, holes, kind="numeric")
    clean = column_drift("x", ref, cur, kind="numeric")
    assert with_holes == clean
    assert (with_holes.n_reference, with_holes.n_current) == (1000, 800)
    cats = np.array(["a", None, "b", float("nan"), "a"], dtype=object)
    result = column_drift("c", cats, cats, kind="categorical")
    assert (result.n_reference, result.scores["chi2_p_value"]) == (3, 1.0)


def test_datetimes_are_tested_as_numbers_of_nanoseconds() -> None:
    start = np.datetime64("2024-01-01T00:00:00", "ns")
    ref = start + (np.arange(500) * 60_000_000_000)
    cur = np.append(ref[:250] + np.timedelta64(1, "D"), np.datetime64("NaT"))
    result = column_drift("when", ref, cur, kind="datetime")
    nanoseconds = ref.view(np.int64).astype(float), cur[:-1].view(np.int64).astype(float)
    assert result.scores["ks"] == ks_test(*nanoseconds).statistic
    assert (result.kind, result.n_current, result.drifted) == ("numeric", 250, True)


def test_integers_logged_live_match_text_in_the_reference() -> None:
    ref = np.array(["1", "2", "3"] * 100, dtype=object)
    cur = np.array([1, 2, 3] * 100, dtype=object)
    result = column_drift("code", ref, cur, kind="categorical")
    assert (result.scores["chi2"], result.scores["new_categories"]) == (0.0, 0.0)


def test_numeric_columns_with_text_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="'x' is tested as numeric but its current data"):
        column_drift("x", _normal(10), np.array(["1.5", "n/a"], dtype=object), kind="numeric")


def test_an_empty_column_cannot_be_tested_alone_and_is_skipped_in_a_data_set() -> None:
    empty = np.full(20, np.nan)
    with pytest.raises(InvalidInputError, match="'x' has no present values in the current data"):
        column_drift("x", _normal(20), empty, kind="numeric")
    result = dataset_drift({"x": _normal(20), "y": _normal(20)}, {"x": empty, "y": _normal(20)})
    assert ([c.column for c in result.columns], result.skipped) == (["y"], ("x",))
    assert result.metrics()["drift.n_skipped"] == 1.0


def test_columns_only_in_the_current_data_are_ignored() -> None:
    result = dataset_drift({"x": _normal(50)}, {"x": _normal(50), "extra": _normal(50)})
    assert [c.column for c in result.columns] == ["x"]
    with pytest.raises(InvalidInputError, match="shares no column with the reference"):
        dataset_drift({"x": _normal(50)}, {"y": _normal(50)})


def test_prediction_drift_is_dataset_drift_on_predictions() -> None:
    expected = np.array([0, 1] * 500)
    logged = np.array([1] * 700 + [0] * 300, dtype=object)
    result = dataset_drift({"prediction": expected}, {"prediction": logged},
                           kinds={"prediction": "categorical"})  # fmt: skip
    (column,) = result.columns
    assert (column.method, column.drifted) == ("psi", True)


# -- the registry ------------------------------------------------------------------------------
def test_the_builtin_registry_is_immutable() -> None:
    tests = builtin_tests()
    assert sorted(tests) == ["chi2", "jensenshannon", "ks", "psi", "wasserstein"]
    with pytest.raises(TypeError):
        tests["ks"] = tests["psi"]  # type: ignore[index]


def _mean_shift(reference: np.ndarray, current: np.ndarray) -> TestResult:
    return TestResult(float(abs(current.mean() - reference.mean()) / reference.std()), None)


MEAN_SHIFT = DriftTest("mean_shift", frozenset({"numeric"}), "distance", 0.2, _mean_shift)


def test_a_registered_test_is_computed_and_can_decide() -> None:
    tests = {**builtin_tests(), "mean_shift": MEAN_SHIFT}
    ref, cur = _normal(4000), np.append(_normal(4000, 0.5, seed=3), np.nan)
    config = DriftConfig(columns={"x": ColumnRule(method="mean_shift")})
    result = column_drift("x", ref, cur, kind="numeric", config=config, tests=tests)
    assert result.scores["mean_shift"] == _mean_shift(ref, cur[:-1]).statistic  # NaN dropped
    assert (result.method, result.threshold, result.drifted) == ("mean_shift", 0.2, True)


def test_a_registered_categorical_test_gets_present_values_as_text() -> None:
    seen: list[np.ndarray] = []

    def record(reference: np.ndarray, current: np.ndarray) -> TestResult:
        seen.extend((reference, current))
        return TestResult(0.0, None)

    tests = {**builtin_tests(), "rec": DriftTest("rec", frozenset({"categorical"}), "distance",
                                                 0.1, record)}  # fmt: skip
    column_drift("c", np.array([1, None, 2], dtype=object), np.array(["x", None], dtype=object),
                 kind="categorical", tests=tests)  # fmt: skip
    assert [s.tolist() for s in seen] == [["1", "2"], ["x"]]


def test_a_test_that_returns_something_else_is_refused() -> None:
    broken = DriftTest("broken", frozenset({"numeric"}), "distance", 0.1,
                       lambda r, c: 0.5)  # type: ignore[arg-type,return-value]  # fmt: skip
    with pytest.raises(InvalidInputError, match="'broken' returned float; it must return"):
        column_drift("x", _normal(10), _normal(10), kind="numeric",
                     tests={**builtin_tests(), "broken": broken})  # fmt: skip


@pytest.mark.parametrize("name", sorted(builtin_tests()))
def test_every_builtin_test_passes_the_conformance_check(name: str) -> None:
    check_detector(builtin_tests()[name])


@pytest.mark.parametrize(
    ("test", "match"),
    [
        (dataclasses.replace(MEAN_SHIFT, kinds=frozenset({"text"})), "kinds must be"),
        (dataclasses.replace(MEAN_SHIFT, default_threshold=5.0),
         r"mean_shift \(numeric\): a shifted sample gives distance .* expected at least 5.0"),
        (dataclasses.replace(MEAN_SHIFT, score="p_value"), "p_value must be a float in"),
        (dataclasses.replace(MEAN_SHIFT, func=lambda r, c: TestResult(math.nan, None)),
         "statistic must be a finite float"),
        (dataclasses.replace(MEAN_SHIFT, func=lambda r, c: TestResult(float(len(r) * 0), 0.5)),
         "a distance test returns p_value=None"),
    ],
    ids=["bad-kind", "misses-drift", "no-p-value", "nan", "p-value-on-a-distance"],
)  # fmt: skip
def test_the_conformance_check_names_the_broken_rule(test: DriftTest, match: str) -> None:
    check_detector(MEAN_SHIFT)
    with pytest.raises(AssertionError, match=match):
        check_detector(test)


def test_the_conformance_check_catches_tests_that_change_their_input() -> None:
    def sorts_in_place(reference: np.ndarray, current: np.ndarray) -> TestResult:
        current.sort()
        return _mean_shift(reference, current)

    test = dataclasses.replace(MEAN_SHIFT, func=sorts_in_place)
    with pytest.raises(AssertionError, match="changed its input arrays"):
        check_detector(test)
