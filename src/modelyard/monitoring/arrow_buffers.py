"""numpy <-> Arrow for the inference log's writer, through the arrays' buffers.

Written by hand, not with ``pa.array`` and ``to_numpy``: pyarrow's own conversions import
pandas the first time they run, in either direction and whatever the input, to check whether
it is a pandas object. A serving process that logs its predictions but never meets a DataFrame
then holds pandas for nothing (measured: peak RSS of ``modelyard serve`` with one logistic
regression 285 MiB with the log on against 175 with it off). What is built here is what
``pa.array`` builds from the same numpy data (same Arrow types, NaN kept as NaN, not null);
anything else falls back to pyarrow.

>>> primitive(np.array([1.5, 2.0])).to_pylist()
[1.5, 2.0]
>>> strings(["a", None, "bc"]).to_pylist()
['a', None, 'bc']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["column_numpy", "primitive", "strings"]

_BY_BUFFER = frozenset("biuf")  # bool, signed and unsigned integers, floats
_MAX_OFFSET = 2**31 - 1  # Arrow's string type has 32-bit offsets


def primitive(values: np.ndarray) -> pa.Array:
    """A 1-D numeric or boolean numpy array as an Arrow array (others: ``pa.array``)."""
    import pyarrow as pa

    kind = values.dtype.kind
    if kind not in _BY_BUFFER or values.ndim != 1:
        return pa.array(values)
    n = len(values)
    if kind == "b":  # Arrow packs booleans into bits, least significant first
        bits = np.packbits(values, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), n, [None, pa.py_buffer(bits)])
    if not values.dtype.isnative:
        values = values.astype(values.dtype.newbyteorder("="))
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), n,
                                 [None, pa.py_buffer(values)])


def strings(items: Sequence[str | None]) -> pa.Array:
    """Python strings (None: null) as an Arrow ``string`` array."""
    import pyarrow as pa

    n = len(items)
    if n == 0:
        return pa.array([], pa.string())
    first = items[0]
    if items.count(first) == n:  # one value throughout (a route, no error): no per-row work
        if first is None:
            return pa.nulls(n, pa.string())
        raw = first.encode()
        if len(raw) * n > _MAX_OFFSET:
            return pa.array(items, pa.string())
        offsets = (np.arange(n + 1, dtype=np.int64) * len(raw)).astype(np.int32)
        return pa.Array.from_buffers(pa.string(), n,
                                     [None, pa.py_buffer(offsets), pa.py_buffer(raw * n)])
    encoded = [b"" if s is None else s.encode() for s in items]
    ends = np.cumsum(np.fromiter(map(len, encoded), np.int64, n))
    if n and ends[-1] > _MAX_OFFSET:
        return pa.array(items, pa.string())
    offsets = np.zeros(n + 1, np.int32)
    offsets[1:] = ends
    validity = None
    if None in items:
        present = np.fromiter((s is not None for s in items), bool, n)
        validity = pa.py_buffer(np.packbits(present, bitorder="little"))
    return pa.Array.from_buffers(pa.string(), n, [validity, pa.py_buffer(offsets),
                                                  pa.py_buffer(b"".join(encoded))])


def column_numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numeric column without nulls as a numpy array, read from its buffers (a column
    with nulls, or of another type, goes through ``to_numpy``)."""
    import pyarrow as pa

    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    kind = column.type
    if column.null_count or not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        return np.asarray(column.to_numpy())
    code = "f" if pa.types.is_floating(kind) else (
        "i" if pa.types.is_signed_integer(kind) else "u")
    dtype = np.dtype(f"{code}{kind.bit_width // 8}")  # (to_pandas_dtype imports pandas)
    parts = [np.frombuffer(chunk.buffers()[1], dtype=dtype, count=len(chunk),  # type: ignore[arg-type]
                           offset=chunk.offset * dtype.itemsize)
             for chunk in chunks if len(chunk)]
    if not parts:
        return np.empty(0, dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
