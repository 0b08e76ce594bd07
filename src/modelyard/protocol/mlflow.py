"""MLflow scoring server ``/invocations``: request and response codecs.

A JSON body is an object with exactly one of ``dataframe_split``, ``dataframe_records``,
``instances`` or ``inputs`` (plus optional ``params``); a CSV body is a table with a header.
Tables become named numpy columns, matrices one ndarray; pandas is never imported.

>>> decode_invocations(b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1, "x"]]}}',
...                    "application/json")
{'a': array([1]), 'b': array(['x'], dtype=object)}
>>> encode_predictions({"predict": np.array([0, 1])})
b'{"predictions":[0,1]}'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

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
from modelyard.protocol._json import describe, dumps, loads

__all__ = [
    "FORMATS",
    "Invocations",
    "decode_invocations",
    "encode_predictions",
    "invocations_format",
    "read_invocations",
]

FORMATS: tuple[str, ...] = ("dataframe_split", "dataframe_records", "instances", "inputs")
"""The four JSON keys MLflow accepts for the data; exactly one per request."""

_ACCEPTED = ", ".join(f"'{k}'" for k in FORMATS)
_SPLIT_KEYS = frozenset({"columns", "data", "index"})


@dataclass(slots=True)
class Invocations:
    """A decoded ``/invocations`` body: the data and the optional ``params`` object."""

    data: Columns | np.ndarray
    params: dict[str, Any] = field(default_factory=dict)


def invocations_format(content_type: str | None) -> Literal["json", "csv"] | None:
    """``"json"`` or ``"csv"`` for a Content-Type MLflow accepts, None for any other (415).

    JSON takes only ``charset=utf-8`` as a parameter, as MLflow's server does.

    >>> invocations_format("application/json; charset=UTF-8"), invocations_format("text/plain")
    ('json', None)
    """
    if not content_type:
        return None
    media, _, rest = content_type.partition(";")
    media = media.strip().lower()
    params = {}
    for part in rest.split(";"):
        key, eq, value = part.partition("=")
        if eq:
            params[key.strip().lower()] = value.strip().strip('"').lower()
        elif part.strip():
            return None
    charset_ok = params.get("charset", "utf-8") in ("utf-8", "utf8")
    if media == "application/json":
        return "json" if charset_ok and set(params) <= {"charset"} else None
    if media == "text/csv":
        return "csv" if charset_ok else None
    return None


def decode_invocations(body: bytes, content_type: str | None) -> Columns | np.ndarray:
    """The data of an ``/invocations`` body: columns for tables, an ndarray for tensors."""
    return read_invocations(body, content_type).data


def read_invocations(body: bytes, content_type: str | None) -> Invocations:
    """Decode an ``/invocations`` body into its data and ``params``."""
    fmt = invocations_format(content_type)
    if fmt is None:
        raise InvalidInputError(
            f"Content-Type {content_type!r} is not supported; send application/json "
            "(charset utf-8) or text/csv."
        )
    if fmt == "csv":
        return Invocations(read_csv(body))
    doc = loads(body)
    if not isinstance(doc, dict):
        raise InvalidInputError(
            f"The body must be a JSON object with exactly one of {_ACCEPTED}; got {describe(doc)}."
        )
    keys = [k for k in doc if k in FORMATS]
    unknown = [k for k in doc if k not in FORMATS and k != "params"]
    if len(keys) != 1 or unknown:
        got = f"keys {list(doc)}" if doc else "an empty object"
        raise InvalidInputError(
            f"The body must be a JSON object with exactly one of {_ACCEPTED} (and optionally "
            f"'params'); got {got}."
        )
    params = doc.get("params")
    if params is None:
        params = {}
    elif not isinstance(params, dict):
        raise InvalidInputError(f"'params' must be an object; got {describe(params)}.")
    key = keys[0]
    value = doc[key]
    if key == "dataframe_split":
        data = _split(value)
    elif key == "dataframe_records":
        if not isinstance(value, list):
            raise InvalidInputError(
                f"'dataframe_records' must be a list of {{column: value}} objects; "
                f"got {describe(value)}."
            )
        data = records_to_columns(value, "'dataframe_records'")
    elif key == "instances":
        data = _instances(value)
    else:
        data = _inputs(value)
    return Invocations(data, params)


def _split(value: object) -> Columns | np.ndarray:
    if not isinstance(value, dict):
        raise InvalidInputError(
            '\'dataframe_split\' must be an object {"columns": [...], "data": [[...], ...]}; '
            f"got {describe(value)}."
        )
    extra = [k for k in value if k not in _SPLIT_KEYS]
    if extra:
        raise InvalidInputError(
            f"'dataframe_split' has unexpected keys {extra}; expected 'columns', 'data' and "
            "optionally 'index'."
        )
    rows = value.get("data")
    if not isinstance(rows, list):
        raise InvalidInputError(
            f"'dataframe_split' needs 'data', a list of rows; got {describe(rows)}."
        )
    index = value.get("index")
    if index is not None and (not isinstance(index, list) or len(index) != len(rows)):
        raise InvalidInputError(
            f"'dataframe_split' has an 'index' that is not a list of {len(rows)} labels, one "
            "per row of 'data'."
        )
    names = value.get("columns")
    if names is None:
        return rows_to_array(rows, "'dataframe_split' data")  # no names: a matrix
    if not isinstance(names, list):
        raise InvalidInputError(
            f"'dataframe_split' 'columns' must be a list of names; got {describe(names)}."
        )
    columns = [str(n) for n in names]
    if len(set(columns)) != len(columns):
        dup = next(c for c in columns if columns.count(c) > 1)
        raise InvalidInputError(f"'dataframe_split' names column {dup!r} twice.")
    width = len(columns)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            got = f"{len(row)} values" if isinstance(row, list) else describe(row)
            raise InvalidInputError(
                f"'dataframe_split' data[{i}] must be a row of {width} values, one per "
                f"column; got {got}."
            )
    return rows_to_columns(rows, columns)


def _instances(value: object) -> Columns | np.ndarray:
    if not isinstance(value, list):
        raise InvalidInputError(
            f"'instances' must be a list of rows (values or objects); got {describe(value)}."
        )
    if value and isinstance(value[0], dict):
        return records_to_columns(value, "'instances'")
    return rows_to_array(value, "'instances'")


def _inputs(value: object) -> Columns | np.ndarray:
    if isinstance(value, dict):
        return mapping_to_columns(value, "'inputs'")
    if isinstance(value, list):
        return rows_to_array(value, "'inputs'")
    raise InvalidInputError(
        f"'inputs' must be a list (one array) or an object of name: list; got {describe(value)}."
    )


def encode_predictions(outputs: Mapping[str, np.ndarray]) -> bytes:
    """``{"predictions": [...]}`` from the model's outputs.

    One output is written as a list (nested for 2-D outputs, as ``ndarray.tolist`` would);
    several as ``{"predictions": {name: list}}``, which is what MLflow's server writes for a
    model returning a dict of arrays.
    """
    if len(outputs) == 1:
        (only,) = outputs.values()
        return dumps({"predictions": np.atleast_1d(only)})
    return dumps({"predictions": {k: np.atleast_1d(v) for k, v in outputs.items()}})
