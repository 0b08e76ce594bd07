"""ONNX export end to end: register a real model, export it, check it, serve both, compare.

Each case (scikit-learn: a logistic regression, a random forest, a pipeline with a text column,
a ridge regression; PyTorch: an MLP classifier, a TorchScript classifier and regression net;
XGBoost and LightGBM classifiers, with text labels too, and a regressor) is registered with
data, exported with ``export_onnx`` (checked on the reference sample), registered as a new
``onnx`` version whose lineage points at the source, and served next to its source by one real
server: the v2 responses must agree. The MLP is also quantized and pruned, with the report.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelyard import Client
from modelyard.cli.main import main
from modelyard.export import export_onnx
from modelyard.serving.server import build_app
from modelyard.settings import DeploymentSettings, ServingSettings, Settings
from modelyard.testing.server import running_server

_FEATURES = 8
_TOLERANCE = 1e-4


@dataclass
class Exported:
    source: str
    export: str
    data: pd.DataFrame
    classifier: bool
    max_abs_diff: float


@dataclass
class World:
    client: Client
    cases: dict[str, Exported]
    url: str


def _frame() -> tuple[pd.DataFrame, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, :_FEATURES]
    return ((X - X.mean()) / X.std()).astype(np.float32), y.to_numpy()


def _mlp(X: pd.DataFrame, y: np.ndarray, hidden: int = 128) -> Any:
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], hidden), torch.nn.ReLU(),
                              torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
                              torch.nn.Linear(hidden, 2), torch.nn.Softmax(dim=1))
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    xt, yt = torch.tensor(X.to_numpy()), torch.tensor(y)
    for _ in range(60):
        opt.zero_grad()
        loss = torch.nn.functional.nll_loss(torch.log(net(xt) + 1e-9), yt)
        loss.backward()
        opt.step()
    return net.eval()


def _models(X: pd.DataFrame, y: np.ndarray) -> dict[str, tuple[Any, pd.DataFrame]]:
    import lightgbm as lgb
    import xgboost as xgb

    # Columns in another order than the model's features: the export reorders them.
    shuffled = X[list(reversed(X.columns))]
    mixed = X.iloc[:, :3].astype(np.float64).assign(
        size=np.where(X.iloc[:, 0] > 0, "large", "small"))
    pipeline = make_pipeline(
        ColumnTransformer([("num", StandardScaler(), list(mixed.columns[:3])),
                           ("cat", OneHotEncoder(handle_unknown="ignore"), ["size"])]),
        LogisticRegression(max_iter=500)).fit(mixed, y)
    return {
        "logreg": (LogisticRegression(max_iter=500).fit(X.astype(np.float64), y),
                   X.astype(np.float64)),
        "forest": (RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0)
                   .fit(X, y), X),
        "mixed": (pipeline, mixed),
        "mlp": (_mlp(X, y), X),
        "xgb": (xgb.XGBClassifier(n_estimators=15, max_depth=3).fit(X, y), shuffled),
        "lgbm": (lgb.LGBMClassifier(n_estimators=15, num_leaves=8, verbose=-1).fit(X, y),
                 shuffled),
        "xgb-reg": (xgb.XGBRegressor(n_estimators=15, max_depth=3).fit(X, y * 250.0), X),
        "lgbm-text": (lgb.LGBMClassifier(n_estimators=10, num_leaves=8, verbose=-1).fit(
            X, np.where(y == 1, "benign", "malignant")), X),
        "ridge": (Ridge().fit(X, y * 250.0), X),
        "torchscript": (_scripted(X.shape[1]), X),
        "torch-reg": (_regression_net(X.shape[1]), X),
    }


def _scripted(n: int) -> Any:
    import torch

    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(n, 3), torch.nn.Softmax(dim=1)).eval()
    return torch.jit.script(net)


def _regression_net(n: int) -> Any:
    import torch

    torch.manual_seed(2)
    net = torch.nn.Sequential(torch.nn.Linear(n, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    # TorchScript: two torch.export programs loading at once in the server's pool race in
    # torch.export.load ("_CURRENT_DESERIALIZER is already set"); the MLP is the one.
    return torch.jit.script(net.eval())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    X, y = _frame()
    client = Client(Settings(home=tmp_path_factory.mktemp("export-home"), user="tester"))
    cases = {}
    deployments = []
    for name, (model, data) in _models(X, y).items():
        source = client.register(model, name, data=data)
        done = export_onnx(client.load(source.uri), client.get_reference_sample(source.uri),
                           client.register, tolerance=_TOLERANCE)
        cases[name] = Exported(source.uri, done.version.uri, data,
                               classifier=done.equivalence.label_agreement is not None,
                               max_abs_diff=done.equivalence.max_abs_diff)
        deployments += [DeploymentSettings(model=source.uri, name=name),
                        DeploymentSettings(model=done.version.uri, name=f"{name}-onnx")]
    serving = ServingSettings(deployments=deployments, grpc_port=None)
    server = build_app(client, serving, wait_for_models=True, version="test")
    with running_server(server.app) as url:
        yield World(client, cases, url)
    client.close()


def _infer(url: str, model: str, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    inputs = []
    for column in frame.columns:
        values = frame[column]
        text = not pd.api.types.is_numeric_dtype(values)
        inputs.append({"name": column, "shape": [len(frame)],
                       "datatype": "BYTES" if text else "FP64",
                       "data": values.tolist() if text else values.astype(float).tolist()})
    r = httpx.post(f"{url}/v2/models/{model}/infer", json={"inputs": inputs}, timeout=30)
    assert r.status_code == 200, r.text
    return {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in r.json()["outputs"]}


CASES = ["logreg", "forest", "mixed", "ridge", "mlp", "torchscript", "torch-reg", "xgb", "lgbm",
         "lgbm-text", "xgb-reg"]


@pytest.mark.slow
@pytest.mark.parametrize("name", CASES, ids=CASES)
def test_export_is_registered_as_onnx_child_of_its_source(world: World, name: str) -> None:
    case = world.cases[name]
    exported = world.client.resolve(case.export)
    source = world.client.resolve(case.source)
    assert exported.format == "onnx"
    assert exported.lineage.parent_version == source.version
    assert exported.lineage.params["exported_from"] == source.uri
    assert exported.signature == source.signature
    assert exported.profile_digest is not None  # monitored like its source
    assert case.max_abs_diff <= _TOLERANCE * 250


@pytest.mark.slow
@pytest.mark.parametrize("name", CASES, ids=CASES)
def test_served_predictions_equal_the_source(world: World, name: str) -> None:
    case = world.cases[name]
    frame = case.data.head(64)
    original = _infer(world.url, name, frame)
    exported = _infer(world.url, f"{name}-onnx", frame)
    if case.classifier:
        np.testing.assert_array_equal(exported["predict"], original["predict"])
        np.testing.assert_allclose(exported["predict_proba"], original["predict_proba"],
                                   atol=_TOLERANCE)
    else:
        np.testing.assert_allclose(exported["predict"], original["predict"],
                                   rtol=_TOLERANCE, atol=_TOLERANCE)
    assert set(exported) == set(original)


@pytest.mark.slow
def test_quantized_and_pruned_mlp_report(world: World) -> None:
    source = world.cases["mlp"].source
    model = world.client.load(source)
    done = export_onnx(model, world.client.get_reference_sample(source), world.client.register,
                       quantize="dynamic", prune=0.3, latency_runs=50, min_agreement=0.97)
    report = done.optimization
    assert report is not None
    assert report.steps == ("prune 30%", "quantize dynamic")
    assert report.after.size_bytes < report.before.size_bytes / 2  # int8 weights
    assert report.after.compressed_bytes < report.before.compressed_bytes
    assert report.pruned_weights == pytest.approx(0.3 * report.total_weights, abs=3)
    assert report.before.agreement == 1.0
    assert report.after.agreement >= 0.97
    assert report.after.latency_ms > 0
    version = done.version
    assert version.tags == {"exported_from": source, "quantized": "dynamic", "pruned": "0.3"}
    assert version.lineage.metrics["export_agreement"] == report.after.agreement
    # The quantized version serves like any other and agrees with the original's labels.
    X = world.cases["mlp"].data
    labels = world.client.load(version.uri).predict(X)
    assert (labels == model.predict(X)).mean() == pytest.approx(report.after.agreement)


@pytest.mark.slow
def test_static_quantization_calibrates_on_the_sample(world: World) -> None:
    source = world.cases["mlp"].source
    done = export_onnx(world.client.load(source), world.client.get_reference_sample(source),
                       world.client.register, quantize="static", latency_runs=20)
    assert done.optimization is not None
    assert done.optimization.after.agreement >= 0.99
    assert done.optimization.after.size_bytes < done.optimization.before.size_bytes


# -- the command line --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    X, y = _frame()
    client = Client(Settings(home=tmp_path_factory.mktemp("cli-home"), user="tester"))
    client.register(LogisticRegression(max_iter=300).fit(X, y), "lr", data=X)
    client.register(RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y), "rf",
                    data=X)
    client.register(LogisticRegression(max_iter=300).fit(X, y), "bare")  # no reference sample
    yield client
    client.close()


@pytest.fixture
def cli_home(cli_registry: Client, monkeypatch: pytest.MonkeyPatch) -> Client:
    """The module's registry, as the CLI's home for one test."""
    monkeypatch.setenv("MODELYARD_HOME", str(cli_registry.settings.home))
    return cli_registry


def test_cli_export_onnx_registers_and_sets_alias(
        cli_home: Client, capsys: pytest.CaptureFixture[str]) -> None:
    before = cli_home.get_model("lr").latest_version
    code = main(["export", "onnx", "models:/lr/1", "--alias", "edge"])
    out = capsys.readouterr()
    assert code == 0, out.err
    new = f"models:/lr/{before + 1}"
    assert f"Exported models:/lr/1 (sklearn) to {new} [onnx]" in out.out
    assert "labels agree on 100.00% of rows" in out.out
    assert cli_home.resolve("models:/lr@edge").uri == new


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["models:/rf/1", "--prune", "0.3"], 2, "tree ensemble"),
        (["models:/rf/1", "--quantize", "dynamic"], 2, "nothing to quantize"),
        (["models:/lr/1", "--quantize", "fp16"], 2, "--quantize must be one of"),
        (["models:/bare/1"], 2, "has no reference sample"),
        (["models:/lr/1", "--tolerance", "1e-30"], 2, "does not reproduce it"),
        (["models:/nope/1"], 3, "nope"),
    ],
    ids=["prune-forest", "quantize-forest", "bad-mode", "no-sample", "tight-tolerance",
         "unknown-model"],
)
def test_cli_export_onnx_refusals(cli_home: Client, capsys: pytest.CaptureFixture[str],
                                  args: list[str], code: int, message: str) -> None:
    counts = {m.name: m.latest_version for m in cli_home.list_models()}
    assert main(["export", "onnx", *args]) == code
    err = capsys.readouterr().err
    assert message in " ".join(err.split())
    assert "Traceback" not in err
    assert {m.name: m.latest_version for m in cli_home.list_models()} == counts  # no export


def test_cli_export_onnx_with_data_file(cli_home: Client, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    X, _ = _frame()
    path = tmp_path / "inputs.csv"
    X.head(50).to_csv(path, index=False)
    assert main(["export", "onnx", "models:/bare/1", "--data", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["version"]["lineage"]["parent_version"] == 1
    assert doc["equivalence"]["rows"] == 50
    assert doc["equivalence"]["passed"] is True
