"""TorchServe ``POST /predictions/{name}[/{version}]``: request and response codecs.

The body is JSON (a list of rows, a list of ``{column: value}`` objects, an object of columns
or a single row object) or CSV with a header; the answer is a JSON list of predictions.

>>> decode_predictions(b'{"age": 31, "city": "Oslo"}', "application/json")
{'age': array([31]), 'city': array(['Oslo'], dtype=object)}
>>> encode_predictions({"predict": np.array([1])})
b'[1]'
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from modelyard.core.tabular import Columns
from modelyard.errors import InvalidInputError
from modelyard.protocol._arrays import (
    mapping_to_columns,
    read_csv,
    records_to_columns,
    rows_to_array,
    rows_to_columns,
)
from modelyard.protocol._json import describe, dumps, loads, outputs_as_records

__all__ = ["decode_predictions", "encode_predictions"]


def decode_predictions(body: bytes, content_type: str | None) -> Columns | np.ndarray:
    """The data of a ``/predictions`` body: columns for tables, an ndarray for rows of values.

    ``text/csv`` is read as a table with a header; any other content type as JSON, since
    TorchServe clients often send none. An object whose values are all lists is a table of
    columns; any other object is one row.
    """
    media = (content_type or "").partition(";")[0].strip().lower()
    if media == "text/csv":
        return read_csv(body)
    doc = loads(body)
    if isinstance(doc, list):
        if not doc:
            raise InvalidInputError("The body is an empty list; send at least one row.")
        if isinstance(doc[0], dict):
            return records_to_columns(doc, "The body")
        return rows_to_array(doc, "The body")
    if isinstance(doc, dict):
        if not doc:
            raise InvalidInputError("The body is an empty object; send at least one column.")
        if all(isinstance(v, list) for v in doc.values()):
            return mapping_to_columns(doc, "The body")
        return rows_to_columns([list(doc.values())], list(doc))
    raise InvalidInputError(
        "The body must be a JSON list of rows, a list of {column: value} objects, an object of "
        f"columns or one row object; got {describe(doc)}."
    )


def encode_predictions(outputs: Mapping[str, np.ndarray]) -> bytes:
    """A JSON list: one prediction per row, or one ``{name: value}`` object per row for
    several outputs."""
    if len(outputs) == 1:
        (only,) = outputs.values()
        return dumps(np.atleast_1d(only))
    return dumps(outputs_as_records(outputs))
