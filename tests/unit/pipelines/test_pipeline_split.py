"""The holdout split: seeded random, or the latest rows by time with ties kept together."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelyard.errors import InvalidInputError
from modelyard.pipelines.spec import SplitSpec
from modelyard.pipelines.split import split_frame


def frame(n: int = 100) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({"t": rng.permutation(n), "x": np.arange(n), "y": np.arange(n) % 2})


def test_random_split_is_seeded_sized_and_disjoint() -> None:
    df = frame()
    train, test = split_frame(df, SplitSpec(kind="random", test_size=0.25, seed=7))
    assert (len(train), len(test)) == (75, 25)
    assert set(train["x"]) | set(test["x"]) == set(range(100))
    assert not set(train["x"]) & set(test["x"])
    again = split_frame(df, SplitSpec(kind="random", test_size=0.25, seed=7))[1]
    assert list(again["x"]) == list(test["x"])
    other = split_frame(df, SplitSpec(kind="random", test_size=0.25, seed=8))[1]
    assert set(other["x"]) != set(test["x"])
    assert list(train.columns) == ["t", "x", "y"]
    assert list(train.index) == list(range(75))


def test_time_split_holds_out_the_latest_rows() -> None:
    train, test = split_frame(frame(), SplitSpec(kind="time", time_column="t", test_size=0.2))
    assert sorted(test["t"]) == list(range(80, 100))
    assert train["t"].max() < test["t"].min()


def test_time_split_keeps_a_moment_on_one_side() -> None:
    df = pd.DataFrame({"t": [1, 2, 3, 3, 3, 4], "x": range(6)})
    train, test = split_frame(df, SplitSpec(kind="time", time_column="t", test_size=0.3))
    assert sorted(test["t"]) == [3, 3, 3, 4]  # the cut falls inside t=3: all of it is held out
    assert sorted(train["t"]) == [1, 2]


def test_time_split_reads_timestamps_and_iso_text() -> None:
    times = pd.date_range("2026-01-01", periods=10, freq="D")
    for column in (times, times.strftime("%Y-%m-%dT%H:%M:%S")):
        df = pd.DataFrame({"when": column, "x": range(10)})
        _, test = split_frame(df, SplitSpec(kind="time", time_column="when", test_size=0.2))
        assert sorted(test["x"]) == [8, 9]


@pytest.mark.parametrize(("df", "split", "message"), [
    (pd.DataFrame({"x": [1]}), SplitSpec(), "1 row"),
    (frame(10), SplitSpec(kind="time", time_column="missing"), "'missing' is not in the data"),
    (pd.DataFrame({"t": [1, 1, 1], "x": [1, 2, 3]}),
     SplitSpec(kind="time", time_column="t", test_size=0.3), "nothing is left to train on"),
    (pd.DataFrame({"t": ["a", "b", "c"]}), SplitSpec(kind="time", time_column="t"),
     "neither numbers nor times"),
    (pd.DataFrame({"t": [1.0, None, 3.0]}), SplitSpec(kind="time", time_column="t"),
     "1 missing value"),
], ids=["too-few", "no-column", "one-moment", "text", "missing"])
def test_split_errors(df: pd.DataFrame, split: SplitSpec, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        split_frame(df, split)
