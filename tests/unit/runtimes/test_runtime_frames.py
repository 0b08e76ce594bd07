"""to_frame: the one-block fast path gives the frame np.column_stack gave, Fortran-ordered."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from modelyard.runtimes.base import to_frame
from modelyard.runtimes.sklearn import SklearnPredictor


def _columns(dtype: str, rows: int = 7, k: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {f"c{j}": (rng.normal(size=rows) * 50).astype(dtype) for j in range(k)}


def _stacked(cols: dict[str, np.ndarray], columns: object = None) -> pd.DataFrame:
    """What to_frame built before: one C-ordered block from np.column_stack."""
    return pd.DataFrame(np.column_stack(list(cols.values())),
                        columns=list(cols) if columns is None else columns, copy=False)


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64", "int8", "uint16", "bool",
                                   ">f8", "<i4"],
                         ids=lambda d: d)
def test_one_block_matches_column_stack(dtype: str) -> None:
    cols = _columns(dtype)
    frame = to_frame(cols)
    expected = _stacked(cols)
    pd.testing.assert_frame_equal(frame, expected)
    assert all(frame.dtypes == np.column_stack(list(cols.values())).dtype)
    assert frame.dtypes.iloc[0].isnative
    block = frame.to_numpy()
    assert block.flags.f_contiguous  # each column is contiguous, no strided copy per value


def test_prebuilt_index_zero_rows_and_single_column() -> None:
    cols = _columns("float64")
    index = pd.Index(list(cols), dtype=object)
    frame = to_frame(cols, columns=index)
    assert frame.columns is index
    pd.testing.assert_frame_equal(frame, _stacked(cols, index))
    empty = _columns("float64", rows=0)
    pd.testing.assert_frame_equal(to_frame(empty), _stacked(empty))
    one = _columns("int64", k=1)
    pd.testing.assert_frame_equal(to_frame(one), _stacked(one))


@pytest.mark.parametrize("cols", [
    {"a": np.array([1, 2], dtype=np.int64), "b": np.array([0.5, 1.5])},
    {"a": np.array([1.0, 2.0], dtype=np.float32), "b": np.array([0.5, 1.5])},
    {"a": np.array(["x", "y"], dtype=object), "b": np.array([0.5, 1.5])},
], ids=["int-and-float", "float32-and-float64", "object"])
def test_mixed_dtypes_keep_one_dtype_per_column(cols: dict[str, np.ndarray]) -> None:
    frame = to_frame(cols)
    pd.testing.assert_frame_equal(frame, pd.DataFrame(cols))
    assert frame["b"].dtype == np.float64  # not widened or narrowed to a common dtype


def test_an_empty_table_and_a_matrix() -> None:
    assert to_frame({}).shape == (0, 0)
    matrix = np.arange(6.0).reshape(3, 2)
    frame = to_frame(matrix, columns=["a", "b"])
    assert frame.shape == (3, 2)
    assert frame["b"].tolist() == [1.0, 3.0, 5.0]


def test_sklearn_predictions_are_unchanged() -> None:
    data = load_breast_cancer(as_frame=True)
    x = data.data.iloc[:200]
    model = LogisticRegression(max_iter=5000).fit(x, data.target.iloc[:200])
    cols = {str(c): x[c].to_numpy() for c in x.columns}
    predictor = SklearnPredictor(model)
    np.testing.assert_array_equal(predictor.predict(cols), model.predict(x))
    np.testing.assert_allclose(predictor.predict_proba(cols), model.predict_proba(x))
