"""From production back into training: logged inputs joined with their ground truth, as a flat
table with one row per logged input row.

The inference log keeps inputs as ``in.<column>`` and outputs as ``out.<output>`` (see
:mod:`.inference_log`); labels arrive later, keyed by request id and row (see
:mod:`.feedback`). :func:`training_rows` joins the two and names the columns for training:

==================  ===============================================================
``request_id``      the request the row came in
``row``             its index inside the request
``timestamp``       when the prediction was made (seconds since the epoch)
``version``         the version that answered
*input columns*     under their own names (``in.age`` -> ``age``)
``prediction``      ``out.predict`` (or the model's one output)
``proba_<class>``   one column per class when probabilities were logged
``output_<name>``   any other output
``label``           the ground truth (the latest, when a row got several)
``label_timestamp`` when the label was recorded
==================  ===============================================================

Failed requests (no inputs) are left out. Pure: tables in, a table out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from modelyard.errors import InvalidInputError
from modelyard.monitoring.windows import parse_duration

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["META_COLUMNS", "input_columns", "latest_labels", "parse_time_bound",
           "training_rows"]

META_COLUMNS = ("request_id", "row", "timestamp", "version", "prediction", "label",
                "label_timestamp")
"""Columns of :func:`training_rows` that are not model inputs (besides ``proba_*`` and
``output_*``)."""

_INPUT = "in."
_OUTPUT = "out."


def latest_labels(feedback: pa.Table) -> pa.Table:
    """One label per (request_id, row): the latest, with its time as ``label_timestamp``.

    Example:
        >>> import pyarrow as pa
        >>> fb = pa.table({"request_id": ["a", "a"], "row": pa.array([0, 0], pa.int32()),
        ...                "label": [0, 1], "timestamp": [1.0, 2.0]})
        >>> latest_labels(fb).column("label").to_pylist()
        [1]
    """
    import pyarrow as pa

    if feedback.num_rows == 0:
        return pa.table({"request_id": pa.array([], pa.string()),
                         "row": pa.array([], pa.int32()),
                         "label": feedback.column("label") if "label" in feedback.column_names
                         else pa.array([], pa.float64()),
                         "label_timestamp": pa.array([], pa.float64())})
    ordered = feedback.sort_by([("timestamp", "ascending")])
    ordered = ordered.append_column("__order", pa.array(np.arange(ordered.num_rows)))
    last = ordered.group_by(["request_id", "row"]).aggregate([("__order", "max")])
    picked = ordered.take(last.column("__order_max")).sort_by("__order")
    return pa.table({"request_id": picked.column("request_id").cast(pa.string()),
                     "row": picked.column("row").cast(pa.int32()),
                     "label": picked.column("label"),
                     "label_timestamp": picked.column("timestamp").cast(pa.float64())})


def input_columns(inferences: pa.Table) -> list[str]:
    """The model's input columns in a logged table (``in.age`` -> ``age``)."""
    return [c[len(_INPUT):] for c in inferences.column_names if c.startswith(_INPUT)]


def training_rows(inferences: pa.Table, feedback: pa.Table | None, *,
                  classes: Sequence[Any] | None = None,
                  labelled_only: bool = True) -> pa.Table:
    """Logged rows with their labels, flattened for training (columns in the module doc).

    ``classes`` names the probability columns (``proba_fraud``); without it, or when it does
    not match the logged width, they are numbered (``proba_0``). With ``labelled_only=False``
    rows without a label are kept, with a null label.

    Example:
        >>> import pyarrow as pa
        >>> log = pa.table({"request_id": ["r1", "r2"], "row": pa.array([0, 0], pa.int32()),
        ...                 "timestamp": [10.0, 11.0], "version": [1, 1], "error": [None, None],
        ...                 "in.x": [0.5, 1.5], "out.predict": [0, 1]})
        >>> fb = pa.table({"request_id": ["r2"], "row": pa.array([0], pa.int32()),
        ...                "label": [1], "timestamp": [20.0]})
        >>> training_rows(log, fb).to_pylist()[0]["x"]
        1.5
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if "error" in inferences.column_names and inferences.num_rows:
        inferences = inferences.filter(pc.is_null(inferences.column("error")))
    inputs = input_columns(inferences)
    if inferences.num_rows and not inputs:
        raise InvalidInputError(
            "The inference log holds no input columns (in.*) for these predictions.",
            hint="Inputs are logged unless sensitive and dropped; check monitoring.log_enabled.")
    clash = sorted(set(inputs) & set(META_COLUMNS))
    if clash:
        raise InvalidInputError(
            f"The model's input column(s) {clash} have the names of columns the training "
            f"table adds ({', '.join(META_COLUMNS)}).",
            hint="Export the raw log with 'modelyard logs' instead, or rename the inputs.")
    columns: dict[str, pa.ChunkedArray | pa.Array] = {}
    for name in ("request_id", "row", "timestamp", "version"):
        columns[name] = inferences.column(name)
    for name in inputs:
        columns[name] = inferences.column(_INPUT + name)
    columns.update(_outputs(inferences, classes))
    flat = pa.table(columns)
    labels = latest_labels(feedback) if feedback is not None else latest_labels(
        pa.table({"request_id": pa.array([], pa.string()), "row": pa.array([], pa.int32()),
                  "label": pa.array([], pa.float64()),
                  "timestamp": pa.array([], pa.float64())}))
    return _join(flat, labels, labelled_only=labelled_only)


def _outputs(inferences: pa.Table, classes: Sequence[Any] | None
             ) -> dict[str, pa.ChunkedArray | pa.Array]:
    outputs = [c[len(_OUTPUT):] for c in inferences.column_names if c.startswith(_OUTPUT)]
    out: dict[str, pa.ChunkedArray | pa.Array] = {}
    plain = [o for o in outputs if o != "predict_proba"]
    main = "predict" if "predict" in plain else (plain[0] if len(plain) == 1 else None)
    if main is not None:
        out["prediction"] = inferences.column(_OUTPUT + main)
    if "predict_proba" in outputs:
        out.update(_proba_columns(inferences.column(_OUTPUT + "predict_proba"), classes))
    for name in plain:
        if name != main:
            out[f"output_{name}"] = inferences.column(_OUTPUT + name)
    return out


def _proba_columns(column: pa.ChunkedArray, classes: Sequence[Any] | None
                   ) -> dict[str, pa.Array]:
    import pyarrow as pa

    n = len(column)
    values = column.combine_chunks()
    if n == 0:
        names = list(classes) if classes is not None else []
        return {f"proba_{c}": pa.array([], pa.float64()) for c in names}
    if not pa.types.is_list(values.type) and not pa.types.is_large_list(values.type):
        return {"proba": values}  # a scalar probability per row: keep it as it is
    flat = np.asarray(values.flatten().to_numpy(zero_copy_only=False), dtype=np.float64)
    if flat.size % n:
        return {"output_predict_proba": values}  # ragged: leave the lists alone
    matrix = flat.reshape(n, flat.size // n)
    names = [str(c) for c in classes] if classes is not None and len(classes) == \
        matrix.shape[1] else [str(i) for i in range(matrix.shape[1])]
    return {f"proba_{name}": pa.array(matrix[:, i]) for i, name in enumerate(names)}


def _join(flat: pa.Table, labels: pa.Table, *, labelled_only: bool) -> pa.Table:
    import pyarrow as pa

    # Join the keys only (Arrow's join cannot carry list columns), then take rows whole.
    keys = flat.select(["request_id", "row"]).append_column(
        "__idx", pa.array(np.arange(flat.num_rows)))
    keys = keys.set_column(1, "row", keys.column("row").cast(pa.int32()))
    matched = keys.join(labels, keys=["request_id", "row"],
                        join_type="inner" if labelled_only else "left outer").sort_by("__idx")
    out = flat.take(matched.column("__idx"))
    return out.append_column("label", matched.column("label")).append_column(
        "label_timestamp", matched.column("label_timestamp"))


def parse_time_bound(text: str | float | None, *, now: float) -> float | None:
    """Seconds since the epoch for ``--since``/``--until``: a duration ago (``7d``, ``12h``),
    an ISO 8601 time (UTC unless it says otherwise), or epoch seconds.

    Example:
        >>> parse_time_bound("1d", now=100_000.0)
        13600.0
        >>> parse_time_bound("1970-01-02T00:00:00", now=0.0)
        86400.0
    """
    if text is None:
        return None
    if isinstance(text, int | float):
        return float(text)
    value = text.strip()
    if value[-1:] in ("s", "m", "h", "d", "w"):
        try:
            return now - parse_duration(value)
        except InvalidInputError:
            pass
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(
            f"{text!r} is neither a duration nor a time.",
            hint="Write a duration ago (7d, 12h, 30m) or an ISO time (2026-11-01 or "
                 "2026-11-01T12:00:00Z).") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()
