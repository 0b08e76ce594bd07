"""Selecting the rows of the last window and laying windows back to back, against brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from modelyard.errors import InvalidInputError
from modelyard.monitoring.windows import MAX_BUCKETS, Window, buckets, parse_window, select

TS = np.array([10.0, 50.0, 70.0, 95.0, 120.0, 70.0, np.nan, 100.0])


def brute_select(ts: np.ndarray, window: Window, now: float) -> list[int]:
    rows = sorted((t, i) for i, t in enumerate(ts.tolist()) if math.isfinite(t) and t <= now)
    if window.kind == "rows":
        return [i for _, i in rows[max(0, len(rows) - (window.rows or 0)):]]
    return [i for t, i in rows if t > now - (window.seconds or 0.0)]


@pytest.mark.parametrize(
    ("window", "now", "expected"),
    [
        ("40s", 100.0, [2, 5, 3, 7]),
        ("30s", 100.0, [3, 7]),
        ("5s", 100.0, [7]),
        ("1s", 99.0, []),
        ("1d", 100.0, [0, 1, 2, 5, 3, 7]),
        ("1d", 1000.0, [0, 1, 2, 5, 3, 7, 4]),
        ("3rows", 100.0, [5, 3, 7]),
        ("4rows", 100.0, [2, 5, 3, 7]),
        ("100rows", 100.0, [0, 1, 2, 5, 3, 7]),
        ("2rows", 5.0, []),
    ],
    ids=["time", "boundary-excluded", "now-included", "nothing", "all-past", "all",
         "rows", "rows-ties-by-position", "more-rows-than-data", "rows-before-any"],
)
def test_select(window: str, now: float, expected: list[int]) -> None:
    got = select(TS, parse_window(window), now=now)
    assert got.tolist() == expected
    assert got.tolist() == brute_select(TS, parse_window(window), now)


def test_select_takes_datetime64() -> None:
    stamps = np.array(["2024-05-01T10:00", "2024-05-01T11:30", "NaT", "2024-05-01T12:00"],
                      dtype="datetime64[s]")
    now = float(np.datetime64("2024-05-01T12:00", "s").astype(np.int64))
    assert select(stamps, parse_window("1h"), now=now).tolist() == [1, 3]
    assert select(stamps, parse_window("5rows"), now=now).tolist() == [0, 1, 3]


@pytest.mark.parametrize(
    ("timestamps", "message"),
    [(np.zeros((2, 2)), r"timestamps must be one-dimensional; got shape \(2, 2\)"),
     (np.array(["noon", "dusk"]), r"timestamps must be numbers .* got <U4 values")],
    ids=["two-dimensional", "text"],
)
def test_select_refuses(timestamps: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        select(timestamps, parse_window("1h"), now=0.0)


windows = st.one_of(
    st.builds(lambda n: Window("rows", rows=n), st.integers(1, 30)),
    st.builds(lambda s: Window("time", seconds=float(s)), st.integers(1, 50)),
)
stamps = hnp.arrays(np.float64, st.integers(0, 40),
                    elements=st.one_of(st.integers(0, 60).map(float), st.just(np.nan)))


@settings(max_examples=150, deadline=None)
@given(ts=stamps, window=windows, now=st.integers(-5, 70).map(float))
def test_select_matches_brute_force(ts: np.ndarray, window: Window, now: float) -> None:
    assert select(ts, window, now=now).tolist() == brute_select(ts, window, now)


# -- buckets ------------------------------------------------------------------------------------


def test_time_buckets_align_to_the_window_grid() -> None:
    got = buckets(np.array([5.0, 15.0, 16.0, 29.0, 20.0]), parse_window("10s"))
    assert [(s, e, i.tolist()) for s, e, i in got] == \
        [(0.0, 10.0, [0]), (10.0, 20.0, [1, 2, 4]), (20.0, 30.0, [3])]


def test_hourly_buckets_start_on_the_hour() -> None:
    hour = 3600.0
    ts = np.array([10 * hour + 5.0, 12 * hour + 1800.0])
    got = buckets(ts, parse_window("1h"))
    assert [(s / hour, e / hour, len(i)) for s, e, i in got] == \
        [(10.0, 11.0, 1), (11.0, 12.0, 0), (12.0, 13.0, 1)]


def test_time_buckets_with_end_and_count() -> None:
    ts = np.array([1.0, 12.0, 25.0, 31.0])
    got = buckets(ts, parse_window("10s"), end=30.0, count=5)
    assert [(s, e, i.tolist()) for s, e, i in got] == [
        (-20.0, -10.0, []), (-10.0, 0.0, []), (0.0, 10.0, [0]), (10.0, 20.0, [1]),
        (20.0, 30.0, [2])]


def test_row_buckets_from_the_newest() -> None:
    ts = np.array([7.0, 1.0, 3.0, 2.0, 9.0, 5.0, np.nan, 11.0])
    got = buckets(ts, parse_window("2rows"))
    assert [(s, e, i.tolist()) for s, e, i in got] == [
        (1.0, 1.0, [1]), (2.0, 3.0, [3, 2]), (5.0, 7.0, [5, 0]), (9.0, 11.0, [4, 7])]
    newest_two = buckets(ts, parse_window("2rows"), end=6.0, count=2)
    assert [(s, e, i.tolist()) for s, e, i in newest_two] == [
        (1.0, 2.0, [1, 3]), (3.0, 5.0, [2, 5])]


@pytest.mark.parametrize("window", ["10s", "3rows"], ids=["time", "rows"])
def test_no_rows_no_buckets(window: str) -> None:
    assert buckets(np.array([]), parse_window(window)) == []
    assert buckets(np.array([np.nan]), parse_window(window)) == []


def test_empty_time_buckets_with_count() -> None:
    got = buckets(np.array([]), parse_window("10s"), end=100.0, count=2)
    assert [(s, e, len(i)) for s, e, i in got] == [(80.0, 90.0, 0), (90.0, 100.0, 0)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": 0}, r"The 'count' parameter of buckets must be a positive integer\. Got 0"),
        ({"count": 2.5}, r"must be a positive integer\. Got 2\.5"),
        ({"count": True}, r"must be a positive integer\. Got True"),
    ],
    ids=["zero", "fraction", "bool"],
)
def test_buckets_refuse_a_bad_count(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        buckets(np.array([1.0]), parse_window("1h"), **kwargs)  # type: ignore[arg-type]


def test_too_many_buckets_is_refused() -> None:
    ts = np.array([0.0, (MAX_BUCKETS + 5) * 1.0])
    with pytest.raises(InvalidInputError,
                       match=r"Covering the 100005 seconds from the oldest row to the end takes "
                             r"100006 windows of 1s, more than 100000\. Pass count=N"):
        buckets(ts, parse_window("1s"))
    assert len(buckets(ts, parse_window("1s"), count=3)) == 3


@settings(max_examples=150, deadline=None)
@given(ts=stamps, window=windows, end=st.one_of(st.none(), st.integers(-5, 70).map(float)))
def test_buckets_partition_the_rows(ts: np.ndarray, window: Window, end: float | None) -> None:
    got = buckets(ts, window, end=end)
    eligible = [i for i, t in enumerate(ts.tolist())
                if math.isfinite(t) and (end is None or t <= end)]
    # Every row up to the end falls in exactly one bucket, in time order.
    flat = [i for _, _, idx in got for i in idx.tolist()]
    assert sorted(flat) == eligible
    assert [ts[i] for i in flat] == sorted(ts[i] for i in flat)
    for start, stop, idx in got:
        if window.kind == "time":
            assert stop - start == window.seconds
            assert all(start < ts[i] <= stop for i in idx.tolist())
        else:
            assert 1 <= len(idx) <= (window.rows or 0)
            assert (start, stop) == (ts[idx[0]], ts[idx[-1]])
    if window.kind == "rows" and got:
        assert all(len(idx) == window.rows for _, _, idx in got[1:])
    # The newest bucket is the window select() picks at its end.
    if got:
        now = got[-1][1] if window.kind == "time" else float(ts[got[-1][2][-1]])
        assert got[-1][2].tolist() == select(ts, window, now=now).tolist()


@settings(max_examples=100, deadline=None)
@given(
    offsets=hnp.arrays(np.float64, st.integers(1, 30),
                       elements=st.floats(0.0, 300.0, allow_nan=False)),
    base=st.floats(1.6e9, 1.8e9),
    seconds=st.sampled_from([0.1, 0.3, 7.0, 60.0, 3600.0 / 7]),
)
def test_time_buckets_keep_every_row_despite_rounding(offsets: np.ndarray, base: float,
                                                     seconds: float) -> None:
    ts = base + offsets
    got = buckets(ts, Window("time", seconds=seconds), count=None)
    assert sorted(i for _, _, idx in got for i in idx.tolist()) == list(range(len(ts)))
