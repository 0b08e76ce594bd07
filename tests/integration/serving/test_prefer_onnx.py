"""``serving.prefer_onnx``: a scikit-learn version with a verified ONNX export is answered by
the export, under the version's own identity (number, signature, output types); a version
without one, or a server without the setting, uses scikit-learn as before."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelyard import Client
from modelyard.export import export_onnx
from modelyard.serving.server import build_app
from modelyard.settings import DeploymentSettings, ServingSettings, Settings
from modelyard.testing.server import running_server


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, pd.DataFrame]]:
    home = tmp_path_factory.mktemp("prefer-onnx")
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, :8]
    client = Client(Settings(home=Path(home)))
    for c in (1.0, 0.1):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000))
        client.register(model.fit(X, y), "cancer", data=X)
    client.set_alias("cancer", "production", 1)
    source = client.load("models:/cancer/1")
    export_onnx(source, client.get_reference_sample("models:/cancer/1"), client.register)  # v3
    yield client, X
    client.close()


def _infer(url: str, model: str, frame: pd.DataFrame) -> dict[str, object]:
    inputs = [{"name": c, "shape": [len(frame)], "datatype": "FP64",
               "data": frame[c].astype(float).tolist()} for c in frame.columns]
    r = httpx.post(f"{url}/v2/models/{model}/infer", json={"inputs": inputs}, timeout=30)
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def _serve(client: Client, prefer: bool | None, **deployment: object) -> object:
    settings = ServingSettings(
        deployments=[DeploymentSettings(model="models:/cancer@production"),
                     DeploymentSettings(model="models:/cancer/2", name="second",
                                        **deployment)],  # type: ignore[arg-type]
        grpc_port=None, prefer_onnx=bool(prefer))
    return build_app(client, settings, wait_for_models=True)


def test_the_export_answers_as_the_source_version(
        registry: tuple[Client, pd.DataFrame]) -> None:
    client, X = registry
    twin = client.onnx_twin(client.get_version("cancer", 1))
    assert twin is not None
    assert twin.version == 3
    assert client.onnx_twin(client.get_version("cancer", 2)) is None  # never exported
    server = _serve(client, True)
    rows = X.head(50)
    expected = client.load("models:/cancer/1")
    with running_server(server.app) as url:  # type: ignore[attr-defined]
        body = _infer(url, "cancer", rows)
        index = httpx.post(f"{url}/v2/repository/index").json()
        second = _infer(url, "second", rows)
    assert body["model_version"] == "1"
    outputs = {o["name"]: o for o in body["outputs"]}  # type: ignore[attr-defined]
    np.testing.assert_array_equal(outputs["predict"]["data"], expected.predict(rows))
    assert outputs["predict_proba"]["datatype"] == "FP64"  # the version's type, not float32
    np.testing.assert_allclose(np.reshape(outputs["predict_proba"]["data"], (-1, 2)),
                               expected.predict_proba(rows), atol=1e-4)
    entries = {e["name"]: e for e in index}
    assert entries["cancer"]["served_by"] == "models:/cancer/3"
    assert "served_by" not in entries["second"]  # no export: scikit-learn answers
    assert second["model_version"] == "2"


def test_without_the_setting_scikit_learn_answers(registry: tuple[Client, pd.DataFrame]) -> None:
    client, X = registry
    server = _serve(client, None)
    with running_server(server.app) as url:  # type: ignore[attr-defined]
        index = httpx.post(f"{url}/v2/repository/index").json()
        body = _infer(url, "cancer", X.head(3))
    assert all("served_by" not in e for e in index)
    outputs = {o["name"]: o for o in body["outputs"]}  # type: ignore[attr-defined]
    assert outputs["predict_proba"]["datatype"] == "FP64"


def test_a_deployment_can_opt_out(registry: tuple[Client, pd.DataFrame]) -> None:
    client, _ = registry
    settings = ServingSettings(
        deployments=[DeploymentSettings(model="models:/cancer@production", prefer_onnx=False)],
        grpc_port=None, prefer_onnx=True)
    server = build_app(client, settings, wait_for_models=True)
    with running_server(server.app) as url:
        index = httpx.post(f"{url}/v2/repository/index").json()
    assert "served_by" not in index[0]
