"""Data-quality checks: each defect found and counted exactly, clean data left alone, the
thresholds' rules, the metrics, and the same answers for dicts, DataFrames and Arrow tables."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import FrozenInstanceError
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from modelyard.core.signature import ColumnSpec, Schema, Signature, TensorSpec
from modelyard.errors import InvalidInputError
from modelyard.monitoring import ReferenceProfile, compute_profile
from modelyard.monitoring.quality import (
    CHECK_NAMES,
    QualityCheck,
    QualityConfig,
    QualityReport,
    check_quality,
)

N = 2_000
CITIES = np.array(["paris", "rome", "oslo", "lima", "kyiv"], dtype=object)


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(10.0, 3.0, n),
            "age": rng.integers(18, 90, n),
            "city": pd.Series(rng.choice(CITIES, n), dtype=object),
            "flag": rng.random(n) < 0.3,
            "when": pd.to_datetime("2024-01-01") + pd.to_timedelta(rng.integers(0, 90, n), "D"),
        }
    )


@pytest.fixture(scope="module")
def reference() -> tuple[ReferenceProfile, Signature]:
    ref = _frame(N, 1)
    profile, _ = compute_profile(ref)
    return profile, Signature.infer(ref)


@pytest.fixture
def current() -> pd.DataFrame:
    return _frame(N, 2)


def _failed(report: QualityReport) -> list[tuple[str, str | None]]:
    return [(c.name, c.column) for c in report.failed()]


def _check(report: QualityReport, name: str, column: str | None) -> QualityCheck:
    (found,) = [c for c in report.checks if (c.name, c.column) == (name, column)]
    return found


# -- clean data -------------------------------------------------------------------------------
def test_clean_data_passes_every_check(
    reference: tuple[ReferenceProfile, Signature], current: pd.DataFrame
) -> None:
    profile, signature = reference
    report = check_quality(current, profile, signature=signature)
    assert report.passed, report.failed()
    assert report.failed() == ()
    assert report.n_rows == N
    assert [(c.name, c.column) for c in report.checks] == [
        ("schema", None),
        ("duplicate_rows", None),
        ("missing", "x"), ("type_mismatch", "x"), ("out_of_range", "x"),
        ("missing", "age"), ("type_mismatch", "age"), ("out_of_range", "age"),
        ("missing", "city"), ("type_mismatch", "city"), ("unseen_category", "city"),
        ("missing", "flag"), ("type_mismatch", "flag"), ("unseen_category", "flag"),
        ("missing", "when"), ("type_mismatch", "when"), ("out_of_range", "when"),
    ]
    assert {c.name for c in report.checks} == set(CHECK_NAMES)


def test_clean_csv_round_trip_passes(
    reference: tuple[ReferenceProfile, Signature], current: pd.DataFrame, tmp_path: Path
) -> None:
    """A CSV brings dates back as text and categories as pandas strings: still clean."""
    path = tmp_path / "current.csv"
    current.to_csv(path, index=False)
    report = check_quality(pd.read_csv(path), reference[0], signature=reference[1])
    assert report.passed, report.failed()


# -- each defect, found and counted -----------------------------------------------------------
def _set(column: str, rows: slice, value: object, *, as_object: bool = True
         ) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def mutate(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        if as_object:
            df[column] = df[column].astype(object)
        df.loc[df.index[rows], column] = value
        return df

    return mutate


def _drop(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["age"])


def _add_id(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(request_id=np.arange(len(df)))


def _repeat(df: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([df, df.iloc[:250]], ignore_index=True)


def _set_list(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    city = df["city"].to_numpy(dtype=object).copy()
    city[:2] = [[1], {"a": 1}]
    return df.assign(city=city)


@pytest.mark.parametrize(
    ("mutate", "failed", "value", "detail"),
    [
        (_set("x", slice(0, 10), np.nan, as_object=False), ("missing", "x"), 10 / N,
         "10 of 2,000 missing; the signature allows none"),
        (_set("x", slice(0, 7), np.inf, as_object=False), ("missing", "x"), 7 / N,
         "7 of 2,000 missing"),
        (_set("x", slice(0, 5), "abc"), ("type_mismatch", "x"), 5 / N,
         "5 of 2,000 not readable as float, e.g. 'abc'"),
        (_set("age", slice(0, 3), 30.5), ("type_mismatch", "age"), 3 / N,
         "3 of 2,000 not readable as integer, e.g. 30.5"),
        (_set("when", slice(0, 4), "soon"), ("type_mismatch", "when"), 4 / N,
         "not readable as datetime, e.g. 'soon'"),
        (_set("flag", slice(0, 6), "maybe"), ("type_mismatch", "flag"), 6 / N,
         "not readable as boolean, e.g. 'maybe'"),
        (_set_list, ("type_mismatch", "city"), 2 / N, "e.g. [1], {'a': 1}"),
        (_set("x", slice(0, 100), 1e6, as_object=False), ("out_of_range", "x"), 100 / N,
         "100 of 2,000 outside ["),
        (_set("when", slice(0, 60), pd.Timestamp("2030-05-01"), as_object=False),
         ("out_of_range", "when"), 60 / N, "e.g. 2030-05-01"),
        (_set("city", slice(0, 50), "tokyo"), ("unseen_category", "city"), 50 / N,
         "50 of 2,000 outside the 5 reference categories, in 1: 'tokyo'"),
        (_drop, ("schema", None), 1.0, "missing: ['age']"),
        (_add_id, ("schema", None), 1.0, "unexpected: ['request_id']"),
        (_repeat, ("duplicate_rows", None), 250 / (N + 250), "250 of 2,250 rows repeat"),
    ],
    ids=["nan", "inf-is-missing", "text-in-float", "fraction-in-int", "bad-date", "bad-bool",
         "non-scalar-text", "above-max", "date-after-range", "new-category", "absent-column",
         "extra-column", "duplicates"],
)
def test_each_defect_fails_exactly_its_check(
    reference: tuple[ReferenceProfile, Signature],
    current: pd.DataFrame,
    mutate: Callable[[pd.DataFrame], pd.DataFrame],
    failed: tuple[str, str | None],
    value: float,
    detail: str,
) -> None:
    profile, signature = reference
    report = check_quality(mutate(current), profile, signature=signature)
    assert _failed(report) == [failed]
    check = _check(report, *failed)
    assert check.value == pytest.approx(value, rel=1e-12)
    assert not check.passed
    assert detail in check.detail


def test_an_absent_column_counts_as_missing_in_the_metrics(
    reference: tuple[ReferenceProfile, Signature], current: pd.DataFrame
) -> None:
    report = check_quality(current.drop(columns=["age"]), reference[0], signature=reference[1])
    metrics = report.metrics()
    assert metrics["feature.age.missing_rate"] == 1.0
    assert metrics["quality.missing_rate"] == pytest.approx(1 / 5)
    assert metrics["quality.schema_violations"] == 1.0
    assert not any(c.column == "age" for c in report.checks)


# -- the thresholds' rules --------------------------------------------------------------------
@pytest.fixture(scope="module")
def gappy() -> ReferenceProfile:
    """x is missing in exactly 10% of the reference rows."""
    x = np.random.default_rng(3).normal(size=1000)
    x[:100] = np.nan
    return compute_profile({"x": x})[0]


@pytest.mark.parametrize(
    ("missing", "config", "passed", "threshold"),
    [
        (149, None, True, 0.15),
        (151, None, False, 0.15),
        (151, QualityConfig(missing_margin=0.06), True, 0.16),
        (151, QualityConfig(columns={"x": {"missing_margin": 0.06}}), True, 0.16),
        (151, QualityConfig(columns={"x": {"max_missing_rate": 0.2}}), True, 0.2),
        (99, QualityConfig(columns={"x": {"max_missing_rate": 0.05}}), False, 0.05),
    ],
    ids=["within-margin", "over-margin", "wider-margin", "column-margin", "column-limit",
         "limit-below-reference"],
)
def test_missing_is_judged_against_the_reference_rate_plus_a_margin(
    gappy: ReferenceProfile, missing: int, config: QualityConfig | None, passed: bool,
    threshold: float,
) -> None:
    x = np.random.default_rng(4).normal(size=1000)
    x[:missing] = np.nan
    check = _check(check_quality({"x": x}, gappy, config=config), "missing", "x")
    assert (check.passed, check.threshold) == (passed, pytest.approx(threshold, rel=1e-12))
    assert check.value == missing / 1000


def test_a_signature_without_nulls_allows_no_missing_value(gappy: ReferenceProfile) -> None:
    strict = Signature(Schema("columns", columns=(ColumnSpec("x", "float64", nullable=False),)))
    x = np.ones(1000)
    x[0] = np.nan
    check = _check(check_quality({"x": x}, gappy, signature=strict), "missing", "x")
    assert (check.value, check.threshold, check.passed) == (0.001, 0.0, False)
    assert "the signature allows none" in check.detail


def test_out_of_range_allows_what_a_reference_of_its_size_would_show() -> None:
    profile, _ = compute_profile({"x": np.arange(99.0)})  # count 99: 2 / (99 + 1) = 2%
    rows = np.full(1000, 50.0)
    rows[:30] = 1000.0  # 3% out: over 1% + 2%
    check = _check(check_quality({"x": rows}, profile), "out_of_range", "x")
    assert check.threshold == pytest.approx(0.03, rel=1e-12)
    assert (check.value, check.passed) == (0.03, True)
    rows[30] = -1.0
    check = _check(check_quality({"x": rows}, profile), "out_of_range", "x")
    assert (check.value, check.passed) == (0.031, False)
    assert "lowest -1, highest 1000" in check.detail


def test_out_of_range_is_a_share_of_the_values_present() -> None:
    profile, _ = compute_profile({"x": np.arange(1000.0)})
    rows = np.full(100, np.nan)
    rows[:10] = 5000.0  # 10 values present, all out of range
    report = check_quality({"x": rows}, profile, config=QualityConfig(missing_margin=1.0))
    assert _check(report, "out_of_range", "x").value == 1.0
    assert report.metrics()["feature.x.out_of_range_rate"] == 1.0
    assert report.metrics()["feature.x.missing_rate"] == 0.9


def test_unseen_categories_allow_the_reference_share_beyond_its_kept_categories() -> None:
    # 7 categories; the profile keeps 3 (a, b, c) and counts 110 values as other.
    counts = {"a": 500, "b": 300, "c": 90, "d": 60, "e": 40, "f": 9, "g": 1}
    values = np.array([k for k, c in counts.items() for _ in range(c)], dtype=object)
    profile, _ = compute_profile({"c": values}, top_categories=3)
    col = profile.column("c")
    assert (col.categories, col.other_count) == ({"a": 500, "b": 300, "c": 90}, 110)
    baseline = 110 / 1000
    known_rare = np.array(["a"] * 890 + ["d"] * 110, dtype=object)  # 11%: what the ref had
    check = _check(check_quality({"c": known_rare}, profile), "unseen_category", "c")
    assert (check.value, check.passed) == (0.11, True)
    assert check.threshold == pytest.approx(baseline, rel=1e-12)
    assert "reference beyond them: 11.00%" in check.detail
    more = np.array(["a"] * 880 + ["zzz"] * 120, dtype=object)
    check = _check(check_quality({"c": more}, profile), "unseen_category", "c")
    assert (check.value, check.passed) == (0.12, False)


def test_categories_seen_once_estimate_the_chance_of_a_new_one() -> None:
    """Good-Turing: with 20 of 200 reference values in categories seen once, about 10% of new
    values are expected to be in categories never seen."""
    values = np.array(["a"] * 180 + [f"rare{i}" for i in range(20)], dtype=object)
    profile, _ = compute_profile({"c": values})
    assert profile.column("c").other_count == 0
    new = np.array(["a"] * 91 + [f"new{i}" for i in range(9)], dtype=object)
    check = _check(check_quality({"c": new}, profile), "unseen_category", "c")
    assert check.threshold == pytest.approx(0.1, rel=1e-12)
    assert (check.value, check.passed) == (0.09, True)
    assert check.detail.endswith(", ...; reference beyond them: 10.00%")


def test_integers_read_back_as_floats_match_their_categories() -> None:
    """A CSV column of codes with a gap reads as floats (3.0); the reference kept '3'."""
    profile, _ = compute_profile({"code": np.array(["1", "2", "3"] * 10, dtype=object)})
    report = check_quality({"code": np.array([1.0, 3.0, np.nan, 2.0])}, profile)
    assert _check(report, "unseen_category", "code").value == 0.0
    assert _check(report, "missing", "code").value == 0.25


@pytest.mark.parametrize(
    ("values", "missing", "mismatch"),
    [
        ([1.0, None, 2, np.nan, 7], 2, 0),
        ([1.0, pd.NA, 2, 3, 4], 1, 0),
        ([1.0, "2", "abc", None, "4e1"], 1, 1),
        ([1.0, float("inf"), "-inf", 2**80, 5], 2, 0),
        ([1.0, np.datetime64("2024-01-01"), [1], {"a": 2}, 5], 0, 3),
    ],
    ids=["json-numbers", "pandas-na", "text", "infinite-and-huge", "non-numbers"],
)
def test_numbers_held_as_objects(values: list[object], missing: int, mismatch: int) -> None:
    profile, _ = compute_profile({"x": np.arange(10.0)})
    column = np.empty(len(values), dtype=object)
    column[:] = values
    metrics = check_quality({"x": column}, profile).metrics()
    assert metrics["feature.x.missing_rate"] == missing / len(values)
    assert metrics["feature.x.type_mismatch_rate"] == mismatch / len(values)


def test_booleans_as_text_and_numbers() -> None:
    profile, _ = compute_profile({"b": np.array([True, False] * 50)})
    data = np.array([True, "false", "TRUE", 0, 1.0, "yes", None, np.False_], dtype=object)
    report = check_quality({"b": data}, profile)
    assert _check(report, "type_mismatch", "b").value == 1 / 8
    assert _check(report, "missing", "b").value == 1 / 8
    assert _check(report, "unseen_category", "b").value == 0.0


def test_booleans_unseen_in_the_reference() -> None:
    profile, _ = compute_profile({"b": np.ones(100, dtype=bool)})
    check = _check(check_quality({"b": np.array([True, False, False, True])}, profile),
                   "unseen_category", "b")
    assert (check.value, check.passed) == (0.5, False)
    assert "'False'" in check.detail


def test_datetimes_in_text_and_time_zones() -> None:
    when = pd.date_range("2024-01-01", periods=100, freq="D").to_numpy()
    profile, _ = compute_profile({"when": when})
    text = np.array(["2024-02-01", "2024-02-01T12:30:00", "2024-01-15T10:00:00+02:00",
                     "1 Feb 2024", 5, None, "2031-01-01"], dtype=object)
    report = check_quality({"when": text}, profile)
    mismatch = _check(report, "type_mismatch", "when")
    assert mismatch.value == 2 / 7
    assert "'1 Feb 2024', 5" in mismatch.detail
    assert _check(report, "out_of_range", "when").value == 1 / 4
    aware = pd.DataFrame({"when": pd.Series(when[:10]).dt.tz_localize("UTC")})
    assert check_quality(aware, profile).passed


def test_ignore_and_allow_columns(
    reference: tuple[ReferenceProfile, Signature], current: pd.DataFrame
) -> None:
    profile, signature = reference
    data = current.drop(columns=["when"]).assign(request_id=1, label=0)
    config = QualityConfig(ignore_columns=("when", "request_id"), allow_extra_columns=True)
    report = check_quality(data, profile, signature=signature, config=config)
    assert report.passed, report.failed()
    schema = _check(report, "schema", None)
    assert (schema.value, schema.detail) == (0.0, "unexpected: ['label'] (allowed)")
    assert not any(c.column == "when" for c in report.checks)
    assert "feature.when.missing_rate" not in report.metrics()


def test_a_tensor_signature_falls_back_to_the_profile_columns(
    reference: tuple[ReferenceProfile, Signature], current: pd.DataFrame
) -> None:
    tensor = Signature(Schema("tensors", tensors=(TensorSpec("input", "float64", (-1, 5)),)))
    report = check_quality(current, reference[0], signature=tensor)
    assert report.passed
    assert _check(report, "missing", "x").threshold == 0.05  # the profile's rule, no signature


def test_a_signature_column_without_profile_gets_missing_and_type_checks() -> None:
    profile, _ = compute_profile({"x": np.arange(10.0)})
    sig = Signature(Schema("columns", columns=(ColumnSpec("x", "float64", True),
                                               ColumnSpec("n", "int64", True))))
    report = check_quality({"x": np.arange(10.0), "n": np.array([1.0, 2.5] * 5)}, profile,
                           signature=sig)
    assert [(c.name, c.column) for c in report.checks if c.column == "n"] == [
        ("missing", "n"), ("type_mismatch", "n")]
    assert _failed(report) == [("type_mismatch", "n")]


# -- metrics ----------------------------------------------------------------------------------
def test_metrics_are_the_rates_behind_the_checks(
    reference: tuple[ReferenceProfile, Signature], current: pd.DataFrame
) -> None:
    profile, signature = reference
    data = current.copy()
    data.loc[:19, "x"] = np.nan
    data.loc[20:29, "x"] = 1e9
    data["city"] = data["city"].astype(object)
    data.loc[:39, "city"] = "tokyo"
    data.loc[40:44, "city"] = None
    data = pd.concat([data, data.iloc[100:110]], ignore_index=True)
    n = len(data)
    metrics = check_quality(data, profile, signature=signature).metrics()
    assert metrics["quality.missing_rate"] == pytest.approx(25 / (5 * n), rel=1e-12)
    assert metrics["quality.type_mismatch_rate"] == 0.0
    # Range over present values of x, age and when; categories over city and flag.
    assert metrics["quality.out_of_range_rate"] == pytest.approx(10 / (3 * n - 20), rel=1e-12)
    assert metrics["quality.unseen_category_rate"] == pytest.approx(40 / (2 * n - 5), rel=1e-12)
    assert metrics["quality.duplicate_rate"] == pytest.approx(10 / n, rel=1e-12)
    assert metrics["quality.schema_violations"] == 0.0
    assert metrics["feature.x.missing_rate"] == pytest.approx(20 / n, rel=1e-12)
    assert metrics["feature.x.out_of_range_rate"] == pytest.approx(10 / (n - 20), rel=1e-12)
    assert metrics["feature.city.unseen_category_rate"] == pytest.approx(40 / (n - 5), rel=1e-12)
    per_column = {k for k in metrics if k.startswith("feature.")}
    assert per_column == {
        *(f"feature.{c}.{m}" for c in ("x", "age", "city", "flag", "when")
          for m in ("missing_rate", "type_mismatch_rate")),
        "feature.x.out_of_range_rate", "feature.age.out_of_range_rate",
        "feature.when.out_of_range_rate", "feature.city.unseen_category_rate",
        "feature.flag.unseen_category_rate",
    }


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from([0.0, -0.0, 1.5, float("nan")]),
            st.sampled_from(["a", "b", None]),
            st.integers(0, 2),
            st.booleans(),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_duplicates_and_missing_values_agree_with_pandas(
    rows: list[tuple[float, str | None, int, bool]],
) -> None:
    frame = pd.DataFrame(rows, columns=["f", "s", "i", "b"]).astype({"s": object})
    profile, _ = compute_profile(pd.DataFrame({"f": [0.0, 1.5], "s": ["a", "b"], "i": [0, 2],
                                               "b": [True, False]}).astype({"s": object}))
    metrics = check_quality(frame, profile).metrics()
    assert metrics["quality.duplicate_rate"] == pytest.approx(frame.duplicated().mean(),
                                                              rel=1e-12)
    for col in ("f", "s"):
        assert metrics[f"feature.{col}.missing_rate"] == pytest.approx(
            frame[col].isna().mean(), rel=1e-12)


# -- inputs -----------------------------------------------------------------------------------
def _dirty(current: pd.DataFrame) -> pd.DataFrame:
    data = current.copy()
    data.loc[:9, "x"] = np.nan
    data.loc[10:109, "age"] = 200
    data["city"] = data["city"].astype(object)
    data.loc[:29, "city"] = "tokyo"
    data.loc[30:34, "city"] = None
    return pd.concat([data, data.iloc[:200]], ignore_index=True).assign(extra=1)


@pytest.mark.parametrize(
    "convert",
    [
        lambda df: df,
        lambda df: {c: df[c].to_numpy() for c in df.columns},
        lambda df: pa.Table.from_pandas(df, preserve_index=False),
    ],
    ids=["dataframe", "dict-of-arrays", "arrow-table"],
)
def test_every_input_form_gives_the_same_report(
    reference: tuple[ReferenceProfile, Signature], current: pd.DataFrame,
    convert: Callable[[pd.DataFrame], object],
) -> None:
    profile, signature = reference
    data = _dirty(current)
    expected = check_quality(data, profile, signature=signature)
    assert _failed(expected) == [("schema", None), ("duplicate_rows", None), ("missing", "x"),
                                 ("out_of_range", "age"), ("missing", "city"),
                                 ("unseen_category", "city")]
    got = check_quality(convert(data), profile, signature=signature)
    assert got == expected
    assert got.metrics() == expected.metrics()


def test_pandas_extension_dtypes(reference: tuple[ReferenceProfile, Signature]) -> None:
    data = _frame(500, 5).astype({"age": "Int64", "city": "category", "flag": "boolean"})
    data.loc[0, "age"] = pd.NA
    data.loc[1, "flag"] = pd.NA
    report = check_quality(data, reference[0])
    assert report.passed
    assert report.metrics()["feature.age.missing_rate"] == 1 / 500
    assert report.metrics()["feature.flag.missing_rate"] == 1 / 500


def test_empty_data_passes_with_zero_rates(
    reference: tuple[ReferenceProfile, Signature], current: pd.DataFrame
) -> None:
    report = check_quality(current.iloc[:0], reference[0], signature=reference[1])
    assert (report.n_rows, report.passed) == (0, True)
    assert set(report.metrics().values()) == {0.0}


def test_duplicate_column_names_are_refused(reference: tuple[ReferenceProfile, Signature]
                                            ) -> None:
    data = pd.DataFrame([[1.0, 2.0]], columns=["x", "x"])
    with pytest.raises(InvalidInputError, match=r"duplicate column names \['x'\]"):
        check_quality(data, reference[0])


# -- config and report ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"missing_margin": -0.1}, "greater than or equal to 0"),
        ({"max_duplicate_rate": 1.5}, "less than or equal to 1"),
        ({"max_missing": 0.1}, "Extra inputs are not permitted"),
        ({"columns": {"x": {"missing_margin": 2}}}, "less than or equal to 1"),
        ({"columns": {"x": {"bogus": 1}}}, "Extra inputs are not permitted"),
    ],
    ids=["negative", "above-one", "unknown-field", "column-above-one", "column-unknown-field"],
)
def test_config_rejects_bad_thresholds(fields: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        QualityConfig.model_validate(fields)


def test_config_for_an_unknown_column_is_an_error(
    reference: tuple[ReferenceProfile, Signature], current: pd.DataFrame
) -> None:
    config = QualityConfig(columns={"agee": {"max_missing_rate": 0.1}})
    with pytest.raises(InvalidInputError, match=r"column\(s\) \['agee'\] that neither the data"):
        check_quality(current, reference[0], config=config)


def test_report_api_and_json(reference: tuple[ReferenceProfile, Signature],
                             current: pd.DataFrame) -> None:
    report = check_quality(_dirty(current), reference[0], signature=reference[1])
    assert not report.passed
    assert all(not c.passed for c in report.failed())
    doc = orjson.loads(orjson.dumps(report.to_dict()))
    assert doc["n_rows"] == report.n_rows
    assert doc["passed"] is False
    assert [c["name"] for c in doc["checks"]] == [c.name for c in report.checks]
    assert doc["metrics"] == report.metrics()
    again = QualityReport.from_dict(doc)
    assert (again, again.metrics()) == (report, report.metrics())
    with pytest.raises(FrozenInstanceError):
        report.checks[0].passed = True  # type: ignore[misc]


# -- speed ------------------------------------------------------------------------------------
def test_a_million_rows_by_twenty_columns_takes_well_under_a_few_seconds() -> None:
    rng = np.random.default_rng(0)
    n = 1_000_000
    cats = np.array([f"c{i}" for i in range(30)], dtype=object)
    data = {f"x{i}": rng.normal(size=n) for i in range(14)}
    data |= {f"c{i}": rng.choice(cats, n) for i in range(6)}
    profile, _ = compute_profile({k: v[:50_000] for k, v in data.items()})
    frame = pd.DataFrame(data)
    start = time.perf_counter()
    report = check_quality(frame, profile)
    elapsed = time.perf_counter() - start
    assert report.n_rows == n
    assert elapsed < 5.0  # measured 0.5 s on one core; generous for a busy CI machine
