"""Reference profiles: exact statistics against numpy and pandas, seeded samples, round-trips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import modelyard.monitoring
from modelyard.errors import InvalidInputError, NotFoundError
from modelyard.monitoring import (
    ColumnProfile,
    ReferenceProfile,
    compute_profile,
    read_profile,
    read_reference_sample,
    write_profile,
)
from modelyard.monitoring.profile import QUANTILES

N = 2_000


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    x = rng.normal(10.0, 3.0, N)
    x[rng.random(N) < 0.1] = np.nan
    city = rng.choice(np.array(["paris", "rome", "oslo", "lima", "kyiv"], dtype=object), N)
    city[rng.random(N) < 0.05] = None
    return pd.DataFrame(
        {
            "x": x,
            "age": rng.integers(18, 90, N),
            "city": pd.Series(city, dtype=object),
            "flag": rng.random(N) < 0.3,
            "when": pd.to_datetime("2024-01-01") + pd.to_timedelta(rng.integers(0, 90, N), "D"),
        }
    )


def test_public_surface_is_pinned() -> None:
    assert sorted(modelyard.monitoring.__all__) == [
        "ColumnProfile",
        "Histogram",
        "ReferenceProfile",
        "compute_profile",
        "read_profile",
        "read_reference_sample",
        "write_profile",
    ]


def test_kinds_dtypes_and_counts(frame: pd.DataFrame) -> None:
    profile, _ = compute_profile(frame)
    assert profile.rows == N
    assert [(c.name, c.kind, c.dtype) for c in profile.columns] == [
        ("x", "numeric", "float64"),
        ("age", "numeric", "int64"),
        ("city", "categorical", "string"),
        ("flag", "boolean", "bool"),
        ("when", "datetime", "datetime64[ns]"),
    ]
    for col in profile.columns:
        assert col.count + col.missing == N
    assert profile.column("x").missing == int(frame["x"].isna().sum())
    assert profile.column("city").missing == int(frame["city"].isna().sum())


@pytest.mark.parametrize("column", ["x", "age"])
def test_numeric_statistics_match_numpy(frame: pd.DataFrame, column: str) -> None:
    col = compute_profile(frame)[0].column(column)
    values = frame[column].dropna().to_numpy()
    assert col.quantiles == {str(q): float(np.quantile(values, q)) for q in QUANTILES}
    assert col.min == values.min()
    assert col.max == values.max()
    assert col.mean == pytest.approx(values.mean())
    assert col.std == pytest.approx(values.std())
    assert col.n_unique == len(np.unique(values))
    assert type(col.min) is (int if column == "age" else float)


def test_histogram_matches_numpy(frame: pd.DataFrame) -> None:
    col = compute_profile(frame, bins=13)[0].column("x")
    values = frame["x"].dropna().to_numpy()
    counts, edges = np.histogram(values, bins=13, range=(values.min(), values.max()))
    assert col.histogram is not None
    assert list(col.histogram.edges) == edges.tolist()
    assert list(col.histogram.counts) == counts.tolist()
    assert sum(col.histogram.counts) == col.count


def test_categories_match_pandas_value_counts(frame: pd.DataFrame) -> None:
    col = compute_profile(frame, top_categories=3)[0].column("city")
    counts = frame["city"].value_counts()
    expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    assert col.categories == dict(expected[:3])
    assert list(col.categories) == [k for k, _ in expected[:3]]
    assert col.other_count == sum(c for _, c in expected[3:])
    assert col.n_unique == len(counts)
    assert col.count == counts.sum()


def test_categories_tie_break_on_value() -> None:
    col = compute_profile({"c": ["b", "a", "c", "a", "b", "d"]}, top_categories=2)[0].column("c")
    assert list((col.categories or {}).items()) == [("a", 2), ("b", 2)]
    assert col.other_count == 2


def test_boolean_columns(frame: pd.DataFrame) -> None:
    profile, _ = compute_profile(frame)
    flag = profile.column("flag")
    assert flag.categories == {
        str(k): int(v) for k, v in frame["flag"].value_counts().sort_values(ascending=False).items()
    }
    nullable = pd.DataFrame({"b": pd.array([True, None, False, True], dtype="boolean")})
    col = compute_profile(nullable)[0].column("b")
    assert (col.kind, col.categories, col.missing) == ("boolean", {"True": 2, "False": 1}, 1)


def test_datetime_min_max_are_iso_strings(frame: pd.DataFrame) -> None:
    col = compute_profile(frame)[0].column("when")
    assert isinstance(col.min, str)
    assert pd.Timestamp(col.min) == frame["when"].min()
    assert pd.Timestamp(col.max) == frame["when"].max()
    assert col.n_unique == frame["when"].nunique()


@pytest.mark.parametrize(
    ("values", "missing"),
    [
        pytest.param(np.array([1.0, np.nan, 3.0, np.inf, -np.inf]), 3, id="nan-and-inf"),
        pytest.param([1.0, None, 3.0, None, 5.0], 2, id="none-in-list"),
        pytest.param(pd.array([1, None, 3, None, 5], dtype="Int64"), 2, id="pandas-nullable"),
        pytest.param(pd.array([1.5, pd.NA, 3, None, 5], dtype=object), 2, id="pd-na-object"),
    ],
)
def test_missing_numbers(values: object, missing: int) -> None:
    col = compute_profile(pd.DataFrame({"v": values}))[0].column("v")
    assert (col.kind, col.missing, col.count) == ("numeric", missing, 5 - missing)
    assert col.histogram is not None
    assert sum(col.histogram.counts) == col.count


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(["a", None, "b", np.nan], id="none-and-nan"),
        pytest.param(pd.array(["a", None, "b", None], dtype="string"), id="string-dtype"),
    ],
)
def test_missing_text(values: object) -> None:
    col = compute_profile(pd.DataFrame({"s": values}))[0].column("s")
    assert (col.kind, col.missing, col.categories) == ("categorical", 2, {"a": 1, "b": 1})


def test_constant_column() -> None:
    col = compute_profile({"k": np.full(10, 4.0)}, bins=4)[0].column("k")
    assert (col.min, col.max, col.std, col.n_unique) == (4.0, 4.0, 0.0, 1)
    assert col.histogram is not None
    assert col.histogram.edges == (3.5, 3.75, 4.0, 4.25, 4.5)
    assert sum(col.histogram.counts) == 10
    assert list(col.histogram.counts) == np.histogram(np.full(10, 4.0), bins=4)[0].tolist()


def test_span_beyond_float64_range() -> None:
    col = compute_profile({"x": np.array([-1.7e308, 0.0, 1.7e308])}, bins=4)[0].column("x")
    assert col.histogram is not None
    assert col.histogram.edges == pytest.approx((-1.7e308, -8.5e307, 0.0, 8.5e307, 1.7e308))
    assert col.histogram.counts == (1, 0, 1, 1)
    assert col.std is None


def test_all_missing_numeric_column() -> None:
    col = compute_profile({"v": np.full(3, np.nan)})[0].column("v")
    assert (col.count, col.missing, col.n_unique) == (0, 3, 0)
    assert (col.min, col.max, col.mean, col.quantiles, col.histogram) == (None,) * 5


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(pd.DataFrame({"a": pd.Series([], dtype="float64")}), id="no-rows"),
        pytest.param({}, id="no-columns"),
        pytest.param(np.empty((0, 3)), id="empty-array"),
    ],
)
def test_empty_data_is_rejected(data: object) -> None:
    with pytest.raises(InvalidInputError, match="Cannot profile an empty data set"):
        compute_profile(data)


@pytest.mark.parametrize(
    ("param", "value"),
    [("bins", 0), ("top_categories", 0), ("sample_rows", -1), ("seed", -1), ("bins", 2.5)],
)
def test_bad_parameters_are_rejected(param: str, value: object) -> None:
    with pytest.raises(InvalidInputError, match=f"The '{param}' parameter of compute_profile"):
        compute_profile({"a": [1.0, 2.0]}, **{param: value})  # type: ignore[arg-type]


def test_two_dimensional_arrays_get_numbered_columns() -> None:
    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    profile, sample = compute_profile(x)
    assert [c.name for c in profile.columns] == ["0", "1", "2"]
    assert profile.column("2").max == 11.0
    assert list(sample) == ["0", "1", "2"]
    with pytest.raises(InvalidInputError, match="must be two-dimensional"):
        compute_profile(np.arange(3.0))


def test_sample_is_seeded_bounded_and_in_order() -> None:
    data = {"i": np.arange(1_000), "s": np.array([f"r{i}" for i in range(1_000)], dtype=object)}
    profile, sample = compute_profile(data, sample_rows=100, seed=3)
    again = compute_profile(data, sample_rows=100, seed=3)[1]
    other = compute_profile(data, sample_rows=100, seed=4)[1]
    assert profile.sample_rows == 100
    assert profile.seed == 3
    assert len(sample["i"]) == len(sample["s"]) == 100
    np.testing.assert_array_equal(sample["i"], again["i"])
    assert not np.array_equal(sample["i"], other["i"])
    assert np.all(np.diff(sample["i"]) > 0)
    assert sample["s"].tolist() == [f"r{i}" for i in sample["i"]]
    expected = np.sort(np.random.default_rng(3).choice(1_000, 100, replace=False))
    np.testing.assert_array_equal(sample["i"], expected)


def test_sample_keeps_all_rows_when_fewer() -> None:
    profile, sample = compute_profile({"i": np.arange(10)}, sample_rows=100)
    assert profile.sample_rows == 10
    np.testing.assert_array_equal(sample["i"], np.arange(10))


def test_to_dict_is_json_safe_and_round_trips(frame: pd.DataFrame) -> None:
    frame["x"] = frame["x"] * 1e308  # overflows mean and std to inf: they become None
    profile, _ = compute_profile(frame)
    text = json.dumps(profile.to_dict(), allow_nan=False)
    assert ReferenceProfile.from_dict(json.loads(text)) == profile
    assert profile.column("x").std is None


def test_unknown_format_version_is_rejected(frame: pd.DataFrame) -> None:
    d = compute_profile(frame)[0].to_dict() | {"format_version": 99}
    with pytest.raises(InvalidInputError, match="format 99 is not supported"):
        ReferenceProfile.from_dict(d)


def test_column_lookup() -> None:
    profile, _ = compute_profile({"a": [1.0], "b": ["x"]})
    assert isinstance(profile.column("b"), ColumnProfile)
    with pytest.raises(NotFoundError, match="no column 'c'; it has 'a', 'b'"):
        profile.column("c")


def test_write_and_read_round_trip(frame: pd.DataFrame, tmp_path: Path) -> None:
    mixed = np.array(["a", None, 3, True] * (N // 4), dtype=object)
    numbers = np.array([1, None, 2.5, pd.NA] * (N // 4), dtype=object)
    frame = frame.assign(mixed=mixed, numbers=numbers)
    profile, sample = compute_profile(frame, sample_rows=500)
    write_profile(profile, sample, tmp_path / "ref")
    assert read_profile(tmp_path / "ref") == profile
    json.loads((tmp_path / "ref" / "profile.json").read_text(), parse_constant=_no_nan)
    table = read_reference_sample(tmp_path / "ref")
    assert isinstance(table, pa.Table)
    assert table.num_rows == 500
    assert table.column_names == [c.name for c in profile.columns]
    assert table.schema.field("city").type == pa.string()
    assert table.column("city").to_pylist() == sample["city"].tolist()
    as_text = {"a": "a", None: None, 3: "3", True: "True"}
    assert table.column("mixed").to_pylist() == [as_text[v] for v in sample["mixed"].tolist()]
    np.testing.assert_array_equal(table.column("x").to_numpy(), sample["x"])
    as_float = {1: 1.0, None: np.nan, 2.5: 2.5, pd.NA: np.nan}
    expected = [as_float[v] for v in sample["numbers"].tolist()]
    np.testing.assert_array_equal(table.column("numbers").to_numpy(), expected)
    assert table.column("age").to_pylist() == sample["age"].tolist()


def _no_nan(name: str) -> float:
    raise AssertionError(f"profile.json holds {name}")


def test_write_rejects_a_sample_of_other_columns(tmp_path: Path) -> None:
    profile, sample = compute_profile({"a": [1.0, 2.0]})
    with pytest.raises(InvalidInputError, match="differ from the profile's columns"):
        write_profile(profile, {"b": sample["a"]}, tmp_path)


def test_reading_a_missing_profile(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="No reference profile at"):
        read_profile(tmp_path)
    with pytest.raises(NotFoundError, match="No reference sample at"):
        read_reference_sample(tmp_path)


@settings(deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.integers(1, 300),
        elements=st.one_of(st.just(np.nan), st.floats(-1e12, 1e12)),
    ),
    st.integers(1, 30),
)
def test_random_floats_with_nans(values: np.ndarray, bins: int) -> None:
    col = compute_profile({"v": values}, bins=bins)[0].column("v")
    present = values[~np.isnan(values)]
    assert col.count == len(present)
    assert col.missing == len(values) - len(present)
    if len(present) == 0:
        assert col.histogram is None
        return
    assert col.quantiles == {str(q): float(np.quantile(present, q)) for q in QUANTILES}
    assert (col.min, col.max) == (present.min(), present.max())
    assert col.mean == pytest.approx(present.mean(), rel=1e-9, abs=1e-9)
    assert col.n_unique == len(np.unique(present))
    assert col.histogram is not None
    assert len(col.histogram.edges) == bins + 1
    assert sum(col.histogram.counts) == col.count
    if present.min() < present.max():
        expected, _ = np.histogram(present, bins=bins, range=(present.min(), present.max()))
        assert list(col.histogram.counts) == expected.tolist()
