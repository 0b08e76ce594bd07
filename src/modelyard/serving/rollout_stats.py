"""Live statistics of one rollout in one server process: what the champion and the challenger
answered, how fast, how often they failed, agreed, and were right once labels came back.

The data plane records every request a rollout's deployment answers; the rollout controller
reads them to :func:`modelyard.core.rollout.decide` what happens next; ``GET
/v2/models/{name}/rollout`` shows them. Everything runs on the event loop (no locks) and is
bounded: a recent window of latencies per version, and the predictions of at most
``max_ids`` recent requests (least recently used first out) for the join with labels.

>>> stats = RolloutStats(rollout_id=1, champion=1, challenger=2)
>>> stats.observe(CHALLENGER, 0.004, step=0)
>>> stats.observe(CHALLENGER, 0.030, error=True, step=0)
>>> stats.version_stats(CHALLENGER).error_rate, stats.step_requests(0)
(0.5, 2)
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np

from modelyard.core.rollout import VersionStats
from modelyard.errors import InvalidInputError

__all__ = ["CHALLENGER", "CHAMPION", "SHADOW", "Role", "RolloutStats", "is_server_error"]

Role = Literal["champion", "challenger"]
CHAMPION: Role = "champion"
CHALLENGER: Role = "challenger"
SHADOW = "shadow"
"""The metrics role of the challenger's copies of requests in shadow mode."""


def is_server_error(exc: BaseException) -> bool:
    """Whether a failed request counts against the version that answered it: prediction
    errors, timeouts, full queues and bugs do; bad input is the client's fault and does not.

    >>> is_server_error(InvalidInputError("bad")), is_server_error(RuntimeError("boom"))
    (False, True)
    """
    return not isinstance(exc, InvalidInputError)


class _Side:
    """One version's counters."""

    __slots__ = ("agreed", "compared", "correct", "errors", "labelled", "latencies",
                 "requests", "steps")

    def __init__(self, window: int) -> None:
        self.requests = 0
        self.errors = 0
        self.latencies: collections.deque[float] = collections.deque(maxlen=window)
        self.labelled = 0
        self.correct = 0
        self.compared = 0
        self.agreed = 0
        self.steps: dict[int, int] = {}

    def stats(self) -> VersionStats:
        p99 = (float(np.percentile(np.fromiter(self.latencies, float), 99)) * 1000.0
               if self.latencies else None)
        return VersionStats(requests=self.requests, errors=self.errors, p99_ms=p99,
                            labelled=self.labelled, correct=self.correct,
                            compared=self.compared, agreed=self.agreed)


class _Predicted:
    """What each version predicted for one request (the ``predict`` output, row by row)."""

    __slots__ = ("by_role", "labelled")

    def __init__(self) -> None:
        self.by_role: dict[Role, np.ndarray] = {}
        self.labelled: set[int] = set()


class RolloutStats:
    """The counters of one rollout (``rollout_id``) in this process.

    ``champion`` and ``challenger`` are the version numbers (shown, never used as keys: the
    counters are per role, so a hand-moved alias does not split them).
    """

    def __init__(self, *, rollout_id: int, champion: int, challenger: int,
                 latency_window: int = 2048, max_ids: int = 100_000,
                 max_rows_per_id: int = 256) -> None:
        self.rollout_id = rollout_id
        self.versions: dict[Role, int] = {CHAMPION: champion, CHALLENGER: challenger}
        self._sides: dict[Role, _Side] = {CHAMPION: _Side(latency_window),
                                          CHALLENGER: _Side(latency_window)}
        self.max_ids = max_ids
        self.max_rows_per_id = max_rows_per_id
        self._predicted: collections.OrderedDict[str, _Predicted] = collections.OrderedDict()
        self.labels_unmatched = 0
        self.shadow_skipped = 0

    # -- recording (the request path) ------------------------------------------------------
    def observe(self, role: Role, seconds: float, *, error: bool = False,
                step: int | None = None) -> None:
        """One request ``role`` answered (or failed, server-side) in ``seconds``."""
        side = self._sides[role]
        side.requests += 1
        if error:
            side.errors += 1
        side.latencies.append(seconds)
        if step is not None:
            side.steps[step] = side.steps.get(step, 0) + 1

    def compare(self, agreed: bool) -> None:
        """Shadow mode: the challenger's answer to a copy was (not) the champion's."""
        side = self._sides[CHALLENGER]
        side.compared += 1
        if agreed:
            side.agreed += 1

    def remember(self, request_id: str, role: Role, predict: Any) -> None:
        """Keep ``role``'s predicted labels of a request for the join with feedback."""
        values = np.asarray(predict)
        if values.ndim == 0:
            values = values.reshape(1)
        entry = self._predicted.get(request_id)
        if entry is None:
            entry = self._predicted[request_id] = _Predicted()
            if len(self._predicted) > self.max_ids:
                self._predicted.popitem(last=False)
        else:
            self._predicted.move_to_end(request_id)
        # A copy of at most max_rows_per_id rows: the answer's array is a view of the batch.
        entry.by_role[role] = values[: self.max_rows_per_id].copy()

    def label(self, ids: Sequence[str], rows: Sequence[int], labels: Sequence[Any]) -> int:
        """Count ground truth against what each version predicted; returns how many labels
        matched a remembered request (a label seen again is not counted twice)."""
        matched = 0
        for request_id, row, label in zip(ids, rows, labels, strict=True):
            entry = self._predicted.get(str(request_id))
            if entry is None or row in entry.labelled:
                self.labels_unmatched += entry is None
                continue
            hit = False
            for role, predicted in entry.by_role.items():
                if row < len(predicted):
                    side = self._sides[role]
                    side.labelled += 1
                    side.correct += _same(predicted[row], label)
                    hit = True
            if hit:
                entry.labelled.add(row)
                matched += 1
        return matched

    # -- reading (the controller and the REST route) -----------------------------------------
    def version_stats(self, role: Role) -> VersionStats:
        return self._sides[role].stats()

    def step_requests(self, step: int) -> int:
        """Requests the challenger answered in ``step``."""
        return self._sides[CHALLENGER].steps.get(step, 0)

    def remembered(self) -> int:
        return len(self._predicted)

    def to_dict(self, step: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            role: {"version": self.versions[role], **self.version_stats(role).to_dict()}
            for role in (CHAMPION, CHALLENGER)}
        if step is not None:
            out["step_requests"] = self.step_requests(step)
        out["labels_unmatched"] = self.labels_unmatched
        return out


def agree(champion: Any, challenger: Any) -> bool:
    """Whether two ``predict`` outputs of the same request are the same, row for row."""
    a, b = np.asarray(champion), np.asarray(challenger)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        try:
            return bool(np.allclose(a, b, rtol=1e-9, atol=0.0, equal_nan=True))
        except TypeError:  # numbers against strings
            return False
    return bool(np.array_equal(a, b))


def _same(predicted: Any, label: Any) -> bool:
    if isinstance(predicted, np.generic):
        predicted = predicted.item()
    if isinstance(predicted, int | float) and isinstance(label, int | float | str):
        # Labels of mixed types arrive as strings ("1"): compare them as numbers too.
        try:
            return float(predicted) == float(label)
        except ValueError:
            return False
    return str(predicted) == str(label)


def labels_of(table: Any) -> tuple[list[str], list[int], list[Any]]:
    """(request ids, rows, labels) of a feedback table (``monitoring.feedback``'s columns)."""
    columns: Iterable[str] = table.column_names
    names = set(columns)
    ids = [str(v) for v in table.column("request_id").to_pylist()]
    rows = (table.column("row").to_pylist() if "row" in names else [0] * len(ids))
    labels = table.column("label").to_pylist()
    return ids, [int(r) for r in rows], labels
