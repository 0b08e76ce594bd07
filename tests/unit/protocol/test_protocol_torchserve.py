"""TorchServe ``/predictions`` codecs: JSON rows, records, columns, one row, and CSV."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from modelyard.errors import InvalidInputError
from modelyard.protocol import torchserve


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (
            [{"age": 31, "city": "Oslo"}, {"age": 40}],
            "application/json",
            {"age": [31, 40], "city": ["Oslo", None]},
        ),
        (
            {"age": [31, 40], "city": ["Oslo", "Rome"]},
            None,
            {"age": [31, 40], "city": ["Oslo", "Rome"]},
        ),
        ({"age": 31, "city": "Oslo"}, "application/json", {"age": [31], "city": ["Oslo"]}),
        ({"age": 31, "tags": ["a", "b"]}, "application/json", {"age": [31], "tags": [["a", "b"]]}),
        ("age,city\n31,Oslo\n", "text/csv; charset=utf-8", {"age": [31], "city": ["Oslo"]}),
    ],
    ids=["records", "columns", "one-row", "one-row-with-list", "csv"],
)
def test_decode_tables(body: Any, content_type: str | None, expected: dict[str, Any]) -> None:
    raw = body.encode() if isinstance(body, str) else orjson.dumps(body)
    data = torchserve.decode_predictions(raw, content_type)
    assert isinstance(data, dict)
    assert {k: v.tolist() for k, v in data.items()} == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ([[1.0, 2.0], [3.0, 4.0]], np.array([[1.0, 2.0], [3.0, 4.0]])),
        ([1, 2, 3], np.array([1, 2, 3])),
    ],
    ids=["rows", "values"],
)
def test_decode_rows(body: list[Any], expected: np.ndarray) -> None:
    data = torchserve.decode_predictions(orjson.dumps(body), "application/json")
    assert isinstance(data, np.ndarray)
    np.testing.assert_array_equal(data, expected)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", r"The body is an empty list; send at least one row\."),
        (b"{}", r"The body is an empty object; send at least one column\."),
        (
            b'"x"',
            r"must be a JSON list of rows, a list of \{column: value\} objects, an object "
            r"of columns or one row object; got a string\.",
        ),
        (b"[[1, 2], [3]]", r"The body holds rows of different lengths"),
        (b'{"a": [1, 2], "b": [3]}', r"The body: all columns must have the same length"),
        (b"[{", r"The request body is not valid JSON"),
    ],
    ids=["empty-list", "empty-object", "string", "ragged", "lengths", "bad-json"],
)
def test_decode_errors(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        torchserve.decode_predictions(body, "application/json")


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        ({"predict": np.array([1, 0])}, [1, 0]),
        ({"predict": np.int64(1)}, [1]),
        (
            {"predict": np.array(["cat"]), "score": np.array([0.75])},
            [{"predict": "cat", "score": 0.75}],
        ),
    ],
    ids=["one", "scalar", "several"],
)
def test_encode_predictions(outputs: dict[str, np.ndarray], expected: list[Any]) -> None:
    assert orjson.loads(torchserve.encode_predictions(outputs)) == expected
