"""Signatures: what a model takes and returns, inferred from samples and enforced on predict.

A schema is either *columns* (a table: names, dtypes, whether missing values occur) or
*tensors* (names, dtypes and shapes, ``-1`` for a free dimension). Enforcement allows safe casts
(int to float, float32 to float64, any float width to another) and nothing that loses meaning
(float to int, text to numbers). Every error names the column or tensor and what was expected.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from modelyard.core.tabular import Columns, as_columns, dtype_name, is_missing, is_table
from modelyard.errors import InvalidInputError, SignatureError

__all__ = ["ColumnSpec", "Schema", "Signature", "TensorSpec", "infer_schema"]

_NUMERIC_KINDS = "biuf"


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One column of a table: its name, dtype, whether missing values are allowed and whether
    it holds sensitive data (never written to the inference log in clear)."""

    name: str
    dtype: str
    nullable: bool = False
    sensitive: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "nullable": self.nullable}
        if self.sensitive:  # absent means False: signatures stored before stay byte-identical
            out["sensitive"] = True
        return out


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One tensor: its name, dtype and shape (``-1`` marks a free dimension)."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True, slots=True)
class Schema:
    """Columns of a table, or tensors."""

    kind: Literal["columns", "tensors"]
    columns: tuple[ColumnSpec, ...] = ()
    tensors: tuple[TensorSpec, ...] = ()

    @property
    def names(self) -> list[str]:
        specs = self.columns if self.kind == "columns" else self.tensors
        return [s.name for s in specs]

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "columns":
            return {"kind": "columns", "columns": [c.to_dict() for c in self.columns]}
        return {"kind": "tensors", "tensors": [t.to_dict() for t in self.tensors]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Schema:
        if d["kind"] == "columns":
            cols = tuple(
                ColumnSpec(c["name"], c["dtype"], bool(c.get("nullable", False)),
                           bool(c.get("sensitive", False)))
                for c in d["columns"]
            )
            return cls("columns", columns=cols)
        tensors = tuple(
            TensorSpec(t["name"], t["dtype"], tuple(int(x) for x in t["shape"]))
            for t in d["tensors"]
        )
        return cls("tensors", tensors=tensors)

    def validate(self, data: Any) -> Columns | np.ndarray:
        """Check ``data`` against this schema and return it in canonical form.

        Columns come back as an ordered dict in schema order, cast where a cast is safe; a
        single tensor comes back as one ndarray.
        """
        if self.kind == "columns":
            return self._validate_columns(data)
        return self._validate_tensor(data)

    def _validate_columns(self, data: Any) -> Columns:
        if is_table(data):
            cols = as_columns(data)
        else:
            arr = np.asarray(data)
            if arr.ndim == 1 and len(self.columns) > 1 and arr.shape[0] == len(self.columns):
                arr = arr.reshape(1, -1)
            if arr.ndim != 2 or arr.shape[1] != len(self.columns):
                raise SignatureError(
                    f"Expected a table with columns {_preview(self.names)} or a 2-D array with "
                    f"{len(self.columns)} columns. Got an array of shape {arr.shape} instead."
                )
            fast = self._validate_matrix(arr)
            if fast is not None:
                return fast
            cols = {spec.name: arr[:, i] for i, spec in enumerate(self.columns)}
        expected = [c.name for c in self.columns]
        missing = [n for n in expected if n not in cols]
        unknown = [n for n in cols if n not in set(expected)]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing column(s) {missing}")
            if unknown:
                parts.append(f"unknown column(s) {unknown}")
            raise SignatureError(
                f"The input does not match the model's columns: {' and '.join(parts)}. "
                f"Expected exactly {_preview(expected)}."
            )
        return {spec.name: _conform(cols[spec.name], spec.dtype, spec.nullable, spec.name,
                                    "column") for spec in self.columns}

    def _validate_matrix(self, arr: np.ndarray) -> Columns | None:
        """One cast and one NaN check for a numeric matrix whose columns share a dtype (what
        tensor clients send), instead of one per column: a server's per-request cost."""
        dtypes = {spec.dtype for spec in self.columns}
        if len(dtypes) != 1 or arr.dtype.kind not in "biuf":
            return None
        want = next(iter(dtypes))
        if want == "string":
            return None
        target = np.dtype(want)
        if arr.dtype != target:
            if not _safe_cast(arr.dtype, target):
                return None  # the per-column path names the column and the problem
            arr = arr.astype(target)
        if target.kind == "f":
            strict = [i for i, spec in enumerate(self.columns) if not spec.nullable]
            if strict and np.isnan(arr[:, strict]).any():
                return None  # the per-column path names the column holding NaN
        return {spec.name: arr[:, i] for i, spec in enumerate(self.columns)}

    def _validate_tensor(self, data: Any) -> np.ndarray:
        if len(self.tensors) != 1:
            raise SignatureError(
                f"This model takes {len(self.tensors)} tensors {self.names}; pass them as a "
                "dict of arrays."
            )
        spec = self.tensors[0]
        if type(data) is np.ndarray and data.dtype is _dtype_of(spec.dtype) and (
                _fits(spec.shape, data.shape)):
            # What a server sees on every request: an array of the declared dtype and shape
            # (tensors may hold NaN). A cheap path, measured at ~0.4 us against ~2 us.
            return data
        if is_table(data):
            cols = as_columns(data)
            arr = np.column_stack(list(cols.values())) if cols else np.empty((0, 0))
        else:
            arr = np.asarray(data)
        if arr.ndim == len(spec.shape) - 1 and arr.ndim >= 1:
            arr = arr.reshape(1, *arr.shape)  # one example without the batch dimension
        if not _fits(spec.shape, arr.shape):
            raise SignatureError(
                f"Tensor {spec.name!r} must have shape {_shape(spec.shape)}. "
                f"Got {_shape(arr.shape)} instead."
            )
        return _conform(arr, spec.dtype, True, spec.name, "tensor")


@dataclass(frozen=True, slots=True)
class Signature:
    """Inputs (and optionally outputs) of a model."""

    inputs: Schema
    outputs: Schema | None = None

    def validate_input(self, data: Any) -> Columns | np.ndarray:
        return self.inputs.validate(data)

    @property
    def sensitive_columns(self) -> frozenset[str]:
        """Names of the input columns marked sensitive."""
        return frozenset(c.name for c in self.inputs.columns if c.sensitive)

    def with_sensitive(self, names: Iterable[str]) -> Signature:
        """This signature with the input columns ``names`` marked sensitive (others unchanged).

        >>> sig = Signature.infer({"ssn": ["1"], "age": [3]}).with_sensitive(["ssn"])
        >>> sorted(sig.sensitive_columns)
        ['ssn']
        """
        wanted = list(dict.fromkeys(str(n) for n in names))
        if not wanted:
            return self
        if self.inputs.kind != "columns":
            raise InvalidInputError(
                f"Columns {wanted} cannot be marked sensitive: the model takes tensors, not "
                "named columns.", hint="Mark columns sensitive only for tabular models.")
        known = set(self.inputs.names)
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise InvalidInputError(
                f"Cannot mark {unknown} sensitive: the model's input columns are "
                f"{_preview(self.inputs.names)}.",
                hint="Check the spelling; names are case-sensitive.")
        chosen = set(wanted)
        columns = tuple(replace(c, sensitive=True) if c.name in chosen else c
                        for c in self.inputs.columns)
        return replace(self, inputs=replace(self.inputs, columns=columns))

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs.to_dict(),
            "outputs": self.outputs.to_dict() if self.outputs else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Signature:
        outputs = Schema.from_dict(d["outputs"]) if d.get("outputs") else None
        return cls(Schema.from_dict(d["inputs"]), outputs)

    @classmethod
    def infer(cls, inputs: Any, outputs: Any = None) -> Signature:
        """Infer a signature from sample input (and output) data.

        >>> Signature.infer({"age": [31, 40], "city": ["a", "b"]}).inputs.names
        ['age', 'city']
        """
        return cls(infer_schema(inputs), infer_schema(outputs) if outputs is not None else None)


def infer_schema(data: Any, name: str = "input") -> Schema:
    """Infer a schema: columns for tables, one tensor (first dimension free) otherwise."""
    if is_table(data):
        cols = as_columns(data)
        return Schema(
            "columns",
            columns=tuple(
                ColumnSpec(n, dtype_name(a), bool(_missing_mask(a).any())) for n, a in cols.items()
            ),
        )
    arr = np.asarray(data)
    shape = (-1, *arr.shape[1:]) if arr.ndim >= 1 else ()
    return Schema("tensors", tensors=(TensorSpec(name, dtype_name(arr), shape),))


def _preview(names: list[str], limit: int = 8) -> str:
    """A list short enough for one error line: the first names and how many in all."""
    if len(names) <= limit:
        return str(names)
    return f"{str(names[:limit])[:-1]}, ... ({len(names)} columns)]"


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join("N" if s == -1 else str(s) for s in shape) + "]"


def _missing_mask(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind == "f":
        return np.asarray(np.isnan(arr))
    if arr.dtype.kind == "O":
        return np.asarray(np.frompyfunc(is_missing, 1, 1)(arr), dtype=bool)
    return np.zeros(arr.shape, dtype=bool)


def _fits(declared: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """True when ``shape`` matches a declared tensor shape (``-1``: any size)."""
    if len(shape) != len(declared):
        return False
    for i, want in enumerate(declared):  # noqa: SIM110  (no generator on the request path)
        if want != -1 and want != shape[i]:
            return False
    return True


@functools.lru_cache(maxsize=64)
def _dtype_of(name: str) -> np.dtype[Any] | None:
    """The numpy dtype of a signature dtype name (None for 'string'), built once per name."""
    return None if name == "string" else np.dtype(name)


def _conform(arr: np.ndarray, want: str, nullable: bool, name: str, what: str) -> np.ndarray:
    """Cast ``arr`` to dtype ``want`` where that is safe, else raise a SignatureError."""
    if want == "string":
        if arr.dtype.kind not in "OUS":
            raise SignatureError(
                f"The {what} {name!r} must hold text (string). Got {dtype_name(arr)} values "
                "instead."
            )
        return arr
    target = _dtype_of(want)
    assert target is not None
    if arr.dtype.kind == "O":
        arr = _objects_to_numbers(arr, target, name, what)
    elif arr.dtype.kind in "US":
        raise SignatureError(
            f"The {what} {name!r} must hold {want} numbers. Got text instead."
        )
    if arr.dtype != target:
        if not _safe_cast(arr.dtype, target):
            raise SignatureError(
                f"The {what} {name!r} must be {want}; {arr.dtype.name} cannot be cast to it "
                "without losing information."
            )
        arr = arr.astype(target)
    if not nullable and arr.dtype.kind == "f" and np.isnan(arr).any():
        raise SignatureError(
            f"The {what} {name!r} holds missing values (NaN or null), which the model's "
            "signature does not allow."
        )
    return arr


def _safe_cast(src: np.dtype[Any], dst: np.dtype[Any]) -> bool:
    if np.can_cast(src, dst, "safe"):
        return True
    # Any float width to any other, and any integer to a float: JSON clients send float64.
    return dst.kind == "f" and src.kind in "biuf"


def _objects_to_numbers(arr: np.ndarray, target: np.dtype[Any], name: str, what: str) -> np.ndarray:
    bad = [v for v in arr.ravel()[:1000] if isinstance(v, str | bytes)]
    if bad:
        raise SignatureError(
            f"The {what} {name!r} must hold {target.name} numbers. Got text such as {bad[0]!r}."
        )
    try:
        if target.kind == "f":
            return np.array([np.nan if is_missing(v) else v for v in arr.ravel()],
                            dtype=np.float64).reshape(arr.shape)
        return np.asarray(arr.tolist())
    except (TypeError, ValueError) as exc:
        raise SignatureError(
            f"The {what} {name!r} must hold {target.name} numbers: {exc}."
        ) from None
