"""Which columns a trained model is registered with."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from modelyard.errors import InvalidInputError
from modelyard.pipelines.candidate import model_features

FRAME = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.0, 1.0, 0.0], "t": [1, 2, 3],
                      "y": [1.0, 2.0, 3.5]})


def test_declared_then_learned_then_source_then_the_rest() -> None:
    learned = LinearRegression().fit(FRAME[["b", "a"]], FRAME["y"])
    unnamed = LinearRegression().fit(FRAME[["a"]].to_numpy(), FRAME["y"])
    assert model_features(learned, FRAME, target="y", declared=["a"]) == ["a"]
    assert model_features(learned, FRAME, target="y") == ["b", "a"]
    assert model_features(unnamed, FRAME, target="y", source_features=["a", "b"]) == ["a", "b"]
    assert model_features(unnamed, FRAME, target="y", exclude=("t",)) == ["a", "b"]


def test_features_missing_from_the_data_are_named() -> None:
    with pytest.raises(InvalidInputError, match=r"feature column\(s\) \['c'\]"):
        model_features(None, FRAME, target="y", declared=["a", "c"])
