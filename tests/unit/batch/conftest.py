"""Fixtures of the batch tests: a small data set and a logistic regression over it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from batch_helpers import FEATURES, make_model
from sklearn.linear_model import LogisticRegression

from modelyard.runtimes.model import Model


@pytest.fixture(scope="session")
def frame() -> pd.DataFrame:
    """600 rows: an id, four float features and a label."""
    rng = np.random.default_rng(7)
    X = pd.DataFrame(np.round(rng.normal(size=(600, 4)), 6), columns=FEATURES)
    label = (X.f0 + 0.5 * X.f1 - X.f3 > 0).astype(np.int64)
    return pd.concat([pd.DataFrame({"id": np.arange(600, dtype=np.int64) + 1000}), X,
                      pd.DataFrame({"label": label})], axis=1)


@pytest.fixture(scope="session")
def estimator(frame: pd.DataFrame) -> LogisticRegression:
    return LogisticRegression().fit(frame[FEATURES], frame["label"])


@pytest.fixture(scope="session")
def model(frame: pd.DataFrame, estimator: LogisticRegression) -> Model:
    return make_model(estimator, frame[FEATURES])
