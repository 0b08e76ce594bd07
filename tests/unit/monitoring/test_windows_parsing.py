"""Window and duration texts: what parses, what is refused and with which message."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelyard.errors import InvalidInputError
from modelyard.monitoring.windows import Window, parse_duration, parse_window


@pytest.mark.parametrize(
    ("text", "expected", "canonical"),
    [
        ("1h", Window("time", seconds=3600.0), "1h"),
        ("1d", Window("time", seconds=86400.0), "1d"),
        ("30m", Window("time", seconds=1800.0), "30m"),
        ("90s", Window("time", seconds=90.0), "90s"),
        ("120m", Window("time", seconds=7200.0), "2h"),
        ("2w", Window("time", seconds=1209600.0), "2w"),
        ("7d", Window("time", seconds=604800.0), "1w"),
        ("1.5h", Window("time", seconds=5400.0), "90m"),
        ("0.5s", Window("time", seconds=0.5), "0.5s"),
        (" 1 h ", Window("time", seconds=3600.0), "1h"),
        ("5000rows", Window("rows", rows=5000), "5000rows"),
        ("5000 rows", Window("rows", rows=5000), "5000rows"),
        ("1 row", Window("rows", rows=1), "1row"),
        ("10ROWS", Window("rows", rows=10), "10rows"),
    ],
    ids=["hour", "day", "minutes", "seconds", "minutes-as-hours", "weeks", "days-as-week",
         "fraction", "half-second", "spaces", "rows", "rows-spaced", "one-row", "upper-case"],
)
def test_parse_window(text: str, expected: Window, canonical: str) -> None:
    window = parse_window(text)
    assert window == expected
    assert str(window) == canonical
    assert parse_window(str(window)) == window


def test_a_window_passes_through() -> None:
    window = Window("rows", rows=3)
    assert parse_window(window) is window


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"Window '' is not understood\. Write a duration such as 30m"),
        ("3600", r"Window '3600' is not understood"),
        ("1 hour", r"Window '1 hour' is not understood"),
        ("1y", r"Window '1y' is not understood"),
        ("5k rows", r"Window '5k rows' is not understood"),
        ("-1h", r"Window '-1h' is not understood"),
        ("1.5rows", r"Window '1.5rows' is not understood"),
        ("0h", r"Window '0h' is empty"),
        ("0rows", r"Window '0rows' holds no rows"),
        (3600, r"Window 3600 is not text"),
        (None, r"Window None is not text"),
    ],
    ids=["empty", "bare-number", "word-unit", "unknown-unit", "abbreviated-count", "negative",
         "fractional-rows", "zero-duration", "zero-rows", "int", "none"],
)
def test_parse_window_refuses(text: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_window(text)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "time"}, r"A time window needs a positive number of seconds; got None"),
        ({"kind": "time", "seconds": 0.0}, r"positive number of seconds; got 0\.0"),
        ({"kind": "time", "seconds": float("inf")}, r"positive number of seconds; got inf"),
        ({"kind": "time", "seconds": 5.0, "rows": 3}, r"A time window has no row count"),
        ({"kind": "rows"}, r"A row window needs a positive whole number of rows; got None"),
        ({"kind": "rows", "rows": 0}, r"positive whole number of rows; got 0"),
        ({"kind": "rows", "rows": 2.5}, r"positive whole number of rows; got 2\.5"),
        ({"kind": "rows", "rows": True}, r"positive whole number of rows; got True"),
        ({"kind": "rows", "rows": 3, "seconds": 1.0}, r"A row window has no duration"),
        ({"kind": "hours", "seconds": 1.0},
         r"The 'kind' parameter of Window must be 'time' or 'rows'\. Got 'hours' instead"),
    ],
    ids=["time-no-seconds", "time-zero", "time-inf", "time-with-rows", "rows-none", "rows-zero",
         "rows-fraction", "rows-bool", "rows-with-seconds", "unknown-kind"],
)
def test_window_checks_its_fields(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        Window(**kwargs)


@given(st.one_of(
    st.builds(lambda n: Window("rows", rows=n), st.integers(1, 10**9)),
    st.builds(lambda n, unit: Window("time", seconds=float(n * unit)),
              st.integers(1, 10**6), st.sampled_from([1, 60, 3600, 86400])),
    st.builds(lambda s: Window("time", seconds=s),
              st.floats(1e-3, 1e9).map(lambda s: round(s, 3)).filter(lambda s: s > 0)),
))
def test_text_round_trips(window: Window) -> None:
    assert parse_window(str(window)) == window


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("7d", 604800.0), ("2w", 1209600.0),
     ("90", 90.0), (12, 12.0), (0.5, 0.5), ("0s", 0.0)],
    ids=["s", "m", "h", "d", "w", "bare-text", "int", "float", "zero"],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [("soon", r"Duration 'soon' is not understood\. Write a number and a unit"),
     ("-5", r"Duration '-5' is negative"), (-1, r"Duration -1 is negative")],
    ids=["words", "negative-text", "negative-number"],
)
def test_parse_duration_refuses(text: str | float, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_duration(text)
