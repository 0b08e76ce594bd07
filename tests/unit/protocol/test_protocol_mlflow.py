"""MLflow ``/invocations`` codecs, checked against MLflow's own scoring-server parser."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from modelyard.errors import InvalidInputError
from modelyard.protocol import mlflow

JSON = "application/json"


def _cols(data: object) -> dict[str, list[Any]]:
    assert isinstance(data, dict)
    return {k: v.tolist() for k, v in data.items()}


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", "json"),
        ("Application/JSON; charset=UTF-8", "json"),
        ('application/json; charset="utf-8"', "json"),
        ("application/json; charset=latin-1", None),
        ("application/json; format=pandas-split", None),
        ("text/csv", "csv"),
        ("text/csv; charset=utf-8; header=present", "csv"),
        ("text/csv; charset=latin-1", None),
        ("text/plain", None),
        ("", None),
        (None, None),
    ],
    ids=[
        "json",
        "json-charset",
        "json-quoted",
        "json-latin1",
        "json-format",
        "csv",
        "csv-params",
        "csv-latin1",
        "text",
        "empty",
        "none",
    ],
)
def test_invocations_format(content_type: str | None, expected: str | None) -> None:
    assert mlflow.invocations_format(content_type) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"dataframe_split": {"columns": ["a", "b"], "data": [[1.5, 2.5], [3, 4.0]]}},
            {"a": [1.5, 3.0], "b": [2.5, 4.0]},
        ),
        (
            {
                "dataframe_split": {
                    "columns": ["a", "b"],
                    "data": [[1, "x"], [None, "y"]],
                    "index": [7, 8],
                }
            },
            {"a": [1.0, np.nan], "b": ["x", "y"]},
        ),
        (
            {"dataframe_split": {"columns": ["n", "s"], "data": [[1, "2"], [2, 3]]}},
            {"n": [1, 2], "s": ["2", 3]},
        ),
        ({"dataframe_records": [{"a": 1, "b": "x"}, {"a": 2}]}, {"a": [1, 2], "b": ["x", None]}),
        (
            {"instances": [{"a": 1.5, "b": True}, {"a": 2.5, "b": False}]},
            {"a": [1.5, 2.5], "b": [True, False]},
        ),
        ({"inputs": {"a": [1, 2], "b": ["u", "v"]}}, {"a": [1, 2], "b": ["u", "v"]}),
    ],
    ids=[
        "split-numeric",
        "split-mixed-index",
        "split-text-keeps-values",
        "records",
        "instances-objects",
        "inputs-dict",
    ],
)
def test_decode_tables(body: dict[str, Any], expected: dict[str, list[Any]]) -> None:
    got = _cols(mlflow.decode_invocations(orjson.dumps(body), JSON))
    assert list(got) == list(expected)
    np.testing.assert_equal(got, expected)  # NaN equals NaN here


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"instances": [[1, 2], [3, 4]]}, np.array([[1, 2], [3, 4]])),
        ({"instances": [1.5, 2.5]}, np.array([1.5, 2.5])),
        ({"inputs": [[0.5, None]]}, np.array([[0.5, np.nan]])),
        ({"inputs": [["a", "b"]]}, np.array([["a", "b"]], dtype=object)),
        ({"dataframe_split": {"data": [[1, 2]]}}, np.array([[1, 2]])),
    ],
    ids=["instances-rows", "instances-values", "inputs-null", "inputs-text", "split-no-columns"],
)
def test_decode_arrays(body: dict[str, Any], expected: np.ndarray) -> None:
    got = mlflow.decode_invocations(orjson.dumps(body), JSON)
    assert isinstance(got, np.ndarray)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_split_types_each_column_by_its_own_values() -> None:
    body = orjson.dumps(
        {
            "dataframe_split": {
                "columns": ["i", "f", "b", "g"],
                "data": [[1, 2.5, True, 1], [2, 3.0, False, 2.5]],
            }
        }
    )
    cols = mlflow.decode_invocations(body, JSON)
    assert isinstance(cols, dict)
    assert {k: v.dtype.name for k, v in cols.items()} == {
        "i": "int64",
        "f": "float64",
        "b": "bool",
        "g": "float64",
    }


def test_split_numeric_table_is_read_in_one_pass() -> None:
    body = orjson.dumps({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3, 4]]}})
    cols = mlflow.decode_invocations(body, JSON)
    assert isinstance(cols, dict)
    assert cols["a"].base is cols["b"].base is not None  # column views of one matrix


def test_params_are_returned() -> None:
    body = orjson.dumps({"inputs": [[1]], "params": {"temperature": 0.5}})
    inv = mlflow.read_invocations(body, JSON)
    assert inv.params == {"temperature": 0.5}
    assert mlflow.read_invocations(orjson.dumps({"inputs": [[1]]}), JSON).params == {}


_FOUR = r"exactly one of 'dataframe_split', 'dataframe_records', 'instances', 'inputs'"


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"[[1, 2]]", JSON, _FOUR + r"; got a list\."),
        (b"{}", JSON, _FOUR + r" \(and optionally 'params'\); got an empty object\."),
        (b'{"data": [[1]]}', JSON, _FOUR + r" .*got keys \['data'\]\."),
        (b'{"inputs": [1], "instances": [1]}', JSON, _FOUR + r" .*got keys \['inputs', 'inst"),
        (b'{"inputs": [1], "extra": 1}', JSON, _FOUR),
        (b'{"inputs": [1], "params": [1]}', JSON, r"'params' must be an object; got a list\."),
        (b"{", JSON, r"The request body is not valid JSON"),
        (b"a\n1", "text/plain", r"Content-Type 'text/plain' is not supported; send applicat"),
        (b'{"dataframe_split": [[1]]}', JSON, r"'dataframe_split' must be an object \{"),
        (
            b'{"dataframe_split": {"columns": ["a"], "data": [[1]], "rows": 1}}',
            JSON,
            r"'dataframe_split' has unexpected keys \['rows'\]",
        ),
        (
            b'{"dataframe_split": {"columns": ["a"]}}',
            JSON,
            r"'dataframe_split' needs 'data', a list of rows; got null\.",
        ),
        (
            b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3]]}}',
            JSON,
            r"'dataframe_split' data\[1\] must be a row of 2 values, one per column; got 1 values",
        ),
        (
            b'{"dataframe_split": {"columns": ["a"], "data": [1, 2]}}',
            JSON,
            r"data\[0\] must be a row of 1 values, one per column; got a number\.",
        ),
        (
            b'{"dataframe_split": {"columns": ["a", "a"], "data": [[1, 2]]}}',
            JSON,
            r"'dataframe_split' names column 'a' twice\.",
        ),
        (
            b'{"dataframe_split": {"columns": ["a"], "data": [[1]], "index": [1, 2]}}',
            JSON,
            r"'dataframe_split' has an 'index' that is not a list of 1 labels",
        ),
        (
            b'{"dataframe_split": {"columns": "a", "data": [[1]]}}',
            JSON,
            r"'columns' must be a list of names; got a string\.",
        ),
        (
            b'{"dataframe_split": {"data": [[1, 2], [3]]}}',
            JSON,
            r"'dataframe_split' data holds rows of different lengths",
        ),
        (
            b'{"dataframe_records": {"a": [1]}}',
            JSON,
            r"'dataframe_records' must be a list of \{column: value\} objects; got an object\.",
        ),
        (
            b'{"dataframe_records": [{"a": 1}, [2]]}',
            JSON,
            r"'dataframe_records'\[1\] must be an object of column: value; got a list\.",
        ),
        (b'{"dataframe_records": []}', JSON, r"'dataframe_records' is empty"),
        (b'{"instances": {"a": [1]}}', JSON, r"'instances' must be a list of rows"),
        (b'{"instances": [[1, 2], [3]]}', JSON, r"'instances' holds rows of different lengths"),
        (b'{"inputs": "x"}', JSON, r"'inputs' must be a list \(one array\) or an object"),
        (
            b'{"inputs": {"a": [1, 2], "b": [1]}}',
            JSON,
            r"'inputs': all columns must have the same length\. Got a=2, b=1\.",
        ),
        (b'{"inputs": {"a": 1}}', JSON, r"'inputs': column 'a' must be a list of values; got a n"),
    ],
    ids=[
        "bare-list",
        "empty",
        "unknown-key",
        "two-keys",
        "extra-key",
        "params-list",
        "bad-json",
        "content-type",
        "split-list",
        "split-extra",
        "split-no-data",
        "split-short-row",
        "split-flat",
        "split-dup",
        "split-index",
        "split-columns-str",
        "split-ragged-matrix",
        "records-object",
        "records-row",
        "records-empty",
        "instances-object",
        "instances-ragged",
        "inputs-str",
        "inputs-lengths",
        "inputs-scalar",
    ],
)
def test_decode_errors(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        mlflow.decode_invocations(body, content_type)


# -- CSV ----------------------------------------------------------------------------------------


def test_csv_columns_take_the_narrowest_type() -> None:
    body = (
        "\ufeffn,x,flag,city,note\n"
        '1,0.5,True,Oslo,"a, b"\n'
        "2,,false,,x\n"
        '3,2e3,TRUE,Rome,"multi\nline"\n'
    ).encode()
    cols = mlflow.decode_invocations(body, "text/csv")
    assert isinstance(cols, dict)
    assert cols["n"].dtype == np.int64
    assert cols["n"].tolist() == [1, 2, 3]
    assert cols["x"].dtype == np.float64
    np.testing.assert_array_equal(cols["x"], [0.5, np.nan, 2000.0])
    assert cols["flag"].tolist() == [True, False, True]
    assert cols["city"].tolist() == ["Oslo", None, "Rome"]
    assert cols["note"].tolist() == ["a, b", "x", "multi\nline"]


def test_csv_header_only() -> None:
    cols = mlflow.decode_invocations(b"a,b\n", "text/csv")
    assert isinstance(cols, dict)
    assert {k: v.size for k, v in cols.items()} == {"a": 0, "b": 0}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", r"The CSV body is empty; expected a header row"),
        (b"a,b\n1,2\n3\n", r"CSV line 3 has 1 fields but the header names 2 columns\."),
        (b"a,a\n1,2\n", r"The CSV header names column 'a' twice\."),
        (b"a\n\xff\n", r"The CSV body is not UTF-8 text"),
    ],
    ids=["empty", "short-row", "duplicate", "not-utf8"],
)
def test_csv_errors(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        mlflow.decode_invocations(body, "text/csv")


# -- encode -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        ({"predict": np.array([0, 1])}, {"predictions": [0, 1]}),
        ({"predict": np.array(["a", "b"], dtype=object)}, {"predictions": ["a", "b"]}),
        ({"proba": np.array([[0.25, 0.75]])}, {"predictions": [[0.25, 0.75]]}),
        ({"predict": np.array([np.nan, 1.5])}, {"predictions": [None, 1.5]}),
        ({"predict": np.float64(2.0)}, {"predictions": [2.0]}),
        (
            {"predict": np.array([1, 0]), "proba": np.array([0.9, 0.2])},
            {"predictions": {"predict": [1, 0], "proba": [0.9, 0.2]}},
        ),
    ],
    ids=["ints", "text", "matrix", "nan-as-null", "scalar", "several"],
)
def test_encode_predictions(outputs: dict[str, np.ndarray], expected: dict[str, Any]) -> None:
    assert orjson.loads(mlflow.encode_predictions(outputs)) == expected


# -- against MLflow's own parser ----------------------------------------------------------------


@pytest.fixture(scope="module")
def mlflow_parse() -> Any:
    return pytest.importorskip("mlflow.pyfunc.scoring_server")


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2.5, "x"], [2, None, "y"]]}},
        {"dataframe_split": {"columns": ["i", "f", "b"], "data": [[1, 2.5, True], [2, 3, False]]}},
        {"dataframe_records": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]},
        {"instances": [{"a": 1.5, "b": 2}, {"a": 2.5, "b": 3}]},
        {"instances": [[1.0, 2.0], [3.0, 4.0]]},
        {"inputs": {"a": [1, 2], "b": [0.5, 1.5]}},
        {"inputs": [[1, 2], [3, 4]]},
    ],
    ids=[
        "split",
        "split-numeric",
        "records",
        "instances-objects",
        "instances-rows",
        "inputs-dict",
        "inputs-list",
    ],
)
def test_same_data_as_mlflow(mlflow_parse: Any, body: dict[str, Any]) -> None:
    ours = mlflow.decode_invocations(orjson.dumps(body), JSON)
    theirs = mlflow_parse.infer_and_parse_data(body)
    if isinstance(ours, np.ndarray):
        np.testing.assert_array_equal(ours, np.asarray(theirs))
        return
    if hasattr(theirs, "columns"):  # a DataFrame
        theirs = {c: theirs[c].to_numpy() for c in theirs.columns}
    assert list(ours) == list(theirs)
    for name, values in ours.items():
        np.testing.assert_array_equal(values, np.asarray(theirs[name]))
        if values.dtype.kind in "biuf":
            assert values.dtype == np.asarray(theirs[name]).dtype, name
