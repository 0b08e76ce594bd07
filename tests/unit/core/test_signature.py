from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from modelyard.core.signature import ColumnSpec, Schema, Signature, TensorSpec, infer_schema
from modelyard.errors import SignatureError


@pytest.fixture
def table_sig() -> Signature:
    return Signature.infer(pd.DataFrame({"age": [31.0, 40.0], "n": [1, 2], "city": ["a", "b"]}))


def test_infer_columns(table_sig: Signature) -> None:
    assert table_sig.inputs == Schema(
        "columns",
        columns=(ColumnSpec("age", "float64"), ColumnSpec("n", "int64"),
                 ColumnSpec("city", "string")),
    )


def test_infer_tensor() -> None:
    schema = infer_schema(np.zeros((5, 3), dtype=np.float32))
    assert schema.tensors == (TensorSpec("input", "float32", (-1, 3)),)


def test_infer_nullable() -> None:
    schema = infer_schema({"x": [1.0, np.nan], "s": ["a", None]})
    assert [c.nullable for c in schema.columns] == [True, True]


@pytest.mark.parametrize(
    "data",
    [
        pd.DataFrame({"age": [1.5], "n": [3], "city": ["x"]}),
        {"age": [1.5], "n": [3], "city": ["x"]},
        [{"age": 1.5, "n": 3, "city": "x"}],
        pa.table({"age": [1.5], "n": [3], "city": ["x"]}),
        pd.DataFrame({"city": ["x"], "n": [3], "age": [1.5]}),  # any column order
    ],
    ids=["dataframe", "dict", "records", "arrow", "reordered"],
)
def test_validate_accepts_table_forms(table_sig: Signature, data: object) -> None:
    out = table_sig.validate_input(data)
    assert isinstance(out, dict)
    assert list(out) == ["age", "n", "city"]
    assert out["age"].dtype == np.float64


def test_safe_cast_int_to_float(table_sig: Signature) -> None:
    out = table_sig.validate_input({"age": [1, 2], "n": [3, 4], "city": ["x", "y"]})
    assert isinstance(out, dict)
    assert out["age"].dtype == np.float64


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"age": [1.0], "n": [1]}, r"missing column\(s\) \['city'\]"),
        ({"age": [1.0], "n": [1], "city": ["a"], "extra": [0]}, r"unknown column\(s\) \['extra'\]"),
        ({"age": [1.0], "n": [1.5], "city": ["a"]}, r"The column 'n' must be int64"),
        ({"age": ["old"], "n": [1], "city": ["a"]}, r"The column 'age' must hold float64 numbers"),
        ({"age": [1.0], "n": [1], "city": [3]}, r"The column 'city' must hold text"),
        ({"age": [np.nan], "n": [1], "city": ["a"]}, r"'age' holds missing values"),
        ({"age": [None], "n": [1], "city": ["a"]}, r"'age' holds missing values"),
    ],
    ids=["missing", "unknown", "float-to-int", "text-to-number", "number-to-text", "nan", "null"],
)
def test_validate_errors_name_the_column(table_sig: Signature, data: object, match: str) -> None:
    with pytest.raises(SignatureError, match=match):
        table_sig.validate_input(data)


def test_matrix_into_columns_maps_by_position(table_sig: Signature) -> None:
    sig = Signature.infer({"a": [1.0], "b": [2.0]})
    out = sig.validate_input(np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert isinstance(out, dict)
    np.testing.assert_array_equal(out["b"], [2.0, 4.0])
    with pytest.raises(SignatureError, match="2 columns"):
        sig.validate_input(np.zeros((2, 3)))


def test_tensor_shape_checked() -> None:
    sig = Signature.infer(np.zeros((4, 3)))
    assert sig.validate_input(np.ones((2, 3))).shape == (2, 3)
    assert sig.validate_input(np.ones(3)).shape == (1, 3)  # one example, no batch axis
    with pytest.raises(SignatureError, match=r"must have shape \[N, 3\]. Got \[2, 4\]"):
        sig.validate_input(np.ones((2, 4)))


def test_tensor_float_widths_cast() -> None:
    sig = Signature.infer(np.zeros((1, 2), dtype=np.float32))
    assert sig.validate_input(np.ones((1, 2))).dtype == np.float32


def test_round_trip_dict(table_sig: Signature) -> None:
    assert Signature.from_dict(table_sig.to_dict()) == table_sig
    tensor = Signature.infer(np.zeros((2, 3, 4)), np.zeros(2))
    assert Signature.from_dict(tensor.to_dict()) == tensor


@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=8),
                  elements=st.floats(-1e6, 1e6)))
def test_inferred_signature_accepts_its_own_sample(arr: np.ndarray) -> None:
    sig = Signature.infer(arr)
    np.testing.assert_array_equal(sig.validate_input(arr), arr)
    cols = {f"c{i}": arr[:, i] for i in range(arr.shape[1])}
    out = Signature.infer(cols).validate_input(cols)
    assert isinstance(out, dict)
    assert list(out) == list(cols)


@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6),
                  elements=st.floats(-1e6, 1e6)),
       st.sampled_from([np.float64, np.float32, np.int64]))
def test_matrix_fast_path_equals_column_path(arr: np.ndarray, dtype: type) -> None:
    cols = {f"c{i}": arr[:, i] for i in range(arr.shape[1])}
    sig = Signature.infer(cols)
    sent = arr.astype(dtype)
    fast = sig.validate_input(sent)
    slow = sig.validate_input({k: sent[:, i] for i, k in enumerate(cols)})
    assert isinstance(fast, dict)
    assert isinstance(slow, dict)
    for key in cols:
        np.testing.assert_array_equal(fast[key], slow[key])
        assert fast[key].dtype == slow[key].dtype


def test_matrix_with_nan_names_the_column() -> None:
    sig = Signature.infer({"a": [1.0], "b": [2.0]})
    with pytest.raises(SignatureError, match="'b' holds missing values"):
        sig.validate_input(np.array([[1.0, np.nan]]))
