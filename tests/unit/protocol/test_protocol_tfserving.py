"""TF Serving / KServe v1 ``:predict`` codecs: row and columnar formats both ways."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from modelyard.errors import InvalidInputError, PredictionError
from modelyard.protocol import tfserving


@pytest.mark.parametrize(
    ("body", "expected", "row_format"),
    [
        ({"instances": [[1.0, 2.0], [3.0, 4.0]]}, np.array([[1.0, 2.0], [3.0, 4.0]]), True),
        ({"instances": [1, 2, 3], "signature_name": "serving_default"}, np.array([1, 2, 3]), True),
        ({"inputs": [[1, 2]]}, np.array([[1, 2]]), False),
        ({"inputs": [["a", None]]}, np.array([["a", None]], dtype=object), False),
    ],
    ids=["instances-rows", "instances-values", "inputs-list", "inputs-text"],
)
def test_decode_arrays(body: dict[str, Any], expected: np.ndarray, row_format: bool) -> None:
    data, rows = tfserving.decode_predict(orjson.dumps(body))
    assert rows is row_format
    assert isinstance(data, np.ndarray)
    assert data.dtype == expected.dtype
    np.testing.assert_array_equal(data, expected)


@pytest.mark.parametrize(
    ("body", "expected", "row_format"),
    [
        (
            {"instances": [{"age": 31, "city": "Oslo"}, {"age": 40, "city": "Rome"}]},
            {"age": [31, 40], "city": ["Oslo", "Rome"]},
            True,
        ),
        ({"instances": [{"x": [1, 2]}, {"x": [3, 4]}]}, {"x": [[1, 2], [3, 4]]}, True),
        (
            {"inputs": {"age": [31, 40], "city": ["Oslo", "Rome"]}},
            {"age": [31, 40], "city": ["Oslo", "Rome"]},
            False,
        ),
    ],
    ids=["instances-objects", "instances-tensors", "inputs-dict"],
)
def test_decode_columns(
    body: dict[str, Any], expected: dict[str, list[Any]], row_format: bool
) -> None:
    data, rows = tfserving.decode_predict(orjson.dumps(body))
    assert rows is row_format
    assert isinstance(data, dict)
    assert {k: v.tolist() for k, v in data.items()} == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1]", r"must be a JSON object with 'instances' \(rows\) or 'inputs' \(columns\); got"),
        (
            b'{"instances": [1], "inputs": [1]}',
            r"exactly one of 'instances' \(rows\) or 'inputs' \(columns\); got keys \['instances'",
        ),
        (b'{"data": [1]}', r"exactly one of 'instances'"),
        (b'{"instances": [1], "x": 1}', r"exactly one of 'instances'"),
        (b'{"instances": {"a": [1]}}', r"'instances' must be a list of rows \(values or obj"),
        (b'{"instances": [[1], [2, 3]]}', r"'instances' holds rows of different lengths"),
        (b'{"inputs": 5}', r"'inputs' must be a list \(one array\) or an object of name: list"),
        (b'{"inputs": {"a": [1], "b": [1, 2]}}', r"all columns must have the same length"),
        (b"nope", r"The request body is not valid JSON"),
    ],
    ids=[
        "list",
        "both",
        "neither",
        "extra",
        "instances-object",
        "ragged",
        "inputs-scalar",
        "inputs-lengths",
        "bad-json",
    ],
)
def test_decode_errors(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        tfserving.decode_predict(body)


@pytest.mark.parametrize(
    ("outputs", "row_format", "expected"),
    [
        ({"predict": np.array([0, 1])}, True, {"predictions": [0, 1]}),
        ({"predict": np.array([0, 1])}, False, {"outputs": [0, 1]}),
        ({"proba": np.array([[0.5, 0.5]])}, True, {"predictions": [[0.5, 0.5]]}),
        (
            {"predict": np.array(["a", "b"]), "score": np.array([0.5, 0.25])},
            True,
            {"predictions": [{"predict": "a", "score": 0.5}, {"predict": "b", "score": 0.25}]},
        ),
        (
            {"predict": np.array([1, 0]), "score": np.array([0.5, 0.25])},
            False,
            {"outputs": {"predict": [1, 0], "score": [0.5, 0.25]}},
        ),
    ],
    ids=["row-one", "columnar-one", "row-matrix", "row-several", "columnar-several"],
)
def test_encode_predict(
    outputs: dict[str, np.ndarray], row_format: bool, expected: dict[str, Any]
) -> None:
    assert orjson.loads(tfserving.encode_predict(outputs, row_format)) == expected


def test_row_format_needs_outputs_of_equal_length() -> None:
    with pytest.raises(PredictionError, match=r"different numbers of rows \(a=2, b=1\)"):
        tfserving.encode_predict({"a": np.array([1, 2]), "b": np.array([1])}, row_format=True)
