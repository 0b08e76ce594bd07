"""Data quality: is this data fit to be scored by a model version, judged by its reference?

:func:`check_quality` compares a table (live traffic or a file) with the version's
:class:`~modelyard.monitoring.profile.ReferenceProfile` and, when given, its signature, and
returns a :class:`QualityReport` of named checks. Every check compares a value with a
threshold and passes when ``value <= threshold``:

``schema``
    Columns the model expects (the signature's input columns, else the profile's) that are
    absent, plus columns nobody expects (unless ``allow_extra_columns``). Value: their count;
    threshold 0. The other checks skip absent columns.
``duplicate_rows``
    Share of rows identical to an earlier row, over all columns of the data except
    ``ignore_columns``. Missing values equal each other, as in pandas; in a numeric column
    that holds only numbers and missing values, cells compare by number (``"2"`` equals
    ``2.0``). Rows are hashed to 64 bits (any two distinct rows of a million collide with a
    probability of about 3e-8).
``missing`` (per column)
    Share of rows whose value is None, NaN, NaT, pandas.NA or, in numeric columns, ±inf
    (as the profile counts them). Allowed: the reference's own missing share plus
    ``missing_margin``, except that a column the signature marks as not nullable allows none
    (the server would refuse those rows). A column's ``max_missing_rate`` overrides both.
``type_mismatch`` (per column)
    Share of rows holding a value that cannot be read as the column's type: the signature's
    dtype, else the profile's kind. Text that reads as a number counts as a number (a CSV
    column turns to text as soon as one cell is not a number, and the check should point at
    that cell, not at the whole column); integer columns also refuse non-integral numbers;
    datetime columns take datetimes and ISO 8601 text; boolean columns take booleans, 0/1
    and ``"true"``/``"false"``; text columns take any scalar, compared by ``str(value)``.
``out_of_range`` (numeric and datetime columns)
    Share of the present values outside the reference's ``[min, max]``. Allowed:
    ``max_out_of_range_rate`` plus ``2 / (count + 1)``, the chance that one more draw from
    the reference's own distribution falls outside the min and max of its ``count`` values,
    so that a small reference does not fail data that did not change.
``unseen_category`` (categorical and boolean columns)
    Share of the present values outside the reference's kept categories. The profile keeps
    the most frequent categories only and counts the rest in ``other_count``; a value outside
    the kept ones may be one of those rarer categories, so the allowed share is
    ``max_unseen_category_rate`` plus the reference's own share of such values,
    ``(other_count + kept categories seen once) / count``: the values beyond the kept
    categories, and the Good-Turing estimate of the chance of a category never seen.

Rates of missing values and type mismatches are over rows; rates of out-of-range values and
unseen categories over the values present and of the right type, the basis of the
reference's own rates they are compared with.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from modelyard.core.signature import Signature
from modelyard.core.tabular import as_columns
from modelyard.errors import InvalidInputError
from modelyard.monitoring.profile import ColumnProfile, ReferenceProfile

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CHECK_NAMES",
    "ColumnQuality",
    "QualityCheck",
    "QualityConfig",
    "QualityReport",
    "check_quality",
]

CHECK_NAMES = (
    "schema",
    "duplicate_rows",
    "missing",
    "type_mismatch",
    "out_of_range",
    "unseen_category",
)
"""Every check name a :class:`QualityReport` can hold, in the order they are reported."""

Rate = Annotated[float, Field(ge=0.0, le=1.0)]
ValueType = Literal["integer", "float", "text", "boolean", "datetime"]

_EXAMPLES = 3  # values quoted in a check's detail


@dataclass(slots=True)
class _Memo:
    """Work the checks did that the duplicate search reuses, by ``id(column)``: factorized
    columns, and the numbers read from object columns that hold only numbers."""

    codes: dict[int, tuple[np.ndarray, list[Any]]] = field(default_factory=dict)
    numbers: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QualityCheck:
    """One check: ``value`` against ``threshold``; it passes when ``value <= threshold``.

    ``column`` is None for checks of the whole table (``schema``, ``duplicate_rows``).
    ``value`` is a share in [0, 1], except for ``schema`` where it counts columns.
    """

    name: str
    column: str | None
    value: float
    threshold: float
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of the fields."""
        return {
            "name": self.name,
            "column": self.column,
            "value": self.value,
            "threshold": self.threshold,
            "passed": self.passed,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class QualityReport:
    """The checks :func:`check_quality` ran on ``n_rows`` rows, and the metrics behind them
    (a report built by hand from checks alone has no metrics)."""

    n_rows: int
    checks: tuple[QualityCheck, ...]
    _metrics: dict[str, float] = field(default_factory=dict, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(c.passed for c in self.checks)

    def failed(self) -> tuple[QualityCheck, ...]:
        """The checks that failed, in report order."""
        return tuple(c for c in self.checks if not c.passed)

    def metrics(self) -> dict[str, float]:
        """Metric values for alert rules and trends.

        Table-wide: ``quality.missing_rate`` (share of missing cells over the expected
        columns, an absent column counting as missing), ``quality.type_mismatch_rate`` (the
        same for mismatches), ``quality.out_of_range_rate`` and
        ``quality.unseen_category_rate`` (over the values present in the columns checked),
        ``quality.duplicate_rate`` and ``quality.schema_violations`` (a count). Per column:
        ``feature.<col>.missing_rate`` and ``feature.<col>.type_mismatch_rate``, plus
        ``feature.<col>.out_of_range_rate`` or ``feature.<col>.unseen_category_rate`` where
        that check applies.
        """
        return dict(self._metrics)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: rows, whether all passed, the checks and the metrics."""
        return {
            "n_rows": self.n_rows,
            "passed": self.passed,
            "checks": [c.to_dict() for c in self.checks],
            "metrics": self.metrics(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QualityReport:
        """The report :meth:`to_dict` described (for reports read back from storage)."""
        checks = tuple(
            QualityCheck(str(c["name"]), c["column"], float(c["value"]), float(c["threshold"]),
                         bool(c["passed"]), str(c["detail"]))
            for c in d["checks"]
        )
        metrics = {str(k): float(v) for k, v in d.get("metrics", {}).items()}
        return cls(n_rows=int(d["n_rows"]), checks=checks, _metrics=metrics)


class ColumnQuality(BaseModel):
    """Thresholds for one column; a field left unset takes the :class:`QualityConfig` value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    missing_margin: Rate | None = None
    """Missing share allowed above the reference's own."""
    max_missing_rate: Rate | None = None
    """Missing share allowed, whatever the reference and the signature say."""
    max_type_mismatch_rate: Rate | None = None
    max_out_of_range_rate: Rate | None = None
    """Set to 1 to turn the range check off (e.g. for timestamps, always beyond the reference)."""
    max_unseen_category_rate: Rate | None = None


class QualityConfig(BaseModel):
    """Thresholds of the data-quality checks; see :mod:`modelyard.monitoring.quality` for how
    each is applied. Loaded from YAML by ``modelyard data audit --config``:

    .. code-block:: yaml

        missing_margin: 0.02
        max_duplicate_rate: 0.01
        ignore_columns: [request_id]
        columns:
          signup_date: {max_out_of_range_rate: 1.0}
          income: {max_missing_rate: 0.3}
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    missing_margin: Rate = 0.05
    """Missing share allowed per column above the reference's own missing share."""
    max_type_mismatch_rate: Rate = 0.0
    """Share of values per column that may fail to read as the column's type."""
    max_out_of_range_rate: Rate = 0.01
    """Share of values per column allowed outside the reference range, on top of 2/(count+1)."""
    max_unseen_category_rate: Rate = 0.0
    """Share of values per column allowed outside the reference categories, on top of the
    reference's own share of values outside its kept categories."""
    max_duplicate_rate: Rate = 0.05
    """Share of rows that may repeat an earlier row."""
    allow_extra_columns: bool = False
    """Accept columns that neither the signature nor the profile knows."""
    ignore_columns: tuple[str, ...] = ()
    """Columns left out of every check (request ids, timestamps of the event, labels)."""
    columns: dict[str, ColumnQuality] = Field(default_factory=dict)
    """Per-column overrides, by column name."""

    def for_column(self, name: str) -> ColumnQuality:
        """The thresholds for column ``name``, overrides filled in from the defaults."""
        own = self.columns.get(name, ColumnQuality())
        return ColumnQuality(
            missing_margin=_first(own.missing_margin, self.missing_margin),
            max_missing_rate=own.max_missing_rate,
            max_type_mismatch_rate=_first(own.max_type_mismatch_rate,
                                          self.max_type_mismatch_rate),
            max_out_of_range_rate=_first(own.max_out_of_range_rate, self.max_out_of_range_rate),
            max_unseen_category_rate=_first(own.max_unseen_category_rate,
                                            self.max_unseen_category_rate),
        )


def check_quality(
    data: Any,
    profile: ReferenceProfile,
    *,
    signature: Signature | None = None,
    config: QualityConfig | None = None,
) -> QualityReport:
    """Check ``data`` (a dict of arrays, a pandas DataFrame or a pyarrow Table) against a
    version's reference ``profile`` and, when given, its ``signature``.

    >>> from modelyard.monitoring import compute_profile
    >>> profile, _ = compute_profile({"x": [float(i) for i in range(100)], "c": ["a", "b"] * 50})
    >>> report = check_quality({"x": [2.0, 900.0, None], "c": ["a", "z", "b"]}, profile)
    >>> report.passed, [c.name for c in report.failed()]
    (False, ['missing', 'out_of_range', 'unseen_category'])
    """
    cfg = config or QualityConfig()
    cols = _columns(data)
    n = len(next(iter(cols.values()))) if cols else 0
    expected = _expected(profile, signature)
    ignored = set(cfg.ignore_columns)
    known = set(expected) | set(cols) | ignored
    unknown = sorted(set(cfg.columns) - known)
    if unknown:
        raise InvalidInputError(
            f"The quality config has thresholds for column(s) {unknown} that neither the data "
            f"nor the reference has; the columns are {_preview(sorted(known))}.",
            hint="Fix the column names under 'columns:' in the config.",
        )
    absent = [c for c in expected if c not in cols and c not in ignored]
    extra = [c for c in cols if c not in expected and c not in ignored]

    checks: list[QualityCheck] = [_schema_check(absent, extra, cfg.allow_extra_columns)]
    metrics: dict[str, float] = {}
    memo = _Memo()

    totals = {"missing": 0, "mismatch": 0, "range_out": 0, "range_present": 0,
              "unseen": 0, "category_present": 0}
    for name, spec in expected.items():
        if name in ignored:
            continue
        if name not in cols:
            totals["missing"] += n
            metrics[f"feature.{name}.missing_rate"] = 1.0 if n else 0.0
            continue
        stats = _analyse(cols[name], spec, memo)
        limits = cfg.for_column(name)
        checks.extend(_column_checks(name, spec, stats, n, limits))
        totals["missing"] += stats.missing
        totals["mismatch"] += stats.mismatch
        metrics[f"feature.{name}.missing_rate"] = _rate(stats.missing, n)
        metrics[f"feature.{name}.type_mismatch_rate"] = _rate(stats.mismatch, n)
        if stats.out_of_range is not None:
            totals["range_out"] += stats.out_of_range
            totals["range_present"] += stats.present
            metrics[f"feature.{name}.out_of_range_rate"] = _rate(stats.out_of_range,
                                                                 stats.present)
        if stats.unseen is not None:
            totals["unseen"] += stats.unseen
            totals["category_present"] += stats.present
            metrics[f"feature.{name}.unseen_category_rate"] = _rate(stats.unseen,
                                                                    stats.present)
    dup = _duplicate_rows([a for c, a in cols.items() if c not in ignored], n, memo)
    checks.insert(1, _check("duplicate_rows", None, _rate(dup, n), cfg.max_duplicate_rate,
                            f"{dup:,} of {n:,} rows repeat an earlier row"))
    cells = n * sum(1 for c in expected if c not in ignored)
    metrics = {
        "quality.missing_rate": _rate(totals["missing"], cells),
        "quality.type_mismatch_rate": _rate(totals["mismatch"], cells),
        "quality.out_of_range_rate": _rate(totals["range_out"], totals["range_present"]),
        "quality.unseen_category_rate": _rate(totals["unseen"], totals["category_present"]),
        "quality.duplicate_rate": _rate(dup, n),
        "quality.schema_violations": float(checks[0].value),
        **metrics,
    }
    return QualityReport(n_rows=n, checks=tuple(checks), _metrics=metrics)


# -- what is expected -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Spec:
    type: ValueType | None  # None: a dtype we cannot check values against
    nullable: bool | None  # None: the signature does not say
    profile: ColumnProfile | None


def _expected(profile: ReferenceProfile, signature: Signature | None) -> dict[str, _Spec]:
    by_name = {c.name: c for c in profile.columns}
    if signature is not None and signature.inputs.kind == "columns":
        return {
            s.name: _Spec(_signature_type(s.dtype) or _profile_type(by_name.get(s.name)),
                          s.nullable, by_name.get(s.name))
            for s in signature.inputs.columns
        }
    return {c.name: _Spec(_profile_type(c), None, c) for c in profile.columns}


def _signature_type(dtype: str) -> ValueType | None:
    if dtype == "string":
        return "text"
    if dtype == "bool":
        return "boolean"
    if dtype.startswith(("int", "uint")):
        return "integer"
    if dtype.startswith("float"):
        return "float"
    if dtype.startswith("datetime64"):
        return "datetime"
    return None


def _profile_type(col: ColumnProfile | None) -> ValueType | None:
    if col is None:
        return None
    if col.kind == "numeric":
        return "integer" if col.dtype.startswith(("int", "uint")) else "float"
    if col.kind == "categorical":
        return "text"
    return col.kind


# -- per-column statistics --------------------------------------------------------------------
@dataclass(slots=True)
class _Stats:
    missing: int = 0
    mismatch: int = 0
    mismatch_examples: list[str] = field(default_factory=list)
    present: int = 0  # present and of the right type
    out_of_range: int | None = None
    range_detail: str = ""
    unseen: int | None = None
    unseen_examples: list[str] = field(default_factory=list)
    unseen_distinct: int = 0


def _analyse(col: Any, spec: _Spec, memo: _Memo) -> _Stats:
    if spec.type in ("integer", "float"):
        return _numeric_stats(col, spec, memo)
    if spec.type == "datetime":
        return _datetime_stats(col, spec, memo)
    if spec.type in ("text", "boolean"):
        return _category_stats(col, spec, memo)
    missing = int(np.count_nonzero(_isna(col)))
    return _Stats(missing=missing, present=len(col) - missing)


def _numeric_stats(col: Any, spec: _Spec, memo: _Memo) -> _Stats:
    kind = col.dtype.kind if isinstance(col, np.ndarray) else "O"
    if kind in "fiub":
        values = col.astype(np.float64, copy=False)
        missing = ~np.isfinite(values)
        mismatch = np.zeros(len(col), dtype=bool)
    elif kind in "Mm":
        missing = np.isnat(col)
        mismatch = ~missing
        values = np.full(len(col), np.nan)
    else:
        values, mismatch = _read_numbers(col)
        missing = ~mismatch & ~np.isfinite(values)
        if not mismatch.any():  # numbers and missing values only: rows compare by number
            memo.numbers[id(col)] = values
    if spec.type == "integer":
        with np.errstate(invalid="ignore"):
            mismatch |= np.isfinite(values) & (values != np.trunc(values))
    bad = missing | mismatch
    if bad.any():
        values = np.where(bad, np.nan, values)
    stats = _Stats(missing=int(np.count_nonzero(missing)),
                   mismatch=int(np.count_nonzero(mismatch)),
                   mismatch_examples=_examples(col, mismatch),
                   present=int(len(values) - np.count_nonzero(bad)))
    ref = spec.profile
    if ref is not None and ref.kind == "numeric" and ref.min is not None and ref.max is not None:
        lo, hi = float(ref.min), float(ref.max)
        out = (values < lo) | (values > hi)  # NaN compares False: missing values are not out
        stats.out_of_range = int(np.count_nonzero(out))
        stats.range_detail = f"[{ref.min:.6g}, {ref.max:.6g}]"
        if stats.out_of_range:
            low, high = np.min(values[out]), np.max(values[out])
            stats.range_detail += (f", e.g. {low:.6g}" if low == high
                                   else f"; lowest {low:.6g}, highest {high:.6g}")
    return stats


def _read_numbers(col: Any) -> tuple[np.ndarray, np.ndarray]:
    """Numbers (NaN where missing or unreadable) and where a value was no number, for a column
    of objects or text. Text that reads as a number is one."""
    import pandas as pd

    if isinstance(col, np.ndarray) and col.dtype.kind == "O" and pd.api.types.infer_dtype(
            col, skipna=True) in ("floating", "integer", "mixed-integer-float", "empty"):
        # Python numbers and None, as JSON gives: one C cast (4x faster than to_numeric).
        try:
            return col.astype(np.float64), np.zeros(len(col), dtype=bool)
        except (TypeError, OverflowError):  # pandas.NA has no float(); ints beyond float64
            pass
    series = _series(col)
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    na = np.asarray(pd.isna(series), dtype=bool)
    parsed = pd.to_numeric(series, errors="coerce")
    values = np.asarray(parsed.to_numpy(dtype=np.float64, na_value=np.nan))
    return values, ~na & np.isnan(values)


def _datetime_stats(col: Any, spec: _Spec, memo: _Memo) -> _Stats:
    import pandas as pd

    kind = col.dtype.kind if isinstance(col, np.ndarray) else "O"
    if kind == "M":
        values = col
        missing = np.isnat(col)
        mismatch = np.zeros(len(col), dtype=bool)
    elif kind in "fiubm":
        missing = _isna(col)
        mismatch = ~missing
        values = np.full(len(col), np.datetime64("NaT"), dtype="datetime64[us]")
    elif isinstance(col, pd.Series) and isinstance(col.dtype, pd.DatetimeTZDtype):
        values = col.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
        missing = np.isnat(values)
        mismatch = np.zeros(len(col), dtype=bool)
    else:
        codes, uniques = _factorize(col, memo)
        parseable = [isinstance(u, str | dt.date | np.datetime64) for u in uniques]
        parsed = np.full(len(uniques), np.datetime64("NaT"), dtype="datetime64[us]")
        if any(parseable):
            idx = np.flatnonzero(parseable)
            text = pd.Series([uniques[i] for i in idx], dtype=object)
            stamps = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=True)
            parsed[idx] = stamps.dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
        missing = codes < 0
        ok = codes >= 0
        values = np.full(len(col), np.datetime64("NaT"), dtype="datetime64[us]")
        values[ok] = parsed[codes[ok]]
        mismatch = ok & np.isnat(values)
    stats = _Stats(missing=int(np.count_nonzero(missing)),
                   mismatch=int(np.count_nonzero(mismatch)),
                   mismatch_examples=_examples(col, mismatch),
                   present=int(len(col) - np.count_nonzero(missing | mismatch)))
    ref = spec.profile
    if ref is not None and ref.kind == "datetime" and ref.min is not None and ref.max is not None:
        lo, hi = np.datetime64(str(ref.min)), np.datetime64(str(ref.max))
        out = ~np.isnat(values) & ((values < lo) | (values > hi))
        stats.out_of_range = int(np.count_nonzero(out))
        stats.range_detail = f"[{_when(lo)}, {_when(hi)}]"
        if stats.out_of_range:
            low, high = values[out].min(), values[out].max()
            stats.range_detail += (f", e.g. {_when(low)}" if low == high
                                   else f"; earliest {_when(low)}, latest {_when(high)}")
    return stats


def _category_stats(col: Any, spec: _Spec, memo: _Memo) -> _Stats:
    n = len(col)
    if isinstance(col, np.ndarray) and col.dtype.kind in "Mm":
        nat = np.isnat(col)
        return _Stats(missing=int(np.count_nonzero(nat)),
                      mismatch=int(n - np.count_nonzero(nat)),
                      mismatch_examples=_examples(col, ~nat))
    codes, uniques = _factorize(col, memo)
    key_of = _bool_key if spec.type == "boolean" else _text_key
    keys = [key_of(u) for u in uniques]
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    missing = n - int(counts.sum())
    mismatch = int(sum(c for k, c in zip(keys, counts, strict=True) if k is None))
    bad_codes = np.flatnonzero([k is None for k in keys])
    stats = _Stats(missing=missing, mismatch=mismatch,
                   mismatch_examples=[_show(uniques[i]) for i in bad_codes[:_EXAMPLES]],
                   present=n - missing - mismatch)
    ref = spec.profile
    if ref is not None and ref.categories is not None:
        kept = ref.categories
        unseen = [(k, int(c)) for k, c in zip(keys, counts, strict=True)
                  if k is not None and k not in kept and _alt_key(k) not in kept]
        unseen.sort(key=lambda kc: -kc[1])
        stats.unseen = sum(c for _, c in unseen)
        stats.unseen_distinct = len(unseen)
        stats.unseen_examples = [repr(k) for k, _ in unseen[:_EXAMPLES]]
    return stats


def _when(value: np.datetime64) -> str:
    """ISO text without the zeros of units finer than the value needs."""
    return str(np.datetime_as_string(value, unit="auto"))


def _text_key(value: Any) -> str | None:
    """The profile's key for a value (``str(value)``); None for a value that is no scalar."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float | np.generic | dt.date | dt.time):
        return str(value)
    return None


def _alt_key(key: str) -> str | None:
    """``"3"`` for ``"3.0"``: integers that a missing value turned into floats (CSV files)."""
    if key.endswith(".0") and key[:-2].lstrip("-").isdigit():
        return key[:-2]
    return None


_BOOL_TEXT = {"true": "True", "false": "False"}


def _bool_key(value: Any) -> str | None:
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, str):
        return _BOOL_TEXT.get(value.strip().lower())
    if isinstance(value, int | float | np.integer | np.floating) and value in (0, 1):
        return str(bool(value))
    return None


# -- the table as columns ---------------------------------------------------------------------
def _columns(data: Any) -> dict[str, Any]:
    """Named columns: numpy arrays, or pandas Series where numpy would cost a copy of objects
    (text, categoricals and nullable columns of a DataFrame or pyarrow Table)."""
    if _is_dataframe(data) or _is_arrow(data):
        names = [str(c) for c in (data.columns if _is_dataframe(data) else data.column_names)]
        if len(set(names)) != len(names):
            dupes = sorted({c for c in names if names.count(c) > 1})
            raise InvalidInputError(f"The data has duplicate column names {dupes}.",
                                    hint="Give every column a distinct name.")
        if _is_dataframe(data):
            series = [data.iloc[:, i] for i in range(len(names))]
        else:
            series = [data.column(i).to_pandas() for i in range(len(names))]
        return {name: _native(s) for name, s in zip(names, series, strict=True)}
    return dict(as_columns(data))


def _native(series: pd.Series) -> Any:
    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biufMm":
        return series.to_numpy()
    return series


def _is_dataframe(data: object) -> bool:
    return hasattr(data, "columns") and hasattr(data, "dtypes") and hasattr(data, "iloc")


def _is_arrow(data: object) -> bool:
    return hasattr(data, "column_names") and hasattr(data, "schema") and hasattr(data, "column")


def _series(col: Any) -> pd.Series:
    import pandas as pd

    if isinstance(col, pd.Series):
        return col.reset_index(drop=True)
    return pd.Series(np.asarray(col, dtype=object), dtype=object)


def _isna(col: Any) -> np.ndarray:
    import pandas as pd

    if isinstance(col, np.ndarray) and col.dtype.kind in "iub":
        return np.zeros(len(col), dtype=bool)
    return np.asarray(pd.isna(col), dtype=bool)


@dataclass(frozen=True, slots=True)
class _Opaque:
    """Stands in for an unhashable value (a list, a dict) so that a column can be factorized."""

    text: str

    def __repr__(self) -> str:
        return self.text


def _factorize(col: Any, memo: _Memo) -> tuple[np.ndarray, list[Any]]:
    """Codes per row (-1 for missing) and the distinct values, as Python objects."""
    if id(col) not in memo.codes:
        memo.codes[id(col)] = _factorize_once(col)
    return memo.codes[id(col)]


def _factorize_once(col: Any) -> tuple[np.ndarray, list[Any]]:
    import pandas as pd

    if isinstance(col, np.ndarray) and col.dtype.kind in "US":
        col = col.astype(object)
    try:
        codes, uniques = pd.factorize(col)
    except TypeError:  # unhashable values: stand-ins that no column type accepts
        objs = np.asarray(col, dtype=object)
        safe = np.empty(len(objs), dtype=object)
        safe[:] = [v if _hashable(v) else _Opaque(repr(v)) for v in objs]
        codes, uniques = pd.factorize(safe)
    return np.asarray(codes, dtype=np.int64), list(uniques.tolist())


def _show(value: Any) -> str:
    """``repr`` of a value, numpy scalars as the Python values they hold."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _examples(col: Any, mask: np.ndarray) -> list[str]:
    """A few distinct values of ``col`` where ``mask`` is set, for a message."""
    out: list[str] = []
    for i in np.flatnonzero(mask)[:100]:
        text = _show(col.iloc[i] if hasattr(col, "iloc") else col[i])
        if text not in out:
            out.append(text)
            if len(out) == _EXAMPLES:
                break
    return out


# -- duplicate rows ---------------------------------------------------------------------------
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: every input bit changes about half the output bits."""
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return np.asarray(x ^ (x >> _S31))


def _duplicate_rows(cols: list[Any], n: int, memo: _Memo) -> int:
    """Rows equal to an earlier row (missing values equal each other, as in pandas)."""
    import pandas as pd

    if not cols or n < 2:
        return 0
    row = np.zeros(n, dtype=np.uint64)
    for col in cols:
        # A bijection of (state xor cell): rows that differ in a cell differ from there on,
        # and later cells make two such states meet with a chance of about 2**-64.
        row = _mix(row ^ _cell_bits(col, memo))
    return n - len(pd.unique(row))


def _cell_bits(col: Any, memo: _Memo) -> np.ndarray:
    """64 bits per cell, equal for equal values: float bits (NaN and -0.0 made canonical),
    integers as they are, other values by their factorized code."""
    if id(col) in memo.numbers:
        col = memo.numbers[id(col)]
    if isinstance(col, np.ndarray):
        kind = col.dtype.kind
        if kind == "f":
            v = col.astype(np.float64) + 0.0  # -0.0 + 0.0 == +0.0
            v[np.isnan(v)] = np.nan
            return v.view(np.uint64)
        if kind in "iuMm":
            return col.astype(np.int64 if kind != "u" else np.uint64).view(np.uint64)
        if kind == "b":
            return col.astype(np.uint64)
    codes, _ = _factorize(col, memo)
    return codes.view(np.uint64)


# -- checks -----------------------------------------------------------------------------------
def _schema_check(absent: list[str], extra: list[str], allow_extra: bool) -> QualityCheck:
    parts = []
    if absent:
        parts.append(f"missing: {_preview(absent)}")
    if extra:
        parts.append(f"unexpected: {_preview(extra)}"
                     + (" (allowed)" if allow_extra else ""))
    violations = len(absent) + (0 if allow_extra else len(extra))
    detail = "; ".join(parts) if parts else "the columns match"
    return _check("schema", None, float(violations), 0.0, detail)


def _column_checks(
    name: str, spec: _Spec, stats: _Stats, n: int, limits: ColumnQuality
) -> list[QualityCheck]:
    checks = [_missing_check(name, spec, stats, n, limits)]
    type_text = spec.type or "its type"
    detail = f"{stats.mismatch:,} of {n:,} not readable as {type_text}"
    if stats.mismatch_examples:
        detail += ", e.g. " + ", ".join(stats.mismatch_examples)
    checks.append(_check("type_mismatch", name, _rate(stats.mismatch, n),
                         _limit(limits.max_type_mismatch_rate), detail))
    ref = spec.profile
    if stats.out_of_range is not None and ref is not None:
        allowed = min(1.0, _limit(limits.max_out_of_range_rate) + 2.0 / (ref.count + 1))
        checks.append(_check(
            "out_of_range", name, _rate(stats.out_of_range, stats.present), allowed,
            f"{stats.out_of_range:,} of {stats.present:,} outside {stats.range_detail}"))
    if stats.unseen is not None and ref is not None and ref.categories is not None:
        singles = sum(1 for c in ref.categories.values() if c == 1)
        baseline = _rate((ref.other_count or 0) + singles, ref.count)
        allowed = min(1.0, _limit(limits.max_unseen_category_rate) + baseline)
        detail = (f"{stats.unseen:,} of {stats.present:,} outside the "
                  f"{len(ref.categories):,} reference categories")
        if stats.unseen:
            detail += (f", in {stats.unseen_distinct:,}: " + ", ".join(stats.unseen_examples)
                       + (", ..." if stats.unseen_distinct > _EXAMPLES else ""))
        if baseline:
            detail += f"; reference beyond them: {baseline:.2%}"
        checks.append(_check("unseen_category", name, _rate(stats.unseen, stats.present),
                             allowed, detail))
    return checks


def _missing_check(
    name: str, spec: _Spec, stats: _Stats, n: int, limits: ColumnQuality
) -> QualityCheck:
    ref = spec.profile
    ref_rate = _rate(ref.missing, ref.count + ref.missing) if ref is not None else 0.0
    value = _rate(stats.missing, n)
    if limits.max_missing_rate is not None:
        allowed, why = limits.max_missing_rate, "limit set in the config"
    elif spec.nullable is False:
        allowed, why = 0.0, "the signature allows none"
    else:
        margin = _limit(limits.missing_margin)
        allowed = min(1.0, ref_rate + margin)
        why = f"reference {ref_rate:.2%} + margin {margin:.2%}"
    return _check("missing", name, value, allowed, f"{stats.missing:,} of {n:,} missing; {why}")


def _check(name: str, column: str | None, value: float, threshold: float,
           detail: str) -> QualityCheck:
    return QualityCheck(name, column, float(value), float(threshold), value <= threshold, detail)


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _limit(value: float | None) -> float:
    return 0.0 if value is None else value


def _first(value: float | None, default: float) -> float:
    return default if value is None else value


def _preview(names: list[str], limit: int = 8) -> str:
    if len(names) <= limit:
        return str(names)
    return f"{str(names[:limit])[:-1]}, ... ({len(names)} in all)]"

