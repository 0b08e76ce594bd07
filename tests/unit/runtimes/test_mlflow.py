"""The MLflow importer, on folders written by the real mlflow package.

mlflow is imported inside fixtures, after telemetry is switched off: it starts its telemetry
client when first imported. ``pip_requirements=[]`` skips MLflow's requirement inference, which
loads the model in a subprocess and takes seconds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
from skl2onnx import to_onnx
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelyard.core.signature import ColumnSpec, Schema, Signature, TensorSpec
from modelyard.errors import DependencyMissingError, UnsafeModelError, UnsupportedModelError
from modelyard.runtimes.base import LoadOptions, SaveOptions
from modelyard.runtimes.catalog import RuntimeCatalog
from modelyard.runtimes.mlflow import MlflowRuntime, mlflow_signature
from modelyard.runtimes.onnx import OnnxRuntime
from modelyard.runtimes.sklearn import SklearnRuntime


@pytest.fixture
def mlflow(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    import mlflow.onnx
    import mlflow.pyfunc
    import mlflow.sklearn

    return mlflow


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, Any]:
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return x, make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)


def _store(runtime: MlflowRuntime, source: Path, tmp_path: Path, **options: Any) -> Any:
    target = tmp_path / "stored"
    target.mkdir()
    return target, runtime.save_path(source, target, SaveOptions(**options))


def test_skops_sklearn_model_becomes_sklearn(
    mlflow: ModuleType, cancer: tuple[pd.DataFrame, Any], tmp_path: Path
) -> None:
    x, clf = cancer
    source = tmp_path / "mlflow"
    signature = mlflow.models.infer_signature(x, clf.predict(x))
    mlflow.sklearn.save_model(
        clf, source, serialization_format="skops", signature=signature, pip_requirements=[]
    )
    runtime = MlflowRuntime()
    catalog = RuntimeCatalog([SklearnRuntime(), OnnxRuntime(), runtime])
    assert catalog.for_path(source) is runtime

    target, saved = _store(runtime, source, tmp_path)
    assert saved.format == "sklearn"
    assert saved.signature.inputs.columns[0] == ColumnSpec("mean radius", "float64")
    assert saved.signature.inputs.names == list(x.columns)
    assert saved.signature.outputs.tensors == (TensorSpec("output", "int64", (-1,)),)
    predictor = SklearnRuntime().load(target, saved.meta, LoadOptions())
    prepared = saved.signature.validate_input(x)
    np.testing.assert_array_equal(predictor.predict(prepared), clf.predict(x))
    np.testing.assert_allclose(predictor.predict_proba(prepared), clf.predict_proba(x))


def test_skops_forest_needs_no_extra_trust(mlflow: ModuleType, tmp_path: Path) -> None:
    x, y = load_diabetes(return_X_y=True)
    reg = RandomForestRegressor(n_estimators=5, random_state=0).fit(x, y)
    source = tmp_path / "mlflow"
    # MLflow 3 asks for the tree type explicitly; modelyard trusts scikit-learn's own types.
    mlflow.sklearn.save_model(
        reg,
        source,
        serialization_format="skops",
        skops_trusted_types=["sklearn.tree._tree.Tree"],
        pip_requirements=[],
    )
    target, saved = _store(MlflowRuntime(), source, tmp_path)
    assert (saved.format, saved.signature) == ("sklearn", None)
    predictor = SklearnRuntime().load(target, saved.meta, LoadOptions())
    np.testing.assert_array_equal(predictor.predict(x[:20]), reg.predict(x[:20]))


def test_pickled_sklearn_model_needs_trust(
    mlflow: ModuleType, cancer: tuple[pd.DataFrame, Any], tmp_path: Path
) -> None:
    x, clf = cancer
    source = tmp_path / "mlflow"
    mlflow.sklearn.save_model(clf, source, serialization_format="cloudpickle", pip_requirements=[])
    with pytest.raises(UnsafeModelError, match="stores its scikit-learn model with cloudpickle"):
        _store(MlflowRuntime(), source, tmp_path)

    target = tmp_path / "trusted"
    target.mkdir()
    saved = MlflowRuntime().save_path(source, target, SaveOptions(trust_pickle=True))
    assert saved.format == "sklearn"
    assert sorted(p.name for p in target.iterdir()) == ["model.skops"]  # converted, no pickle
    predictor = SklearnRuntime().load(target, saved.meta, LoadOptions())
    np.testing.assert_array_equal(predictor.predict(x), clf.predict(x))


def test_onnx_model_becomes_onnx(
    mlflow: ModuleType, cancer: tuple[pd.DataFrame, Any], tmp_path: Path
) -> None:
    x, clf = cancer
    matrix = x.to_numpy(dtype=np.float32)
    proto = to_onnx(clf, matrix[:1], options={id(clf[-1]): {"zipmap": False}})
    source = tmp_path / "mlflow"
    mlflow.onnx.save_model(proto, source, pip_requirements=[])
    target, saved = _store(MlflowRuntime(), source, tmp_path)
    assert saved.format == "onnx"
    # No MLmodel signature: the one the ONNX graph declares is kept.
    assert saved.signature.inputs.tensors == (TensorSpec("X", "float32", (-1, 30)),)
    predictor = OnnxRuntime().load(target, saved.meta, LoadOptions())
    np.testing.assert_array_equal(predictor.predict(matrix), clf.predict(x))
    np.testing.assert_allclose(predictor.predict_proba(matrix), clf.predict_proba(x), atol=1e-4)


@pytest.fixture
def pyfunc_folder(mlflow: ModuleType, tmp_path: Path) -> Path:
    from mlflow_models import RowSum

    source = tmp_path / "mlflow"
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    signature = mlflow.models.infer_signature(frame, np.array([4.0, 6.0]))
    mlflow.pyfunc.save_model(
        source, python_model=RowSum(), signature=signature, pip_requirements=[]
    )
    return source


def test_cloudpickled_python_model_needs_trust(pyfunc_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(UnsafeModelError, match=r"pickled files \['python_model.pkl'\]"):
        _store(MlflowRuntime(), pyfunc_folder, tmp_path)


def test_trusted_python_model_loads_with_mlflow(pyfunc_folder: Path, tmp_path: Path) -> None:
    runtime = MlflowRuntime()
    target, saved = _store(runtime, pyfunc_folder, tmp_path, trust_pickle=True)
    assert saved.format == "mlflow_pyfunc"
    assert saved.meta["loader_module"] == "mlflow.pyfunc.model"
    assert (target / "mlflow_model" / "MLmodel").is_file()
    columns = (ColumnSpec("a", "float64"), ColumnSpec("b", "float64"))
    assert saved.signature.inputs.columns == columns
    json.dumps(saved.meta)
    predictor = runtime.load(target, saved.meta, LoadOptions())
    frame = pd.DataFrame({"a": [1.0, 2.0, 5.0], "b": [3.0, 4.0, 0.5]})
    got = predictor.predict(saved.signature.validate_input(frame))
    np.testing.assert_allclose(got, [4.0, 6.0, 5.5])
    assert not hasattr(predictor, "predict_proba")


def test_loading_without_mlflow_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # makes "import mlflow" fail
    monkeypatch.setitem(sys.modules, "mlflow.pyfunc", None)
    with pytest.raises(DependencyMissingError, match="needs the 'mlflow' package") as info:
        MlflowRuntime().load(tmp_path, {"dir": "mlflow_model"}, LoadOptions())
    assert info.value.hint == "Install it with: pip install 'modelyard[mlflow]'."


def _mlmodel(folder: Path, text: str) -> Path:
    folder.mkdir()
    (folder / "MLmodel").write_text(text)
    return folder


def test_unknown_flavor_is_refused(tmp_path: Path) -> None:
    source = _mlmodel(tmp_path / "mlflow", "flavors:\n  keras: {data: model.keras}\n")
    with pytest.raises(UnsupportedModelError, match=r"has the flavors \['keras'\]"):
        _store(MlflowRuntime(), source, tmp_path)


def test_unreadable_mlmodel_is_refused(tmp_path: Path) -> None:
    source = _mlmodel(tmp_path / "mlflow", "flavors: [unclosed\n")
    with pytest.raises(UnsupportedModelError, match="Cannot read the MLmodel file"):
        _store(MlflowRuntime(), source, tmp_path)


def test_detection(tmp_path: Path) -> None:
    runtime = MlflowRuntime()
    folder = _mlmodel(tmp_path / "mlflow", "flavors: {}\n")
    assert runtime.can_save_path(folder)
    assert not runtime.can_save_path(folder / "MLmodel")
    assert not runtime.can_save_path(tmp_path)
    assert not runtime.can_save(object())
    with pytest.raises(UnsupportedModelError, match="not in-memory objects"):
        runtime.save(object(), tmp_path, SaveOptions())


def _spec(inputs: list[dict[str, Any]], outputs: Any = None) -> dict[str, Any]:
    """An MLmodel signature section: MLflow stores each schema as a JSON string."""
    return {"inputs": json.dumps(inputs), "outputs": json.dumps(outputs) if outputs else None}


def _tensor(dtype: str, shape: list[int], name: str | None = None) -> dict[str, Any]:
    spec = {"type": "tensor", "tensor-spec": {"dtype": dtype, "shape": shape}}
    return {**spec, "name": name} if name else spec


def _columns(*specs: ColumnSpec) -> Signature:
    return Signature(Schema("columns", columns=specs))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            _spec(
                [
                    {"type": "double", "name": "x"},
                    {"type": "long", "name": "n", "required": False},
                    {"type": "string", "name": "city"},
                ]
            ),
            _columns(
                ColumnSpec("x", "float64"),
                ColumnSpec("n", "int64", nullable=True),
                ColumnSpec("city", "string"),
            ),
        ),
        (
            _spec(
                [
                    {"type": "float", "name": "f"},
                    {"type": "integer", "name": "i"},
                    {"type": "boolean", "name": "b"},
                ]
            ),
            _columns(ColumnSpec("f", "float32"), ColumnSpec("i", "int32"), ColumnSpec("b", "bool")),
        ),
        (
            _spec([_tensor("float64", [-1, 30])], [_tensor("int64", [-1])]),
            Signature(
                Schema("tensors", tensors=(TensorSpec("input", "float64", (-1, 30)),)),
                Schema("tensors", tensors=(TensorSpec("output", "int64", (-1,)),)),
            ),
        ),
        (
            _spec([_tensor("uint8", [-1, 28, 28], "img"), _tensor("str", [-1], "tag")]),
            Signature(
                Schema(
                    "tensors",
                    tensors=(
                        TensorSpec("img", "uint8", (-1, 28, 28)),
                        TensorSpec("tag", "string", (-1,)),
                    ),
                )
            ),
        ),
        (_spec([{"type": "binary", "name": "blob"}]), None),
        ({"inputs": None, "outputs": None}, None),
        (None, None),
    ],
    ids=["columns", "narrow-types", "tensor", "named-tensors", "unsupported", "empty", "absent"],
)
def test_mlflow_signature(spec: dict[str, Any] | None, expected: Signature | None) -> None:
    assert mlflow_signature(spec) == expected


def test_missing_model_file_is_refused(tmp_path: Path) -> None:
    text = "flavors:\n  onnx: {data: model.onnx}\n  python_function: {data: model.onnx}\n"
    source = _mlmodel(tmp_path / "mlflow", text)
    with pytest.raises(
        UnsupportedModelError,
        match=r"onnx flavor .* has no model file \(data: 'model.onnx' is missing\)",
    ):
        _store(MlflowRuntime(), source, tmp_path)
