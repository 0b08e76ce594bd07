from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LogisticRegression

from modelyard import Client
from modelyard.settings import Settings


@pytest.fixture(scope="session")
def iris() -> tuple[pd.DataFrame, np.ndarray]:
    data = load_iris(as_frame=True)
    return data.data, data.target.to_numpy()


@pytest.fixture(scope="session")
def iris_model(iris: tuple[pd.DataFrame, np.ndarray]) -> LogisticRegression:
    X, y = iris
    return LogisticRegression(max_iter=500).fit(X, y)


@pytest.fixture(scope="session")
def cancer() -> tuple[pd.DataFrame, np.ndarray]:
    data = load_breast_cancer(as_frame=True)
    return data.data, data.target.to_numpy()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(home=tmp_path / "home", database_url=database_url,
                    artifact_uri=str(tmp_path / "artifacts"), user="tester")


@pytest.fixture
def client(settings: Settings) -> Client:
    with Client(settings) as c:
        yield c
