"""A real modelyard server (uvicorn on 127.0.0.1, random port) over a real registry."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from modelyard import Client
from modelyard.serving.server import Server, build_app
from modelyard.settings import DeploymentSettings, ServingSettings, Settings
from modelyard.testing.server import running_server


@dataclass
class Served:
    url: str
    server: Server
    client: Client
    settings: Settings
    X: pd.DataFrame
    model: Pipeline
    tensor_model: LogisticRegression


@pytest.fixture(scope="module")
def cancer_data() -> tuple[pd.DataFrame, np.ndarray]:
    data = load_breast_cancer(as_frame=True)
    return data.data, data.target.to_numpy()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory,
           cancer_data: tuple[pd.DataFrame, np.ndarray]) -> Iterator[Served]:
    X, y = cancer_data
    home: Path = tmp_path_factory.mktemp("serving-home")
    settings = Settings(home=home, user="tester")
    client = Client(settings)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    client.register(model, "cancer", data=X, alias="production")
    tensor_model = LogisticRegression(max_iter=5000).fit(X.to_numpy(), y)
    client.register(tensor_model, "cancer-tensor", data=X.to_numpy(), alias="production")
    serving = ServingSettings(
        deployments=[DeploymentSettings(model="models:/cancer@production"),
                     DeploymentSettings(model="models:/cancer-tensor@production")],
        grpc_port=None, alias_poll_s=0.2, max_body_bytes=64 * 1024, null_route=True)
    server = build_app(client, serving, wait_for_models=True, version="test")
    with running_server(server.app) as url:
        yield Served(url, server, client, settings, X, model, tensor_model)
    client.close()
