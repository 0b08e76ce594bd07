"""Open Inference Protocol datatypes: their numpy dtypes, and JSON values read as one of them.

Reading is strict where meaning would change (text into numbers, 1.5 into an integer, 300
into INT8) and lenient where it would not (null into a float is NaN, 0 and 1 into BOOL).
Integers beyond 2**53 are read exactly. Every error names the input.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard.errors import InvalidInputError
from modelyard.protocol._json import describe

__all__ = [
    "DATATYPES",
    "DTYPES",
    "KNOWN",
    "WIRE",
    "datatype_of",
    "dtype_of",
    "ragged",
    "text_from_json",
    "to_datatype",
]

_NUMERIC: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
DTYPES: dict[str, np.dtype[Any]] = {**_NUMERIC, "BYTES": np.dtype(object)}
# The wire order of raw tensors is little-endian whatever the host's.
WIRE: dict[str, np.dtype[Any]] = {k: v.newbyteorder("<") for k, v in _NUMERIC.items()}
_BY_DTYPE: dict[np.dtype[Any], str] = {v: k for k, v in _NUMERIC.items()}

DATATYPES: tuple[str, ...] = tuple(DTYPES)
"""The tensor datatypes of the protocol, in the order the spec lists them."""

KNOWN = ", ".join(DATATYPES)


def dtype_of(datatype: str) -> np.dtype[Any]:
    """The numpy dtype of a protocol datatype (BYTES: object arrays of str).

    >>> dtype_of("FP32")
    dtype('float32')
    """
    try:
        return DTYPES[datatype]
    except KeyError:
        raise InvalidInputError(
            f"Unknown datatype {datatype!r}; expected one of {KNOWN}."
        ) from None


def datatype_of(dtype: np.dtype[Any] | str) -> str:
    """The protocol datatype of a numpy dtype or a signature dtype name.

    Text, objects and dates are BYTES; numeric dtypes map by kind and width.

    >>> datatype_of(np.dtype("int32")), datatype_of("string")
    ('INT32', 'BYTES')
    """
    if isinstance(dtype, str):
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            return "BYTES"  # 'string' and other signature names for text
    name = _BY_DTYPE.get(dtype)
    if name is None and dtype.kind in "biuf":
        name = _BY_DTYPE.get(dtype.newbyteorder("="))
    return name or "BYTES"


def ragged(name: str) -> InvalidInputError:
    return InvalidInputError(
        f"Input {name!r} has ragged data: nested lists of different lengths. Send the values "
        "row-major, nested to match the shape or flat."
    )


def to_datatype(
    name: str, datatype: str, dtype: np.dtype[Any], arr: np.ndarray, data: list[Any]
) -> np.ndarray:
    """Values numpy read as another dtype, converted to ``dtype`` where that keeps meaning."""
    if arr.size == 0:
        return arr.astype(dtype)  # numpy reads [] as float64
    kind = arr.dtype.kind
    if kind in "US":
        raise InvalidInputError(
            f"Input {name!r} has datatype {datatype} but holds text such as {_first(data, str)!r}."
        )
    if kind == "O":
        return _objects_to_numbers(name, datatype, dtype, arr, data)
    return _cast_numbers(name, datatype, dtype, arr, data)


def _cast_numbers(
    name: str, datatype: str, dtype: np.dtype[Any], arr: np.ndarray, data: list[Any]
) -> np.ndarray:
    """Numbers of one numeric dtype to another, refusing what would change their meaning."""
    kind, want = arr.dtype.kind, dtype.kind
    if want == "b":
        if kind in "iu" and ((arr == 0) | (arr == 1)).all():
            return arr.astype(dtype)
        bad = arr[(arr != 0) & (arr != 1)]
        example = (bad if bad.size else arr).flat[0].item()
        raise InvalidInputError(
            f"Input {name!r} has datatype BOOL but holds numbers such as {example!r}; "
            "expected true or false."
        )
    if kind == "b":
        raise InvalidInputError(
            f"Input {name!r} has datatype {datatype} but holds booleans; expected numbers."
        )
    if want == "f":
        return arr.astype(dtype)
    # integer target
    if kind == "f":
        whole = np.isfinite(arr) & (arr == np.trunc(arr))
        if not whole.all():
            raise InvalidInputError(
                f"Input {name!r} has datatype {datatype} but holds {arr[~whole].flat[0].item()!r}; "
                "expected whole numbers."
            )
        # Integers beyond 2**53 lost digits on the way through float64: go back to the JSON
        # values, which Python compares and numpy converts exactly.
        values = _flatten(data)
        info = np.iinfo(dtype)
        if values and (min(values) < info.min or max(values) > info.max):
            raise _out_of_range(name, datatype, dtype, values)
        return np.array(values, dtype=dtype).reshape(arr.shape)
    info = np.iinfo(dtype)
    if arr.size and (arr.min() < info.min or arr.max() > info.max):
        raise _out_of_range(name, datatype, dtype, arr.ravel().tolist())
    return arr.astype(dtype)


def _out_of_range(
    name: str, datatype: str, dtype: np.dtype[Any], values: list[Any]
) -> InvalidInputError:
    info = np.iinfo(dtype)
    example = next((v for v in values if not info.min <= v <= info.max), values[0])
    return InvalidInputError(
        f"Input {name!r} has datatype {datatype} but holds {example!r}, outside its range "
        f"[{info.min}, {info.max}]."
    )


def _objects_to_numbers(
    name: str, datatype: str, dtype: np.dtype[Any], arr: np.ndarray, data: list[Any]
) -> np.ndarray:
    """The slow path: nulls, integers beyond int64, or values of mixed JSON kinds."""
    leaves = arr.ravel().tolist()
    for v in leaves:
        if isinstance(v, str):
            raise InvalidInputError(
                f"Input {name!r} has datatype {datatype} but holds text such as {v!r}."
            )
        if v is None and dtype.kind != "f":
            raise InvalidInputError(
                f"Input {name!r} has datatype {datatype} but holds null; only floating-point "
                "inputs can carry missing values."
            )
        if isinstance(v, bool):
            raise InvalidInputError(
                f"Input {name!r} has datatype {datatype} but holds booleans; expected numbers."
            )
        if not (v is None or isinstance(v, int | float)):
            raise InvalidInputError(
                f"Input {name!r} has datatype {datatype} but holds {describe(v)}; expected numbers."
            )
    if dtype.kind == "f":
        return np.array(leaves, dtype=dtype).reshape(arr.shape)  # null -> NaN
    if dtype.kind == "b":
        raise InvalidInputError(
            f"Input {name!r} has datatype BOOL but holds numbers; expected true or false."
        )
    try:
        return np.array(data, dtype=dtype)
    except (OverflowError, ValueError):
        raise _out_of_range(name, datatype, dtype, leaves) from None


def text_from_json(name: str, data: list[Any]) -> np.ndarray:
    try:
        arr = np.array(data, dtype=object)
    except ValueError:
        arr = np.fromiter(data, dtype=object, count=len(data))
    for v in arr.flat:
        if not (isinstance(v, str) or v is None):
            if isinstance(v, list):
                raise ragged(name)
            raise InvalidInputError(
                f"Input {name!r} has datatype BYTES but holds {describe(v)} {v!r}; expected text."
            )
    return arr


def _flatten(data: list[Any]) -> list[Any]:
    """The leaves of a nested list, in row-major order."""
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for v in stack[-1]:
            if isinstance(v, list):
                stack.append(iter(v))
                break
            out.append(v)
        else:
            stack.pop()
    return out


def _first(data: list[Any], kind: type) -> object:
    """The first leaf of a nested list that is an instance of ``kind`` (for messages)."""
    return next((v for v in _flatten(data) if isinstance(v, kind)), None)
