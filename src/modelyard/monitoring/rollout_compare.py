"""A rollout's champion and challenger compared from the inference log: requests, server-side
errors, p99 latency, shadow agreement and, once labels arrived, accuracy on the same traffic.

The server drives a rollout from its live counters; this is the same comparison for anyone
else (``modelyard rollout status``, reports), from what every server process logged. In shadow
mode both versions answered the same request ids, so agreement and accuracy compare the two
models on exactly the same rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from modelyard.core.rollout import CLIENT_ERRORS, VersionStats

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["compare_versions"]


def compare_versions(inferences: pa.Table, feedback: pa.Table | None,
                     versions: tuple[int, ...]) -> dict[int, VersionStats]:
    """Per version in ``versions``: what it answered in ``inferences`` (logged rows, any
    versions), with agreement against the first version (the champion) and accuracy from
    ``feedback`` (request_id, row, label).

    >>> compare_versions(log_table, labels, (1, 2))[2].error_rate  # doctest: +SKIP
    0.0
    """
    frame = inferences.to_pandas() if inferences.num_rows else None
    if frame is None:
        return {v: VersionStats() for v in versions}
    labels = _latest_labels(feedback)
    champion = versions[0]
    out: dict[int, VersionStats] = {}
    predictions = {v: _predictions(frame, v) for v in versions}
    for v in versions:
        rows = frame[frame["version"] == v]
        first = rows[rows["row"] == 0]
        failed = first["error"].notna() & ~first["error"].isin(CLIENT_ERRORS)
        client_side = first["error"].isin(CLIENT_ERRORS)
        answered = first[first["error"].isna()]
        p99 = (float(np.percentile(answered["latency_ms"].to_numpy(), 99))
               if len(answered) else None)
        compared = agreed = labelled = correct = 0
        mine, theirs = predictions[v], predictions[champion]
        if v != champion and mine is not None and theirs is not None:
            both = mine.join(theirs.rename(columns={"predict": "predict_champion"}),
                             how="inner")
            compared = len(both)
            agreed = int((_same(both["predict"], both["predict_champion"])).sum())
        if labels is not None and mine is not None:
            joined = mine.join(labels, how="inner")
            labelled = len(joined)
            correct = int(_same(joined["predict"], joined["label"]).sum())
        out[v] = VersionStats(
            requests=int(len(first) - client_side.sum()), errors=int(failed.sum()),
            p99_ms=p99, labelled=labelled, correct=correct, compared=compared, agreed=agreed)
    return out


def _predictions(frame: pd.DataFrame, version: int) -> pd.DataFrame | None:
    if "out.predict" not in frame.columns:
        return None
    rows = frame[(frame["version"] == version) & frame["error"].isna()]
    picked = rows[["request_id", "row", "out.predict"]].rename(
        columns={"out.predict": "predict"})
    return picked.drop_duplicates(["request_id", "row"]).set_index(["request_id", "row"])


def _latest_labels(feedback: pa.Table | None) -> pd.DataFrame | None:
    if feedback is None or feedback.num_rows == 0:
        return None
    labels = feedback.to_pandas().sort_values("timestamp", kind="stable")
    latest = labels.drop_duplicates(["request_id", "row"], keep="last")
    return latest.set_index(["request_id", "row"])[["label"]]


def _same(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Equal predictions/labels, comparing numbers as numbers (a label 1.0 equals a class 1)
    and anything else as text."""
    import pandas as pd

    x = pd.to_numeric(a, errors="coerce")
    y = pd.to_numeric(b, errors="coerce")
    numeric = x.notna() & y.notna()
    equal = np.where(numeric, np.isclose(x.fillna(0), y.fillna(0)),
                     a.astype(str).to_numpy() == b.astype(str).to_numpy())
    return np.asarray(equal, dtype=bool)
