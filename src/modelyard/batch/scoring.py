"""The per-chunk function both engines run: input table -> checked rows -> predictions -> table.

:class:`ChunkScorer` is a pure function of its chunk (no I/O, no state between chunks), so the
local engine and Ray's ``map_batches`` give the same rows whatever the chunking.

For each chunk it

1. turns the model's columns into numpy arrays of the signature's dtypes, flagging row by row
   what cannot be: a missing value where the signature allows none, text that is no number
   (columns read as text in lenient mode, see :mod:`.readers`);
2. checks the remaining rows against the signature (``Model.prepare``). When that refuses
   them, a one-row probe of the columns' dtypes tells a column that can never match (a float
   column where the model takes integers: an error for the whole input, whatever
   ``--on-error`` says) from a few bad rows, which bisection finds;
3. predicts (and ``predict_proba`` where the model has it, once for both when the runtime
   vouches that ``predict == argmax(predict_proba)``);
4. returns one output row per input row: the pass-through columns, ``prediction``,
   ``probability_<class>``, ``model_version``, and for rows that could not be scored the
   reason (``_modelyard_error``) and the original row as JSON (``_modelyard_input``).
   With ``log_inputs`` it also returns the checked inputs as ``in.<column>`` for the
   inference log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from modelyard.batch.readers import ERROR_COLUMN, INPUT_COLUMN
from modelyard.core.signature import ColumnSpec
from modelyard.core.tabular import Columns
from modelyard.errors import InvalidInputError, ModelyardError, PredictionError, SignatureError

if TYPE_CHECKING:
    import pyarrow as pa

    from modelyard.runtimes.model import Model

__all__ = [
    "LOG_PREFIX",
    "PREDICTION",
    "PROBABILITY_PREFIX",
    "ROW",
    "VERSION",
    "ChunkScorer",
    "ScoringPlan",
    "arrow_types",
]

ROW = "row"
"""The input row's 0-based position (added by the job, not the scorer)."""
PREDICTION = "prediction"
PROBABILITY_PREFIX = "probability_"
VERSION = "model_version"
LOG_PREFIX = "in."

_NUMERIC = "biuf"
_NULL_TOKENS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                "1.#QNAN", "N/A", "NA", "NULL", "NaN", "n/a", "nan", "null")
"""pyarrow's CSV null values: text columns read leniently treat them as missing, as a typed
read does."""


@dataclass(frozen=True, slots=True)
class ScoringPlan:
    """What to read and what to return, besides the model (picklable: Ray ships it)."""

    features: tuple[str, ...]
    """The input columns the model reads, in the order it takes them."""
    passthrough: tuple[str, ...] = ()
    """Input columns copied to the output as they are (an id)."""
    log_inputs: bool = False
    """Also return the checked inputs as ``in.<column>`` columns (for the inference log)."""

    def output_names(self, classes: Sequence[Any] | None) -> list[str]:
        """The output's own column names (without pass-through)."""
        names = [ROW, PREDICTION]
        names += [f"{PROBABILITY_PREFIX}{c}" for c in classes or ()]
        return [*names, VERSION]


def arrow_types(model: Model, *, lenient: bool = False) -> dict[str, pa.DataType]:
    """pyarrow types to read the model's columns with (its signature's dtypes), or text for
    numeric and boolean columns in lenient mode."""
    import pyarrow as pa

    sig = model.signature
    if sig is None or sig.inputs.kind != "columns":
        return {}
    out: dict[str, pa.DataType] = {}
    for spec in sig.inputs.columns:
        if spec.dtype == "string":
            out[spec.name] = pa.string()
            continue
        try:
            dtype = np.dtype(spec.dtype)
        except TypeError:
            continue
        if dtype.kind in _NUMERIC:
            out[spec.name] = pa.string() if lenient else pa.from_numpy_dtype(dtype)
    return out


class _Flags:
    """One chunk's findings: per-row reasons a row cannot be scored (the first reason found
    wins), and for columns read as text, the parsed values and the texts that did not parse
    (so a quarantined row shows ``1.5`` as a number and ``abc`` as it was written)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.reasons: np.ndarray | None = None
        self.parsed: dict[str, pa.ChunkedArray] = {}
        self.texts: dict[str, dict[int, str]] = {}

    def add(self, rows: np.ndarray, reasons: Sequence[str] | str) -> None:
        if rows.size == 0:
            return
        if self.reasons is None:
            self.reasons = np.full(self.n, None, dtype=object)
        fresh = self.reasons[rows] == None  # noqa: E711  (elementwise on an object array)
        texts = np.asarray(reasons, dtype=object) if not isinstance(reasons, str) else None
        if texts is None:
            self.reasons[rows[fresh]] = reasons
        else:
            self.reasons[rows[fresh]] = texts[fresh]

    def bad(self) -> np.ndarray | None:
        """A boolean mask of the flagged rows, or None when there are none."""
        if self.reasons is None:
            return None
        mask = self.reasons != None  # noqa: E711
        return mask if mask.any() else None


class ChunkScorer:
    """Scores one chunk (a pyarrow Table) with a loaded model.

    >>> scorer = ChunkScorer(model, ScoringPlan(features=("age", "income"),
    ...                                         passthrough=("id",)))   # doctest: +SKIP
    >>> scorer(table).column_names                                      # doctest: +SKIP
    ['id', 'prediction', 'probability_0', 'probability_1', 'model_version', ...]
    """

    def __init__(self, model: Model, plan: ScoringPlan) -> None:
        self.model = model
        self.plan = plan
        sig = model.signature
        self.specs: dict[str, ColumnSpec] = (
            {c.name: c for c in sig.inputs.columns}
            if sig is not None and sig.inputs.kind == "columns" else {})
        self.tensor_input = sig is not None and sig.inputs.kind == "tensors"
        predictor = model.predictor
        self._proba = getattr(predictor, "predict_proba", None) if model.has_proba else None
        classes = getattr(predictor, "classes", None)
        self.classes: np.ndarray | None = np.asarray(classes) if classes is not None else None
        self._derive = self._proba is not None and self.classes is not None and bool(
            getattr(predictor, "predict_from_proba", False))
        self.version = model.version.version

    # -- the chunk ---------------------------------------------------------------------------
    def __call__(self, table: pa.Table) -> pa.Table:
        """Score ``table``; one output row per input row, in order."""
        n = table.num_rows
        flags = _Flags(n)
        raw: np.ndarray | None = None
        if ERROR_COLUMN in table.column_names:  # rows the reader could not parse
            reasons = table.column(ERROR_COLUMN).to_numpy(zero_copy_only=False)
            rows = np.flatnonzero(reasons != None)  # noqa: E711
            flags.add(rows, reasons[rows])
            raw = table.column(INPUT_COLUMN).to_numpy(zero_copy_only=False)
        columns = {name: self._column(table.column(name), name, flags)
                   for name in self.plan.features}
        bad = flags.bad()
        good = np.flatnonzero(~bad) if bad is not None else None
        prepared, good = self._check(columns, good, flags, n)
        outputs: dict[str, np.ndarray] = {}
        if good is None or good.size:
            outputs = self._predict(prepared, n if good is None else int(good.size))
        return self._output(table, outputs, prepared, good, flags, raw)

    # -- 1. columns --------------------------------------------------------------------------
    def _column(self, column: pa.ChunkedArray, name: str, flags: _Flags) -> np.ndarray:
        import pyarrow as pa

        spec = self.specs.get(name)
        kind = _spec_kind(spec)
        typ = column.type
        if pa.types.is_dictionary(typ):
            column = column.cast(typ.value_type)
            typ = column.type
        if kind == "string" or kind is None:
            if pa.types.is_null(typ):
                return np.full(len(column), None, dtype=object)
            return np.asarray(column.to_numpy())
        assert spec is not None
        target = np.dtype(spec.dtype)
        if pa.types.is_null(typ):
            column = pa.chunked_array([pa.nulls(len(column), pa.from_numpy_dtype(target))])
        elif pa.types.is_string(typ) or pa.types.is_large_string(typ):
            column = self._parse_text(column, name, target, flags)
        elif not (pa.types.is_integer(typ) or pa.types.is_floating(typ)
                  or pa.types.is_boolean(typ)):
            return np.asarray(column.to_numpy())  # the dtype probe will name the problem
        if column.null_count:
            import pyarrow.compute as pc

            missing = np.asarray(column.is_null().to_numpy(zero_copy_only=False))
            if not (spec.nullable and target.kind == "f"):
                flags.add(np.flatnonzero(missing), _missing(name))
                column = pc.fill_null(column, False if pa.types.is_boolean(column.type) else 0)
        values = np.asarray(column.to_numpy())
        if target.kind == "f" and not spec.nullable and values.dtype.kind == "f":
            nan = np.isnan(values)
            if nan.any():
                flags.add(np.flatnonzero(nan), _missing(name))
        return values

    def _parse_text(self, column: pa.ChunkedArray, name: str, target: np.dtype[Any],
                    flags: _Flags) -> pa.ChunkedArray:
        """Text to numbers: a vectorised cast, and value by value only where it fails."""
        import pyarrow as pa
        import pyarrow.compute as pc

        arrow_type = pa.from_numpy_dtype(target)
        if pa.types.is_large_string(column.type):
            column = column.cast(pa.string())
        is_null = pc.or_kleene(pc.is_null(column),
                               pc.is_in(column, value_set=pa.array(_NULL_TOKENS)))
        cleaned = pc.if_else(is_null, pa.scalar(None, pa.string()), column)
        try:
            parsed = pc.cast(cleaned, arrow_type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            parsed = self._parse_values(cleaned, name, target, flags)
        flags.parsed[name] = parsed
        return parsed

    def _parse_values(self, cleaned: pa.ChunkedArray, name: str, target: np.dtype[Any],
                      flags: _Flags) -> pa.ChunkedArray:
        import pyarrow as pa

        parse = _PARSERS.get(target.kind, float)
        values: list[Any] = []
        bad_rows: list[int] = []
        bad_texts: list[str] = []
        for i, text in enumerate(cleaned.to_pylist()):
            if text is None:
                values.append(None)
                continue
            try:
                values.append(parse(text))
            except ValueError:
                values.append(None)
                bad_rows.append(i)
                bad_texts.append(f"column {name!r}: {_clip(text)!r} is not {_a(target)}")
                flags.texts.setdefault(name, {})[i] = text
        if bad_rows:
            flags.add(np.asarray(bad_rows, dtype=np.int64), bad_texts)
        return pa.chunked_array([pa.array(values, pa.from_numpy_dtype(target))])

    # -- 2. the signature --------------------------------------------------------------------
    def _check(self, columns: Columns, good: np.ndarray | None, flags: _Flags,
               n: int) -> tuple[Any, np.ndarray | None]:
        """The model's input for the good rows, checked against the signature; rows the
        signature refuses are flagged. Returns the input and the good rows (None: all)."""
        if good is not None and good.size == 0:
            return None, good
        data = _take(columns, good)
        try:
            return self.model.prepare(data), good
        except SignatureError as exc:
            first = exc
        self._probe(columns, first)
        rows = good if good is not None else np.arange(n)
        self._bisect(columns, rows, first, flags)
        bad = flags.bad()
        good = np.flatnonzero(~bad) if bad is not None else None
        if good is not None and good.size == 0:
            return None, good
        return self.model.prepare(_take(columns, good)), good

    def _probe(self, columns: Columns, error: SignatureError) -> None:
        """One neutral row of each column's dtype: if even that is refused, no row can pass."""
        neutral = {name: (np.array([""], dtype=object) if arr.dtype.kind in "OUS"
                          else np.zeros(1, dtype=arr.dtype))
                   for name, arr in columns.items()}
        try:
            self.model.prepare(neutral)
        except SignatureError:
            raise InvalidInputError(
                f"No row of the input can match the model's signature: {error.message}",
                hint="Check the column types of the input file (a float column where the "
                     "model takes integers, numbers where it takes text).") from None

    def _bisect(self, columns: Columns, rows: np.ndarray, error: SignatureError,
                flags: _Flags) -> None:
        """Find the rows the signature refuses by halving: about 2 * bad * log2(rows) checks."""
        if rows.size == 1:
            flags.add(rows, error.message)
            return
        for half in np.array_split(rows, 2):
            try:
                self.model.prepare(_take(columns, half))
            except SignatureError as exc:
                self._bisect(columns, half, exc, flags)

    # -- 3. predictions ----------------------------------------------------------------------
    def _predict(self, prepared: Any, rows: int) -> dict[str, np.ndarray]:
        predictor = self.model.predictor
        uri = self.model.version.uri
        try:
            if self._derive:
                proba = np.asarray(self._proba(prepared))  # type: ignore[misc]
                assert self.classes is not None
                out = {"predict": self.classes[proba.argmax(axis=1)], "predict_proba": proba}
            else:
                out = {"predict": np.asarray(predictor.predict(prepared))}
                if self._proba is not None:
                    out["predict_proba"] = np.asarray(self._proba(prepared))
        except ModelyardError:
            raise
        except Exception as exc:
            raise PredictionError(
                f"Model {uri} raised {type(exc).__name__} while scoring a chunk: {exc}",
                hint="The rows passed the signature check; the error comes from the "
                     "model.") from exc
        for name, value in out.items():
            if value.ndim == 0 or value.shape[0] != rows:
                raise PredictionError(
                    f"Model {uri} returned {name} of shape {list(value.shape)} for {rows} "
                    "input rows; every output needs one entry per row.")
        return out

    # -- 4. the output -----------------------------------------------------------------------
    def _output(self, table: pa.Table, outputs: dict[str, np.ndarray], prepared: Any,
                good: np.ndarray | None, flags: _Flags, raw: np.ndarray | None) -> pa.Table:
        import pyarrow as pa

        n = table.num_rows
        cols: dict[str, Any] = {name: table.column(name) for name in self.plan.passthrough}
        predict = outputs.get("predict")
        if predict is None:
            cols[PREDICTION] = pa.nulls(n)
        elif predict.ndim == 1:
            cols[PREDICTION] = _scatter(predict, good, n)
        else:
            flat = predict.reshape(predict.shape[0], -1)
            for j in range(flat.shape[1]):
                cols[f"{PREDICTION}_{j}"] = _scatter(flat[:, j], good, n)
        if self._proba is not None:
            proba = outputs.get("predict_proba")
            for j, label in enumerate(self._class_names(proba)):
                cols[f"{PROBABILITY_PREFIX}{label}"] = (
                    pa.nulls(n, pa.float64()) if proba is None
                    else _scatter(proba[:, j], good, n))
        cols[VERSION] = pa.array(np.full(n, self.version, dtype=np.int64))
        reasons = flags.reasons
        if reasons is None:
            cols[ERROR_COLUMN] = pa.nulls(n, pa.string())
            cols[INPUT_COLUMN] = pa.nulls(n, pa.string())
        else:
            cols[ERROR_COLUMN] = pa.array(reasons, pa.string())
            cols[INPUT_COLUMN] = pa.array(self._originals(table, reasons, flags, raw),
                                          pa.string())
        if self.plan.log_inputs:
            cols.update(self._log_inputs(prepared, good, n))
        return pa.table(cols)

    def _class_names(self, proba: np.ndarray | None) -> list[str]:
        if self.classes is not None:
            return [str(c) for c in self.classes]
        width = proba.shape[1] if proba is not None and proba.ndim == 2 else 0
        return [str(j) for j in range(width)]

    def _originals(self, table: pa.Table, reasons: np.ndarray, flags: _Flags,
                   raw: np.ndarray | None) -> np.ndarray:
        """The original rows that could not be scored, as JSON (the raw line when the reader
        could not parse it)."""
        import orjson

        rows = np.flatnonzero(reasons != None)  # noqa: E711
        out = np.full(table.num_rows, None, dtype=object)
        names = [c for c in table.column_names if c not in (ERROR_COLUMN, INPUT_COLUMN)]
        records = table.select(names).take(rows).to_pylist()
        for name, parsed in flags.parsed.items():  # numbers read as text: as numbers
            for record, value in zip(records, parsed.take(rows).to_pylist(), strict=True):
                record[name] = value
        for name, texts in flags.texts.items():  # ... except those that are no numbers
            for record, row in zip(records, rows, strict=True):
                if int(row) in texts:
                    record[name] = texts[int(row)]
        for row, record in zip(rows, records, strict=True):
            if raw is not None and raw[row] is not None:  # a line that is no JSON object
                out[row] = orjson.dumps(raw[row]).decode()
            else:
                out[row] = orjson.dumps(record, default=str).decode()
        return out

    def _log_inputs(self, prepared: Any, good: np.ndarray | None, n: int) -> dict[str, Any]:
        if prepared is None:
            return {}
        if isinstance(prepared, np.ndarray):
            matrix = prepared.reshape(prepared.shape[0], -1)
            return {f"{LOG_PREFIX}{j}": _scatter(matrix[:, j], good, n)
                    for j in range(matrix.shape[1])}
        return {f"{LOG_PREFIX}{name}": _scatter(np.asarray(values), good, n)
                for name, values in prepared.items()}


# -- helpers -----------------------------------------------------------------------------------
def _spec_kind(spec: ColumnSpec | None) -> str | None:
    """``"string"``, ``"number"`` (numeric or boolean) or None (no per-column rule)."""
    if spec is None:
        return None
    if spec.dtype == "string":
        return "string"
    try:
        kind = np.dtype(spec.dtype).kind
    except TypeError:
        return None
    return "number" if kind in _NUMERIC else None


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise ValueError(text)


def _parse_float(text: str) -> float:
    if "_" in text:  # Python accepts 1_000; no CSV reader does
        raise ValueError(text)
    return float(text)


def _parse_int(text: str) -> int:
    if "_" in text:
        raise ValueError(text)
    return int(text)


_PARSERS = {"b": _parse_bool, "f": _parse_float, "i": _parse_int, "u": _parse_int}


def _a(dtype: np.dtype[Any]) -> str:
    return "true or false" if dtype.kind == "b" else f"a {dtype.name} number"


def _missing(name: str) -> str:
    return f"column {name!r}: missing value, which the model's signature does not allow"


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _take(columns: Columns, rows: np.ndarray | None) -> Columns:
    if rows is None:
        return columns
    return {name: values[rows] for name, values in columns.items()}


def _scatter(values: np.ndarray, good: np.ndarray | None, n: int) -> pa.Array:
    """``values`` of the good rows as a column of all ``n`` rows, null elsewhere."""
    import pyarrow as pa

    if values.dtype.kind == "U":
        values = values.astype(object)
    if good is None:
        return pa.array(values, from_pandas=values.dtype.kind == "O")
    if values.dtype.kind == "O":
        full = np.full(n, None, dtype=object)
        full[good] = values
        return pa.array(full, from_pandas=True)
    full = np.zeros(n, dtype=values.dtype)
    full[good] = values
    mask = np.ones(n, dtype=bool)
    mask[good] = False
    return pa.array(full, mask=mask)
