"""JSON rows, records and columns, and CSV text, to numpy arrays: shared by the v1-style codecs.

Numbers become numeric arrays in one ``np.asarray`` call (no per-element Python loop); text
stays as the original Python objects in an object array, because numpy would quietly turn
numbers mixed with text into text. A ``null`` among numbers becomes NaN, as in pandas.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np

from modelyard.core.tabular import Columns
from modelyard.errors import InvalidInputError
from modelyard.protocol._json import describe

__all__ = [
    "array_from_json",
    "mapping_to_columns",
    "read_csv",
    "records_to_columns",
    "rows_to_array",
    "rows_to_columns",
]

# Cells pandas.read_csv reads as missing by default (the common ones).
_CSV_MISSING = frozenset(
    {"", "NA", "N/A", "NaN", "nan", "-nan", "NULL", "null", "None", "#N/A", "<NA>"}
)
_PY_KIND: dict[str, type] = {"b": bool, "i": int, "u": int, "f": float}
_CSV_TRUE = frozenset({"True", "true", "TRUE"})
_CSV_FALSE = frozenset({"False", "false", "FALSE"})


def array_from_json(values: list[Any], what: str, *, ragged_ok: bool = True) -> np.ndarray:
    """One array from a JSON list: numbers as numbers, text and mixed values as objects.

    Lists of equal length nest into more dimensions. Lists of different lengths become a 1-D
    object array holding the lists when ``ragged_ok``, else an error naming ``what``.
    """
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError):
        if not ragged_ok:
            raise InvalidInputError(
                f"{what} holds rows of different lengths; every row needs the same number "
                "of values."
            ) from None
        return np.fromiter(values, dtype=object, count=len(values))
    kind = arr.dtype.kind
    if kind in "biuf":
        return arr
    if kind in "US":
        # Keep the original values: numpy turned any numbers among the text into text.
        return np.array(values, dtype=object)
    if kind == "O" and arr.size:
        leaves = arr.ravel().tolist()
        if all(v is None or type(v) in (int, float) for v in leaves) and any(
            v is not None for v in leaves
        ):
            return np.array(leaves, dtype=np.float64).reshape(arr.shape)
    return arr


def rows_to_array(rows: object, what: str) -> np.ndarray:
    """A list of rows (or of scalars) as one array; rows must have equal lengths."""
    if not isinstance(rows, list):
        raise InvalidInputError(f"{what} must be a list of rows; got {describe(rows)}.")
    return array_from_json(rows, what, ragged_ok=False)


def records_to_columns(records: list[Any], what: str) -> Columns:
    """``[{"a": 1, "b": "x"}, ...]`` as columns; a key missing from a record reads as null."""
    if not records:
        raise InvalidInputError(f"{what} is empty; send at least one record.")
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise InvalidInputError(
                f"{what}[{i}] must be an object of column: value; got {describe(record)}."
            )
    names = list(dict.fromkeys(k for record in records for k in record))
    return rows_to_columns([[r.get(n) for n in names] for r in records], names)


def rows_to_columns(rows: list[list[Any]], names: list[str]) -> Columns:
    """Rows of equal length (checked by the caller) as one column per name.

    Each column is typed by its own values, as pandas does. When every cell is a number the
    table is read by one ``np.asarray`` call and the columns are views on it.
    """
    if not rows:
        return {n: np.array([], dtype=object) for n in names}
    try:
        table = np.asarray(rows)
    except (ValueError, TypeError):
        table = None  # cells holding lists of different lengths
    if table is not None and table.dtype.kind in "biuf" and table.ndim == 2:
        # numpy gave the whole table one dtype; a column whose first value is of another
        # JSON kind (an int among floats, a bool among ints) is read on its own.
        kind = _PY_KIND[table.dtype.kind]
        cols = dict(zip(names, table.T, strict=True))
        for j, (name, value) in enumerate(zip(names, rows[0], strict=True)):
            if type(value) is not kind:
                cols[name] = array_from_json([row[j] for row in rows], f"Column {name!r}")
        return cols
    return {
        n: array_from_json(list(cells), f"Column {n!r}")
        for n, cells in zip(names, zip(*rows, strict=True), strict=True)
    }


def mapping_to_columns(obj: dict[str, Any], what: str) -> Columns:
    """``{"a": [1, 2], "b": ["x", "y"]}`` as named arrays of equal length."""
    if not obj:
        raise InvalidInputError(f"{what} is empty; send at least one named column.")
    cols: Columns = {}
    for name, values in obj.items():
        if not isinstance(values, list):
            raise InvalidInputError(
                f"{what}: column {name!r} must be a list of values; got {describe(values)}."
            )
        cols[name] = array_from_json(values, f"Column {name!r}")
    check_lengths(cols, what)
    return cols


def check_lengths(cols: Columns, what: str) -> None:
    """Raise unless every array has the same first dimension."""
    lengths = {len(a) if a.ndim else 1 for a in cols.values()}
    if len(lengths) > 1:
        detail = ", ".join(f"{k}={len(a) if a.ndim else 1}" for k, a in cols.items())
        raise InvalidInputError(f"{what}: all columns must have the same length. Got {detail}.")


def read_csv(body: bytes) -> Columns:
    """CSV with a header row as columns: int64, float64 (blanks as NaN), bool, or text.

    A column is numeric when every cell parses as a number, as ``pandas.read_csv`` decides;
    pandas itself is not imported.
    """
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"The CSV body is not UTF-8 text: {exc}.") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if not header:
            raise InvalidInputError(
                "The CSV body is empty; expected a header row with the column names, then "
                "one row per line."
            )
        width = len(header)
        rows: list[list[str]] = []
        for row in reader:
            if not row:
                continue  # blank line, as pandas skips them
            if len(row) != width:
                raise InvalidInputError(
                    f"CSV line {reader.line_num} has {len(row)} fields but the header names "
                    f"{width} columns."
                )
            rows.append(row)
    except csv.Error as exc:
        raise InvalidInputError(f"The CSV body cannot be read: {exc}.") from None
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise InvalidInputError(f"The CSV header names column {name!r} twice.")
        seen.add(name)
    columns = list(zip(*rows, strict=True)) if rows else [()] * width
    return {name: _csv_column(list(cells)) for name, cells in zip(header, columns, strict=True)}


def _csv_column(cells: list[str]) -> np.ndarray:
    if not cells:
        return np.array([], dtype=object)
    try:
        return np.array(cells, dtype=np.int64)
    except (ValueError, OverflowError):
        pass
    distinct = set(cells)
    if distinct <= _CSV_TRUE | _CSV_FALSE:
        return np.array([c in _CSV_TRUE for c in cells], dtype=bool)
    missing = distinct & _CSV_MISSING
    try:
        if missing:
            return np.array(["nan" if c in missing else c for c in cells], dtype=np.float64)
        return np.array(cells, dtype=np.float64)
    except ValueError:
        pass
    if missing:
        return np.array([None if c in missing else c for c in cells], dtype=object)
    return np.array(cells, dtype=object)
