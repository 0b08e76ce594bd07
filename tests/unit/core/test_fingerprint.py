"""Data fingerprints: stable across containers, sensitive to any change in values or schema."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from modelyard.core.entities import DataFingerprint
from modelyard.core.fingerprint import fingerprint
from modelyard.errors import InvalidInputError


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": [0.5, np.nan, -2.0, 3.25],
            "n": np.array([1, 2, 3, 4], dtype=np.int64),
            "s": ["a", None, "ccc", ""],
            "b": [True, False, True, True],
        }
    )


def test_table_fingerprint_has_rows_schema_and_hex_digest() -> None:
    fp = fingerprint(_frame())
    assert isinstance(fp, DataFingerprint)
    assert fp.rows == 4
    assert fp.schema == {"x": "float64", "n": "int64", "s": "string", "b": "bool"}
    assert len(fp.sha256) == 64
    assert int(fp.sha256, 16) >= 0


def test_same_data_same_hash_whatever_the_container() -> None:
    df = _frame()
    as_dict = {
        "x": df["x"].to_numpy(),
        "n": df["n"].to_numpy(),
        "s": np.array(["a", None, "ccc", ""], dtype=object),
        "b": df["b"].to_numpy(),
    }
    table = pa.table(
        {
            "x": pa.array([0.5, None, -2.0, 3.25], type=pa.float64()),
            "n": pa.array([1, 2, 3, 4], type=pa.int64()),
            "s": pa.array(["a", None, "ccc", ""], type=pa.string()),
            "b": pa.array([True, False, True, True]),
        }
    )
    expected = fingerprint(df)
    assert fingerprint(as_dict) == fingerprint(table) == fingerprint(df.copy()) == expected


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda df: df.assign(x=df["x"].replace(3.25, 3.5)), id="float-value"),
        pytest.param(lambda df: df.assign(n=df["n"].replace(4, 5)), id="int-value"),
        pytest.param(lambda df: df.assign(s=["a", None, "ccc", "d"]), id="string-value"),
        pytest.param(lambda df: df.assign(s=["a", "None", "ccc", ""]), id="none-vs-text"),
        pytest.param(lambda df: df.assign(s=["a", "", "ccc", ""]), id="none-vs-empty"),
        pytest.param(lambda df: df.assign(b=[True, False, True, False]), id="bool-value"),
        pytest.param(lambda df: df.rename(columns={"x": "y"}), id="renamed"),
        pytest.param(lambda df: df[["n", "x", "s", "b"]], id="reordered"),
        pytest.param(lambda df: df.astype({"n": "int32"}), id="int-dtype"),
        pytest.param(lambda df: df.astype({"x": "float32"}), id="float-dtype"),
        pytest.param(lambda df: df.iloc[:3], id="fewer-rows"),
        pytest.param(lambda df: df.drop(columns="b"), id="dropped-column"),
    ],
)
def test_any_change_changes_the_hash(change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    df = _frame()
    assert fingerprint(change(df)).sha256 != fingerprint(df).sha256


@pytest.mark.parametrize(
    ("left", "right"),
    [
        pytest.param(["ab", "c"], ["a", "bc"], id="boundaries"),
        pytest.param(["1"], [1], id="text-vs-int"),
        pytest.param([1], [1.0], id="int-vs-float"),
        pytest.param([True], [1], id="bool-vs-int"),
        pytest.param(["None"], [None], id="text-vs-none"),
        pytest.param([b"a"], ["a"], id="bytes-vs-text"),
        pytest.param(["\xff"], [b"\xff"], id="latin-vs-bytes"),
        pytest.param([""], [None], id="empty-vs-none"),
        pytest.param(["a", "b"], ["b", "a"], id="order"),
    ],
)
def test_object_values_never_collide(left: list[object], right: list[object]) -> None:
    a = fingerprint({"c": np.array(left, dtype=object)})
    b = fingerprint({"c": np.array(right, dtype=object)})
    assert a.schema == b.schema == {"c": "string"}
    assert a.sha256 != b.sha256


def test_missing_markers_are_one_value() -> None:
    # None from pyarrow, NaN from pandas, pd.NA from the nullable string dtype: all "missing".
    variants = [
        np.array(["a", None], dtype=object),
        np.array(["a", np.nan], dtype=object),
        np.array(["a", pd.NA], dtype=object),
    ]
    assert len({fingerprint({"s": v}).sha256 for v in variants}) == 1
    as_string_dtype = pd.DataFrame({"s": pd.array(["a", None], dtype="string")})
    assert fingerprint(as_string_dtype).sha256 == fingerprint({"s": variants[0]}).sha256


def test_every_nan_bit_pattern_hashes_alike() -> None:
    with np.errstate(invalid="ignore"):
        computed = np.array([1.0, 0.0]) / np.array([1.0, 0.0])  # 0/0: a negative NaN on x86
    assert fingerprint({"x": computed}) == fingerprint({"x": np.array([1.0, np.nan])})


def test_nullable_ints_match_their_float_form_across_containers() -> None:
    df = pd.DataFrame({"n": pd.array([1, None, 3], dtype="Int64")})
    table = pa.table({"n": pa.array([1, None, 3], type=pa.int64())})
    assert fingerprint(df) == fingerprint(table)
    assert fingerprint(df).schema == {"n": "float64"}


def test_datetimes_hash_by_instant_not_by_unit() -> None:
    seconds = np.array(["2024-01-01T00:00:00", "NaT"], dtype="datetime64[s]")
    nanos = seconds.astype("datetime64[ns]")
    assert fingerprint({"t": seconds}) == fingerprint({"t": nanos})
    later = np.array(["2024-01-01T00:00:01", "NaT"], dtype="datetime64[s]")
    assert fingerprint({"t": later}) != fingerprint({"t": seconds})


def test_tensor_fingerprint() -> None:
    x = np.arange(60, dtype=np.float64).reshape(2, 30)
    fp = fingerprint(x)
    assert fp.rows == 2
    assert fp.schema == {"tensor": "float64[N,30]"}
    assert fingerprint(x.copy()) == fp
    assert fingerprint(np.asfortranarray(x)) == fp
    assert fingerprint(x.reshape(30, 2)).sha256 != fp.sha256
    assert fingerprint(x.astype(np.float32)).sha256 != fp.sha256
    images = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    assert fingerprint(images).schema == {"tensor": "uint8[N,8,8,3]"}


def test_a_tensor_and_a_table_of_the_same_values_differ() -> None:
    x = np.arange(4, dtype=np.float64)
    assert fingerprint(x).sha256 != fingerprint({"tensor": x}).sha256


def test_empty_table() -> None:
    fp = fingerprint({})
    assert (fp.rows, fp.schema) == (0, {})
    assert fingerprint(pd.DataFrame({"a": pd.Series([], dtype="float64")})).rows == 0


def test_scalar_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match=r"Expected a table .* Got float instead"):
        fingerprint(3.0)


finite_floats = st.floats(allow_nan=False, allow_infinity=True, width=64)
columns = hnp.arrays(np.float64, st.integers(1, 50), elements=st.floats(allow_nan=True, width=64))
texts = st.lists(st.one_of(st.none(), st.text(max_size=8)), min_size=1, max_size=50)


@given(columns)
def test_float_hash_is_stable_across_containers(values: np.ndarray) -> None:
    df = pd.DataFrame({"v": values})
    assert fingerprint(df) == fingerprint({"v": values.copy()}) == fingerprint(pa.table(df))


@given(columns, st.data())
def test_float_hash_sees_a_single_changed_value(values: np.ndarray, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(values) - 1))
    new = data.draw(finite_floats)
    assume(np.isnan(values[i]) or np.float64(new).tobytes() != values[i].tobytes())
    changed = values.copy()
    changed[i] = new
    assert fingerprint({"v": changed}).sha256 != fingerprint({"v": values}).sha256


@given(texts)
def test_text_hash_is_stable_across_containers(values: list[str | None]) -> None:
    arr = np.array(values, dtype=object)
    table = pa.table({"s": pa.array(values, type=pa.string())})
    assert fingerprint({"s": arr}) == fingerprint(table) == fingerprint(pd.DataFrame({"s": arr}))


@given(texts, st.data())
def test_text_hash_sees_a_single_changed_value(
    values: list[str | None], data: st.DataObject
) -> None:
    i = data.draw(st.integers(0, len(values) - 1))
    new = data.draw(st.one_of(st.none(), st.text(max_size=8)))
    assume(new != values[i])
    changed = [*values[:i], new, *values[i + 1 :]]
    a = fingerprint({"s": np.array(values, dtype=object)})
    assert fingerprint({"s": np.array(changed, dtype=object)}).sha256 != a.sha256
