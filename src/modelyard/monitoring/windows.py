"""Windows of monitoring data: by time (the last hour, day) or by row count; durations."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from modelyard.errors import InvalidInputError

__all__ = ["MAX_BUCKETS", "Window", "buckets", "parse_duration", "parse_window", "select"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str | float | int) -> float:
    """Seconds in a duration such as ``"30s"``, ``"5m"``, ``"1h"``, ``"7d"`` (a bare number
    is seconds).

    Example:
        >>> parse_duration("5m")
        300.0
    """
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = _DURATION.match(text)
        if match is None:
            try:
                seconds = float(text)
            except ValueError:
                raise InvalidInputError(
                    f"Duration {text!r} is not understood.",
                    hint="Write a number and a unit: 30s, 5m, 1h, 7d or 2w.",
                ) from None
        else:
            seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 0:
        raise InvalidInputError(f"Duration {text!r} is negative.", hint="Use a positive duration.")
    return seconds


# -- windows ----------------------------------------------------------------------------------

MAX_BUCKETS = 100_000
"""Most consecutive windows :func:`buckets` lays out on its own (pass ``count`` for more)."""

_ROWS = re.compile(r"^\s*(\d+)\s*rows?\s*$", re.IGNORECASE)
_WINDOW_HINT = ("Write a duration such as 30m, 1h, 1d or 7d, or a row count such as 5000rows "
                "or '5000 rows'.")


@dataclass(frozen=True, slots=True)
class Window:
    """A window of monitoring data: the last ``seconds`` of time or the last ``rows`` rows.

    Build one with :func:`parse_window`; ``str(window)`` gives its text back (``"1h"``,
    ``"5000rows"``).
    """

    kind: Literal["time", "rows"]
    seconds: float | None = None
    rows: int | None = None

    def __post_init__(self) -> None:
        if self.kind == "time":
            if self.seconds is None or not math.isfinite(self.seconds) or self.seconds <= 0:
                raise InvalidInputError(
                    f"A time window needs a positive number of seconds; got {self.seconds!r}.",
                    hint=_WINDOW_HINT,
                )
            if self.rows is not None:
                raise InvalidInputError(
                    f"A time window has no row count; got rows={self.rows!r}.",
                    hint="Use Window('rows', rows=N) for a window of the last N rows.",
                )
        elif self.kind == "rows":
            if (self.rows is None or isinstance(self.rows, bool)
                    or not isinstance(self.rows, int | np.integer) or self.rows < 1):
                raise InvalidInputError(
                    f"A row window needs a positive whole number of rows; got {self.rows!r}.",
                    hint=_WINDOW_HINT,
                )
            if self.seconds is not None:
                raise InvalidInputError(
                    f"A row window has no duration; got seconds={self.seconds!r}.",
                    hint="Use Window('time', seconds=S) for a window of the last S seconds.",
                )
        else:
            raise InvalidInputError(
                f"The 'kind' parameter of Window must be 'time' or 'rows'. "
                f"Got {self.kind!r} instead.",
                hint=_WINDOW_HINT,
            )

    def __str__(self) -> str:
        if self.kind == "rows":
            return "1row" if self.rows == 1 else f"{self.rows}rows"
        seconds = float(self.seconds or 0.0)
        for unit in ("w", "d", "h", "m"):
            count = seconds / _UNITS[unit]
            if count.is_integer():
                return f"{int(count)}{unit}"
        return f"{np.format_float_positional(seconds, trim='-')}s"


def parse_window(text: str | Window) -> Window:
    """The window a text names: a duration (``"30m"``, ``"1h"``, ``"1d"``, ``"7d"``) or a
    row count (``"5000rows"``, ``"5000 rows"``). A bare number is refused: it could mean
    either.

    Example:
        >>> parse_window("1h")
        Window(kind='time', seconds=3600.0, rows=None)
        >>> parse_window("5000 rows").rows
        5000
    """
    if isinstance(text, Window):
        return text
    if not isinstance(text, str):
        raise InvalidInputError(f"Window {text!r} is not text.", hint=_WINDOW_HINT)
    rows = _ROWS.match(text)
    if rows is not None:
        count = int(rows.group(1))
        if count < 1:
            raise InvalidInputError(f"Window {text!r} holds no rows.", hint=_WINDOW_HINT)
        return Window("rows", rows=count)
    if _DURATION.match(text) is None:
        raise InvalidInputError(f"Window {text!r} is not understood.", hint=_WINDOW_HINT)
    seconds = parse_duration(text)
    if seconds <= 0:
        raise InvalidInputError(f"Window {text!r} is empty.", hint=_WINDOW_HINT)
    return Window("time", seconds=seconds)


def _as_seconds(timestamps: Any) -> npt.NDArray[np.float64]:
    """Timestamps as float seconds since the epoch; NaT and non-finite values become NaN."""
    array = np.asarray(timestamps)
    if array.ndim != 1:
        raise InvalidInputError(
            f"timestamps must be one-dimensional; got shape {array.shape}.",
            hint="Pass one timestamp (seconds since the epoch) per row.",
        )
    if array.dtype.kind == "M":
        seconds = array.astype("datetime64[ns]").astype(np.int64) / 1e9
        seconds[np.isnat(array)] = np.nan
        return seconds
    try:
        return array.astype(np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"timestamps must be numbers (seconds since the epoch) or datetime64; got "
            f"{array.dtype} values.",
            hint="Pass the log's timestamp column.",
        ) from None


def _sorted_rows(seconds: npt.NDArray[np.float64],
                 end: float | None) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
    """Indices of the rows with a timestamp (at or before ``end``), oldest first (ties keep
    their order), and their sorted timestamps."""
    keep = np.isfinite(seconds)
    if end is not None:
        keep &= seconds <= end
    index = np.flatnonzero(keep)
    order = index[np.argsort(seconds[index], kind="stable")]
    return order, seconds[order]


def select(timestamps: np.ndarray, window: Window, *, now: float) -> np.ndarray:
    """Indices of the rows inside the window that ends at ``now``, oldest first.

    A time window holds the rows with ``now - seconds < timestamp <= now``; a row window the
    last ``rows`` rows by time at or before ``now`` (ties broken by position). Rows without a
    timestamp (NaN, NaT) are never selected. Timestamps are seconds since the epoch, or
    datetime64.

    Example:
        >>> import numpy as np
        >>> ts = np.array([10.0, 50.0, 70.0, 95.0, 120.0])
        >>> select(ts, parse_window("40s"), now=100.0).tolist()
        [2, 3]
        >>> select(ts, parse_window("2rows"), now=100.0).tolist()
        [2, 3]
    """
    seconds = _as_seconds(timestamps)
    order, sorted_ts = _sorted_rows(seconds, float(now))
    if window.kind == "rows":
        return order[max(0, len(order) - int(window.rows or 0)):]
    start = float(now) - float(window.seconds or 0.0)
    return order[np.searchsorted(sorted_ts, start, side="right"):]


def buckets(timestamps: np.ndarray, window: Window, *, end: float | None = None,
            count: int | None = None) -> list[tuple[float, float, np.ndarray]]:
    """Consecutive windows ``(start, end, indices)``, oldest first, for trend lines.

    Time windows are the intervals ``(start, end]`` of the window's length laid back to back
    from ``end``. Without ``end`` they end at the first multiple of the window's length
    (since the epoch) at or after the newest row, so the buckets of successive runs line up
    (hourly buckets start on the hour, daily ones at midnight UTC). Without ``count`` they
    reach back to the oldest row; with it there are exactly ``count``, some maybe empty.

    Row windows hold ``rows`` consecutive rows by time, laid back from the newest row at or
    before ``end``; the oldest may hold fewer rows. ``start`` and ``end`` are the timestamps
    of their first and last rows. With ``count``, only the newest ``count`` are returned.

    Raises:
        InvalidInputError: a ``count`` below 1, or more than ``MAX_BUCKETS`` time windows to
            cover the data (pass ``count`` or a longer window).

    Example:
        >>> import numpy as np
        >>> ts = np.array([5.0, 15.0, 16.0, 29.0])
        >>> [(s, e, i.tolist()) for s, e, i in buckets(ts, parse_window("10s"))]
        [(0.0, 10.0, [0]), (10.0, 20.0, [1, 2]), (20.0, 30.0, [3])]
    """
    if count is not None and (isinstance(count, bool) or int(count) != count or count < 1):
        raise InvalidInputError(
            f"The 'count' parameter of buckets must be a positive integer. Got {count!r} "
            "instead.",
            hint="Leave it out to cover all the data.",
        )
    seconds = _as_seconds(timestamps)
    order, sorted_ts = _sorted_rows(seconds, end)
    if window.kind == "rows":
        size = int(window.rows or 0)
        number = -(-len(order) // size)
        if count is not None:
            number = min(number, int(count))
        out = []
        for b in range(number - 1, -1, -1):
            hi = len(order) - b * size
            lo = max(0, hi - size)
            out.append((float(sorted_ts[lo]), float(sorted_ts[hi - 1]), order[lo:hi]))
        return out
    length = float(window.seconds or 0.0)
    if end is None:
        if len(order) == 0:
            return []
        newest = float(sorted_ts[-1])
        end = math.ceil(newest / length) * length
        if end < newest:  # the division rounded down
            end += length
    end = float(end)
    if count is None:
        if len(order) == 0:
            return []
        oldest = float(sorted_ts[0])
        number = math.floor((end - oldest) / length) + 1
        if end - length * number >= oldest:  # the division rounded down
            number += 1
        if number > MAX_BUCKETS:
            raise InvalidInputError(
                f"Covering the {end - oldest:g} seconds from the oldest row to the end takes "
                f"{number} windows of {window}, more than {MAX_BUCKETS}.",
                hint="Pass count=N for the newest N windows, or use a longer window.",
            )
    else:
        number = int(count)
    edges = end - length * np.arange(number, -1, -1, dtype=np.float64)
    cuts = np.searchsorted(sorted_ts, edges, side="right")
    return [(float(edges[i]), float(edges[i + 1]), order[cuts[i]:cuts[i + 1]])
            for i in range(number)]
