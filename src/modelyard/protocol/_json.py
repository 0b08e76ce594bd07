"""JSON in and out of the wire codecs: orjson, with numpy arrays written without ``tolist``.

A body orjson refuses is tried once more with the stdlib parser, which also reads the ``NaN``
and ``Infinity`` literals that Python clients write. Parsing errors become
:class:`~modelyard.errors.InvalidInputError` (the client sent bad JSON); encoding errors
become :class:`~modelyard.errors.PredictionError` (the model returned something JSON cannot
carry). JSON has no NaN or infinity: orjson writes both as ``null``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

from modelyard.errors import InvalidInputError, PredictionError

__all__ = ["describe", "dumps", "loads", "outputs_as_records"]

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def loads(body: bytes | bytearray | memoryview | str, what: str = "The request body") -> Any:
    """Parse JSON, or raise an InvalidInputError that says ``what`` was not valid JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # Python's json module, and clients built on it such as tritonclient, write NaN and
        # Infinity, which orjson refuses. Retry with it, on this error path only.
        try:
            return json.loads(bytes(body) if isinstance(body, memoryview) else body)
        except (ValueError, RecursionError):
            raise InvalidInputError(f"{what} is not valid JSON: {exc}.") from None


def dumps(obj: Any) -> bytes:
    """Serialize ``obj``; C-contiguous numeric arrays go through orjson's numpy fast path."""
    try:
        return orjson.dumps(obj, default=_default, option=_OPTIONS)
    except orjson.JSONEncodeError as exc:
        reason = exc.__cause__ or exc  # the TypeError _default raised, with its reason
        raise PredictionError(f"The model's output cannot be written as JSON: {reason}.") from None


def _default(obj: Any) -> Any:
    # orjson calls this for what it cannot write natively: text/object, non-contiguous or
    # non-native-endian arrays, numpy scalars it does not know, and bytes.
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "mM":
            return obj.astype(str).tolist()
        return obj.tolist()
    if isinstance(obj, bytes):
        try:
            return obj.decode()
        except UnicodeDecodeError:
            raise TypeError(
                f"bytes {obj[:20]!r} are not UTF-8 text; use the binary tensor extension"
            ) from None
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"Type is not JSON serializable: {type(obj).__name__}")


def describe(value: object) -> str:
    """Name a JSON value's kind for an error message: 'a list', 'a string', 'null'..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def outputs_as_records(outputs: Mapping[str, np.ndarray]) -> list[dict[str, object]]:
    """Several outputs of N rows as N ``{name: value}`` objects (for row-format answers)."""
    lists = {k: np.atleast_1d(v).tolist() for k, v in outputs.items()}
    lengths = {len(v) for v in lists.values()}
    if len(lengths) > 1:
        detail = ", ".join(f"{k}={len(v)}" for k, v in lists.items())
        raise PredictionError(
            f"The model's outputs have different numbers of rows ({detail}); they cannot be "
            "written one object per row."
        )
    names = list(lists)
    return [dict(zip(names, row, strict=True)) for row in zip(*lists.values(), strict=True)]
