"""Ground truth that arrives after the prediction (minutes or days later), joined by id.

A label names the request it belongs to by the request's id (the ``id`` of a v2 request, the
``X-Request-ID`` header, or the id the server generated and returned), plus the row inside
that request when the request held several rows (default 0).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["MAX_LABELS", "feedback_from_columns", "feedback_from_json", "join_feedback"]

MAX_LABELS = 100_000
"""Most labels accepted in one request (send larger sets as files with the CLI)."""


def feedback_from_json(body: Any, *, now: float | None = None) -> pa.Table:
    """Labels from a feedback request body: ``{"id": ..., "label": ...}`` (optionally with
    ``"row"``), a list of those, or ``{"feedback": [...]}``.

    Example:
        >>> feedback_from_json([{"id": "a1", "label": 1}, {"id": "a2", "label": 0}]).num_rows
        2
    """
    items = body.get("feedback", body) if isinstance(body, Mapping) else body
    if isinstance(items, Mapping):
        items = [items]
    if not isinstance(items, Sequence) or isinstance(items, str | bytes) or not items:
        raise InvalidInputError(
            'Feedback must be {"id": ..., "label": ...} or a non-empty list of them.',
            hint='Send for example [{"id": "<request id>", "label": 1}].')
    if len(items) > MAX_LABELS:
        raise InvalidInputError(
            f"Feedback holds {len(items)} labels; at most {MAX_LABELS} per request.",
            hint="Split the labels into several requests, or use 'modelyard feedback'.")
    ids, rows, labels = [], [], []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise InvalidInputError(f"Feedback item {i} is not an object: {item!r}.",
                                    hint='Each item is {"id": ..., "label": ...}.')
        missing = [k for k in ("id", "label") if k not in item]
        if missing:
            raise InvalidInputError(f"Feedback item {i} has no {' or '.join(missing)}.",
                                    hint='Each item is {"id": ..., "label": ...}.')
        ids.append(item["id"])
        rows.append(item.get("row", 0))
        labels.append(item["label"])
    return feedback_from_columns(ids, labels, rows=rows, now=now)


def feedback_from_columns(ids: Sequence[Any], labels: Sequence[Any], *,
                          rows: Sequence[Any] | None = None,
                          timestamps: Sequence[float] | None = None,
                          now: float | None = None) -> pa.Table:
    """Labels from columns (a labels file): ids, labels, optional rows and label times."""
    import pyarrow as pa

    if len(ids) != len(labels):
        raise InvalidInputError(f"Got {len(ids)} ids but {len(labels)} labels.",
                                hint="Give exactly one label per id.")
    clean_ids = []
    for i, value in enumerate(ids):
        if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
            raise InvalidInputError(f"Feedback item {i} has an empty id.",
                                    hint="Every label needs the id of its request.")
        clean_ids.append(str(value))
    clean_rows = []
    for i, value in enumerate(rows if rows is not None else [0] * len(ids)):
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 \
                or int(value) != value:
            raise InvalidInputError(f"Feedback item {i} has row {value!r}.",
                                    hint="row is the 0-based index of the row in its request.")
        clean_rows.append(int(value))
    for i, value in enumerate(labels):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise InvalidInputError(f"Feedback item {i} (id {clean_ids[i]!r}) has no label.",
                                    hint="Send a class or a number as the label.")
        if not isinstance(value, str | int | float | bool):
            raise InvalidInputError(
                f"Feedback item {i} (id {clean_ids[i]!r}) has label {value!r}; labels are "
                "classes or numbers.", hint="Send one scalar label per id.")
    try:
        label_array = pa.array(list(labels))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        label_array = pa.array([str(v) for v in labels], pa.string())
    stamp = time.time() if now is None else now
    ts = list(timestamps) if timestamps is not None else [stamp] * len(clean_ids)
    return pa.table({"request_id": pa.array(clean_ids, pa.string()),
                     "row": pa.array(clean_rows, pa.int32()),
                     "label": label_array,
                     "timestamp": pa.array(ts, pa.float64())})


def join_feedback(inferences: pa.Table, feedback: pa.Table) -> pa.Table:
    """The logged rows that have a label, with the label in column ``label`` (the latest label
    wins when one row got several)."""
    import pyarrow as pa

    if inferences.num_rows == 0 or feedback.num_rows == 0:
        return inferences.slice(0, 0).append_column("label", pa.array([], pa.float64()))
    latest = feedback.sort_by([("timestamp", "ascending")])
    latest = latest.append_column("__order", pa.array(np.arange(latest.num_rows)))
    last = latest.group_by(["request_id", "row"]).aggregate([("__order", "max")])
    labels = latest.take(last.column("__order_max")).select(["request_id", "row", "label"])
    # Join on the keys only (Arrow's join cannot carry list columns such as probabilities),
    # then take the matching logged rows whole.
    keys = inferences.select(["request_id", "row"]).append_column(
        "__idx", pa.array(np.arange(inferences.num_rows)))
    matched = keys.join(labels, keys=["request_id", "row"], join_type="inner").sort_by(
        "__idx")
    return inferences.take(matched.column("__idx")).append_column(
        "label", matched.column("label"))
