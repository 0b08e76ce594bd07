"""Every model format through the real Client, on SQLite and PostgreSQL: objects and saved files.

Each case registers a model, checks the format the catalog detected, loads the version back
(checksums verified, files fetched from the artifact store) and compares its predictions with
the original's. Models are tiny: the point is the round trip, not the model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelyard import Client
from modelyard.runtimes.pyfunc import PyfuncContext

_FEATURES = 8
_ONNX_ATOL = 1e-4  # onnxruntime computes in float32
_TORCH_ATOL = 1e-5


class Threshold:
    """A pyfunc model: 1 where the row sum passes a threshold read from a JSON artifact.

    It lives at the top of this module so that it can be imported again when it loads.
    """

    def __init__(self) -> None:
        self.threshold = 0.0

    def load(self, context: Any) -> None:
        config = json.loads(Path(context.artifacts["config"]).read_text())
        self.threshold = float(config["threshold"])

    def _scores(self, data: Any) -> np.ndarray:
        rows: np.ndarray = np.asarray(data, dtype=np.float64).sum(axis=1)
        return rows - self.threshold

    def predict(self, data: Any) -> np.ndarray:
        return (self._scores(data) > 0).astype(np.int64)

    def predict_proba(self, data: Any) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-self._scores(data)))
        return np.column_stack([1.0 - p, p])


@dataclass(frozen=True)
class Data:
    frame: pd.DataFrame  # float32 columns with their real names ("mean radius", ...)
    matrix: np.ndarray  # the same values as a float32 matrix
    y: np.ndarray


@dataclass
class Case:
    """What to register, with what, and what the loaded model must answer."""

    model: Any  # an object, or the Path of a saved model
    data: Any
    predict: np.ndarray
    proba: np.ndarray | None = None
    atol: float = 1e-6
    options: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def data() -> Data:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, :_FEATURES]
    X = ((X - X.mean()) / X.std()).astype(np.float32)
    # Copies: torch.from_numpy warns on the read-only arrays pandas hands out.
    return Data(frame=X, matrix=X.to_numpy(copy=True), y=y.to_numpy(copy=True))


def _sklearn(data: Data) -> Any:
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(data.frame, data.y)


def _xgboost(data: Data) -> Any:
    import xgboost as xgb

    return xgb.XGBClassifier(n_estimators=5, max_depth=3, n_jobs=1, random_state=0).fit(
        data.frame, data.y
    )


def _lightgbm(data: Data) -> Any:
    import lightgbm as lgb

    return lgb.LGBMClassifier(n_estimators=5, num_leaves=7, n_jobs=1, verbose=-1,
                              random_state=0).fit(data.frame, data.y)


def _torch(data: Data) -> Any:
    import torch

    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Linear(_FEATURES, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2),
        torch.nn.Softmax(dim=1),
    )
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    x, t = torch.from_numpy(data.matrix), torch.from_numpy(data.y)
    for _ in range(3):
        optimizer.zero_grad()
        loss = torch.nn.functional.nll_loss(torch.log(module(x) + 1e-7), t)
        torch.autograd.backward(loss)
        optimizer.step()
    return module.eval()


def _torch_proba(module: Any, data: Data) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.asarray(module(torch.from_numpy(data.matrix)).numpy())


def _onnx(data: Data) -> tuple[Any, Any]:
    from skl2onnx import to_onnx

    clf = LogisticRegression().fit(data.matrix, data.y)
    return clf, to_onnx(clf, data.matrix[:1], options={id(clf): {"zipmap": False}})


# -- in-memory objects --------------------------------------------------------------------------
def sklearn_object(data: Data, tmp_path: Path) -> Case:
    clf = _sklearn(data)
    return Case(clf, data.frame, clf.predict(data.frame), clf.predict_proba(data.frame))


def xgboost_object(data: Data, tmp_path: Path) -> Case:
    clf = _xgboost(data)
    return Case(clf, data.frame, clf.predict(data.frame), clf.predict_proba(data.frame))


def lightgbm_object(data: Data, tmp_path: Path) -> Case:
    clf = _lightgbm(data)
    return Case(clf, data.frame, clf.predict(data.frame), clf.predict_proba(data.frame))


def torch_object(data: Data, tmp_path: Path) -> Case:
    module = _torch(data)
    proba = _torch_proba(module, data)
    # data= is required: the module is exported from it.
    return Case(module, data.matrix, proba.argmax(axis=1), proba, atol=_TORCH_ATOL)


def onnx_object(data: Data, tmp_path: Path) -> Case:
    clf, proto = _onnx(data)
    return Case(proto, data.matrix, clf.predict(data.matrix), clf.predict_proba(data.matrix),
                atol=_ONNX_ATOL)


def pyfunc_object(data: Data, tmp_path: Path) -> Case:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"threshold": 0.5}))
    model = Threshold()
    model.load(PyfuncContext(artifacts={"config": str(config)}, model_dir=str(tmp_path)))
    return Case(Threshold(), data.frame, model.predict(data.frame), model.predict_proba(data.frame),
                options={"artifacts": {"config": str(config)}})


# -- saved files --------------------------------------------------------------------------------
def skops_file(data: Data, tmp_path: Path) -> Case:
    import skops.io as sio

    clf = _sklearn(data)
    path = tmp_path / "model.skops"
    sio.dump(clf, path)
    return Case(path, data.frame, clf.predict(data.frame), clf.predict_proba(data.frame))


def onnx_file(data: Data, tmp_path: Path) -> Case:
    clf, proto = _onnx(data)
    path = tmp_path / "model.onnx"
    path.write_bytes(proto.SerializeToString())
    return Case(path, data.matrix, clf.predict(data.matrix), clf.predict_proba(data.matrix),
                atol=_ONNX_ATOL)


def xgboost_json_file(data: Data, tmp_path: Path) -> Case:
    clf = _xgboost(data)
    path = tmp_path / "model.json"
    clf.save_model(path)
    # A saved file is a bare Booster: predict gives the positive class's probability.
    return Case(path, data.frame, clf.predict_proba(data.frame)[:, 1])


def lightgbm_txt_file(data: Data, tmp_path: Path) -> Case:
    clf = _lightgbm(data)
    path = tmp_path / "model.txt"
    clf.booster_.save_model(path)
    return Case(path, data.frame, clf.predict_proba(data.frame)[:, 1])


def torch_pt2_file(data: Data, tmp_path: Path) -> Case:
    import torch

    module = _torch(data)
    path = tmp_path / "model.pt2"
    torch.export.save(torch.export.export(module, (torch.from_numpy(data.matrix[:4]),)), path)
    proba = _torch_proba(module, data)
    return Case(path, data.matrix, proba.argmax(axis=1), proba, atol=_TORCH_ATOL)


def mlflow_folder(data: Data, tmp_path: Path) -> Case:
    import mlflow.sklearn

    clf = _sklearn(data)
    path = tmp_path / "mlflow-model"
    mlflow.sklearn.save_model(clf, path, serialization_format="skops", pip_requirements=[])
    return Case(path, data.frame, clf.predict(data.frame), clf.predict_proba(data.frame))


Build = Callable[[Data, Path], Case]


@pytest.fixture
def _quiet_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    # mlflow starts its telemetry client when first imported.
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")


@pytest.mark.parametrize(
    ("build", "expected_format"),
    [
        pytest.param(sklearn_object, "sklearn", id="sklearn"),
        pytest.param(xgboost_object, "xgboost", id="xgboost"),  # an sklearn API, not "sklearn"
        pytest.param(lightgbm_object, "lightgbm", id="lightgbm"),
        pytest.param(torch_object, "torch", id="torch"),
        pytest.param(onnx_object, "onnx", id="onnx"),
        pytest.param(pyfunc_object, "pyfunc", id="pyfunc"),
        pytest.param(skops_file, "sklearn", id="skops-file"),
        pytest.param(onnx_file, "onnx", id="onnx-file"),
        pytest.param(xgboost_json_file, "xgboost", id="xgboost-json-file"),
        pytest.param(lightgbm_txt_file, "lightgbm", id="lightgbm-txt-file"),
        pytest.param(torch_pt2_file, "torch", id="torch-pt2-file"),
        pytest.param(mlflow_folder, "sklearn", id="mlflow-folder"),
    ],
)
@pytest.mark.usefixtures("_quiet_mlflow")
def test_register_load_predict(
    build: Build, expected_format: str, client: Client, data: Data, tmp_path: Path
) -> None:
    case = build(data, tmp_path)
    mv = client.register(case.model, "m", data=case.data, **case.options)
    assert (mv.version, mv.format) == (1, expected_format)
    assert mv.signature is not None
    assert client.get_version("m", 1).format == expected_format  # as stored in the database

    model = client.load("models:/m/1")
    assert model.version.format == expected_format
    got = np.asarray(model.predict(case.data))
    assert got.shape == case.predict.shape
    if case.predict.dtype.kind in "fc":
        np.testing.assert_allclose(got, case.predict, atol=case.atol, rtol=1e-5)
    else:
        np.testing.assert_array_equal(got, case.predict)
    assert model.has_proba is (case.proba is not None)
    if case.proba is not None:
        np.testing.assert_allclose(np.asarray(model.predict_proba(case.data)), case.proba,
                                   atol=case.atol, rtol=1e-5)
