"""The holdout split of a pipeline run: the candidate trains on one part, and the candidate
and the champion are judged on the other, the same rows for both.

* ``random``: a seeded shuffle; the same rows and seed always give the same split.
* ``time``: the latest rows by ``time_column`` are held out, so the candidate is judged on
  the future it did not see. Rows sharing the cut's timestamp all go to the holdout (no
  moment is split across the two parts).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

    from modelyard.pipelines.spec import SplitSpec

__all__ = ["split_frame"]


def split_frame(frame: pd.DataFrame, split: SplitSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, holdout)`` of ``frame`` as ``split`` says; both keep the frame's columns.

    >>> import pandas as pd
    >>> from modelyard.pipelines.spec import SplitSpec
    >>> df = pd.DataFrame({"t": [4, 1, 3, 2, 5], "x": range(5)})
    >>> train, test = split_frame(df, SplitSpec(kind="time", time_column="t", test_size=0.4))
    >>> sorted(test["t"]), sorted(train["t"])
    ([4, 5], [1, 2, 3])
    """
    n = len(frame)
    n_test = max(1, math.ceil(n * split.test_size))
    if n < 2 or n_test >= n:
        raise InvalidInputError(
            f"{n} row(s) cannot be split into a training part and a holdout of "
            f"{split.test_size:.0%}.",
            hint="A pipeline needs enough rows for both; lower split.test_size or add data.")
    if split.kind == "random":
        order = np.random.default_rng(split.seed).permutation(n)
        test = np.zeros(n, dtype=bool)
        test[order[:n_test]] = True
    else:
        test = _latest(frame, split.time_column or "", n_test)
    holdout, train = frame[test], frame[~test]
    if len(train) == 0:
        raise InvalidInputError(
            f"Every row of the time split has the latest {split.time_column!r} value, so "
            "nothing is left to train on.",
            hint="Use a time column with more distinct values, or kind: random.")
    return train.reset_index(drop=True), holdout.reset_index(drop=True)


def _latest(frame: pd.DataFrame, column: str, n_test: int) -> np.ndarray:
    import pandas as pd

    if column not in frame.columns:
        raise InvalidInputError(
            f"The time split's column {column!r} is not in the data; its columns are "
            f"{[str(c) for c in frame.columns]}.", hint="Fix split.time_column.")
    values = frame[column]
    if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values)):
        try:
            values = pd.to_datetime(values, utc=True, format="ISO8601")
        except (ValueError, TypeError):
            raise InvalidInputError(
                f"The time split's column {column!r} holds neither numbers nor times.",
                hint="Use a timestamp, ISO 8601 text or epoch-seconds column.") from None
    if values.isna().any():
        raise InvalidInputError(
            f"The time split's column {column!r} has {int(values.isna().sum())} missing "
            "value(s).", hint="Fill or drop them in the data source.")
    ordered = np.sort(values.to_numpy())
    cut = ordered[len(ordered) - n_test]
    return np.asarray(values.to_numpy() >= cut)
