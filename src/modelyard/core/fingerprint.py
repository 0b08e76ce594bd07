"""Content fingerprints of data sets: a SHA-256 of a canonical encoding, a row count, a schema.

The same values give the same hash whether they arrive as a pandas DataFrame, a pyarrow Table
or a dict of numpy arrays, as long as the columns have the same names, order and dtype names
(see :func:`~modelyard.core.tabular.dtype_name`). Any changed value, column name, column order
or dtype changes the hash.

The canonical encoding (version 1), all integers unsigned 64-bit little-endian:

* a header: ``modelyard.fingerprint/1``, then ``table`` or ``tensor``;
* a table: the number of columns and rows, then per column its name and dtype name (each
  length-prefixed UTF-8) and its values;
* a tensor: its dtype name, number of dimensions and shape, then its values in C order;
* numeric, boolean and datetime values: the byte length, then the little-endian bytes of the
  dtype (datetimes as ``datetime64[ns]``; every NaN as the one canonical NaN);
* text and object values: the number of values, one signed 64-bit length per value, then the
  encodings back to back. A string is its UTF-8 bytes; anything else starts with byte 0xFF,
  which UTF-8 never contains, followed by a type tag: ``\\xff\\x00`` for a missing value (None,
  NaN, NA, NaT), ``\\xffb`` bytes, ``\\xff?`` booleans, ``\\xffi`` integers, ``\\xfff`` floats
  (``float.hex``) and ``\\xffo`` other objects (their type and ``str``).
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

import numpy as np

from modelyard.core.entities import DataFingerprint
from modelyard.core.tabular import Columns, as_columns, dtype_name, is_missing, is_table
from modelyard.errors import InvalidInputError

__all__ = ["fingerprint"]

_MAGIC = b"modelyard.fingerprint/1\n"
_MISSING = b"\xff\x00"


class _Hash(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...


def fingerprint(data: Any) -> DataFingerprint:
    """Fingerprint a table (anything ``as_columns`` accepts) or an array.

    For a table, ``schema`` maps each column to its dtype name; for an array it is
    ``{"tensor": "<dtype>[N,...]"}``. ``rows`` is the number of rows (the first axis).

    >>> fp = fingerprint({"a": [1, 2, 3], "b": ["x", "y", None]})
    >>> fp.rows, fp.schema
    (3, {'a': 'int64', 'b': 'string'})
    >>> fingerprint({"a": [1, 2, 4], "b": ["x", "y", None]}).sha256 == fp.sha256
    False
    """
    if is_table(data):
        return _table_fingerprint(as_columns(data))
    arr = np.asarray(data)
    if arr.ndim == 0:
        raise InvalidInputError(
            "Expected a table (DataFrame, pyarrow Table, dict of columns or list of records) "
            f"or an array with at least one dimension. Got {type(data).__name__} instead."
        )
    return _tensor_fingerprint(arr)


def _table_fingerprint(cols: Columns) -> DataFingerprint:
    rows = len(next(iter(cols.values()))) if cols else 0
    h = hashlib.sha256(_MAGIC)
    h.update(b"table\n")
    h.update(_u64(len(cols)) + _u64(rows))
    for name, arr in cols.items():
        _update_text(h, name)
        _update_text(h, dtype_name(arr))
        _update_values(h, arr)
    return DataFingerprint(
        sha256=h.hexdigest(),
        rows=rows,
        schema={name: dtype_name(arr) for name, arr in cols.items()},
    )


def _tensor_fingerprint(arr: np.ndarray) -> DataFingerprint:
    dtype = dtype_name(arr)
    h = hashlib.sha256(_MAGIC)
    h.update(b"tensor\n")
    _update_text(h, dtype)
    h.update(_u64(arr.ndim) + b"".join(_u64(n) for n in arr.shape))
    _update_values(h, arr.reshape(-1))
    dims = ",".join(["N", *(str(n) for n in arr.shape[1:])])
    return DataFingerprint(
        sha256=h.hexdigest(), rows=int(arr.shape[0]), schema={"tensor": f"{dtype}[{dims}]"}
    )


def _update_values(h: _Hash, arr: np.ndarray) -> None:
    """Feed one column (or a flattened tensor) to the hash."""
    kind = arr.dtype.kind
    if kind in "OUSV":
        _update_objects(h, arr)
        return
    if kind == "M":
        arr = arr.astype("datetime64[ns]")  # dtype_name calls every datetime64 'datetime64[ns]'
    data = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    if kind in "fc":
        data = _canonical_nan(data)
    h.update(_u64(data.nbytes))
    h.update(data.view(np.uint8).data)


def _canonical_nan(arr: np.ndarray) -> np.ndarray:
    """``arr`` with every NaN as np.nan: 0.0/0.0 and np.nan differ in bits, not in meaning."""
    # A complex array is checked as its real and imaginary parts, so (nan+1j) stays (nan+1j).
    parts = arr.view(f"<f{arr.itemsize // 2}") if arr.dtype.kind == "c" else arr
    nan = np.isnan(parts)
    if not nan.any():
        return arr
    parts = parts.copy()
    parts[nan] = np.nan
    return parts.view(arr.dtype)


def _update_objects(h: _Hash, arr: np.ndarray) -> None:
    # One list comprehension over the values; the type check inlines the common case (str).
    encoded = [
        v.encode("utf-8", "surrogatepass") if type(v) is str else _encode_object(v)
        for v in arr.tolist()
    ]
    lengths = np.fromiter(map(len, encoded), dtype="<i8", count=len(encoded))
    h.update(_u64(len(encoded)))
    h.update(lengths.view(np.uint8).data)
    h.update(b"".join(encoded))


def _encode_object(v: object) -> bytes:
    if is_missing(v):
        return _MISSING
    if isinstance(v, str):
        return v.encode("utf-8", "surrogatepass")
    if isinstance(v, bytes | bytearray | memoryview):
        return b"\xffb" + bytes(v)
    if isinstance(v, bool | np.bool_):
        return b"\xff?1" if v else b"\xff?0"
    if isinstance(v, int | np.integer):
        return b"\xffi" + str(int(v)).encode()
    if isinstance(v, float | np.floating):
        return b"\xfff" + float(v).hex().encode()
    kind = f"{type(v).__module__}.{type(v).__qualname__}"
    return b"\xffo" + f"{kind}:{v}".encode("utf-8", "surrogatepass")



def _update_text(h: _Hash, text: str) -> None:
    raw = text.encode("utf-8", "surrogatepass")
    h.update(_u64(len(raw)) + raw)


def _u64(n: int) -> bytes:
    return int(n).to_bytes(8, "little")
