"""TF Serving / KServe v1 ``/v1/models/{name}:predict``: request and response codecs.

``{"instances": [...]}`` is the row format (a list of rows, or of ``{name: value}`` objects);
``{"inputs": ...}`` the columnar format (one array, or ``{name: array}``). As TF Serving does,
the row format is answered with ``{"predictions": [...]}`` and the columnar one with
``{"outputs": ...}``.

>>> decode_predict(b'{"instances": [[1.0, 2.0]]}')
(array([[1., 2.]]), True)
>>> encode_predict({"predict": np.array([3.0])}, row_format=True)
b'{"predictions":[3.0]}'
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from modelyard.core.tabular import Columns
from modelyard.errors import InvalidInputError
from modelyard.protocol._arrays import mapping_to_columns, records_to_columns, rows_to_array
from modelyard.protocol._json import describe, dumps, loads, outputs_as_records

__all__ = ["decode_predict", "encode_predict"]

_OPTIONAL = frozenset({"signature_name"})  # TF Serving's; we serve the one default signature


def decode_predict(body: bytes) -> tuple[Columns | np.ndarray, bool]:
    """The data of a ``:predict`` body, and whether it came in the row format."""
    doc = loads(body)
    if not isinstance(doc, dict):
        raise InvalidInputError(
            f"The body must be a JSON object with 'instances' (rows) or 'inputs' (columns); "
            f"got {describe(doc)}."
        )
    keys = [k for k in doc if k in ("instances", "inputs")]
    unknown = [k for k in doc if k not in ("instances", "inputs") and k not in _OPTIONAL]
    if len(keys) != 1 or unknown:
        raise InvalidInputError(
            "The body must be a JSON object with exactly one of 'instances' (rows) or "
            f"'inputs' (columns); got keys {list(doc)}."
        )
    if keys[0] == "instances":
        rows = doc["instances"]
        if not isinstance(rows, list):
            raise InvalidInputError(
                f"'instances' must be a list of rows (values or objects); got {describe(rows)}."
            )
        if rows and isinstance(rows[0], dict):
            return records_to_columns(rows, "'instances'"), True
        return rows_to_array(rows, "'instances'"), True
    value = doc["inputs"]
    if isinstance(value, dict):
        return mapping_to_columns(value, "'inputs'"), False
    if isinstance(value, list):
        return rows_to_array(value, "'inputs'"), False
    raise InvalidInputError(
        f"'inputs' must be a list (one array) or an object of name: list; got {describe(value)}."
    )


def encode_predict(outputs: Mapping[str, np.ndarray], row_format: bool) -> bytes:
    """The ``:predict`` answer, in the format the request used.

    Row format: one output is ``{"predictions": [v0, v1, ...]}``; several are one object per
    row, ``{"predictions": [{"a": a0, "b": b0}, ...]}``. Columnar format: ``{"outputs": [...]}``
    for one output, ``{"outputs": {"a": [...], "b": [...]}}`` for several.
    """
    if len(outputs) == 1:
        (only,) = outputs.values()
        key = "predictions" if row_format else "outputs"
        return dumps({key: np.atleast_1d(only)})
    if not row_format:
        return dumps({"outputs": {k: np.atleast_1d(v) for k, v in outputs.items()}})
    return dumps({"predictions": outputs_as_records(outputs)})
