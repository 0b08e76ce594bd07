"""Import of MLflow model folders (a directory with an ``MLmodel`` file).

The folder is stored in the safest format it allows, picked from its flavors in this order:

* ``sklearn`` -> the sklearn runtime (skops; a pickle only with ``trust_pickle``, then
  converted to skops);
* ``onnx`` -> the onnx runtime;
* ``python_function`` -> the folder is kept as is and loaded with ``mlflow.pyfunc.load_model``
  (format ``mlflow_pyfunc``, needs mlflow where the model is served). A cloudpickled
  ``PythonModel`` or any other pickle in the folder needs ``trust_pickle``.

The MLmodel signature, if any, becomes the version's signature in every case. Types skops must
trust beyond scikit-learn's own come from ``trusted_types`` at registration, never from the
MLmodel file: the folder's author does not decide what the registrant trusts.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from modelyard.core.signature import ColumnSpec, Schema, Signature, TensorSpec
from modelyard.core.tabular import Columns
from modelyard.errors import DependencyMissingError, UnsafeModelError, UnsupportedModelError
from modelyard.runtimes.base import LoadOptions, SavedModel, SaveOptions, to_frame

__all__ = ["MlflowPredictor", "MlflowRuntime", "mlflow_signature"]

_MLMODEL = "MLmodel"
_FOLDER = "mlflow_model"
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".pth")

# MLflow's column types and their signature dtypes; anything else has no equivalent here.
_COLUMN_TYPES = {
    "double": "float64",
    "float": "float32",
    "long": "int64",
    "integer": "int32",
    "boolean": "bool",
    "string": "string",
    "datetime": "datetime64[ns]",
}


class MlflowPredictor:
    """An MLflow pyfunc model; tables reach it as a pandas DataFrame."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, data: Columns | np.ndarray) -> np.ndarray:
        native = data if isinstance(data, np.ndarray) else to_frame(data)
        return np.asarray(self.model.predict(native))


class MlflowRuntime:
    """MLflow model folders (format id ``mlflow_pyfunc`` when no safer flavor is present)."""

    format: ClassVar[str] = "mlflow_pyfunc"
    priority: ClassVar[int] = 30

    def can_save(self, obj: object) -> bool:
        return False  # in-memory models go to their own runtimes; this one imports folders

    def can_save_path(self, path: Path) -> bool:
        return path.is_dir() and (path / _MLMODEL).is_file()

    def save(self, obj: object, directory: Path, options: SaveOptions) -> SavedModel:
        raise UnsupportedModelError(
            "The mlflow runtime imports MLflow model folders, not in-memory objects.",
            hint="Pass the path of a folder written by mlflow.<flavor>.save_model().",
        )

    def save_path(self, path: Path, directory: Path, options: SaveOptions) -> SavedModel:
        mlmodel = _read_mlmodel(path)
        flavors: dict[str, Any] = mlmodel.get("flavors") or {}
        signature = mlflow_signature(mlmodel.get("signature"))
        if "sklearn" in flavors:
            saved = _save_sklearn(path, flavors, directory, options)
        elif "onnx" in flavors:
            from modelyard.runtimes.onnx import OnnxRuntime

            file = _flavor_file(path, flavors, "onnx", "data")
            saved = OnnxRuntime().save_path(file, directory, options)
            saved = dataclasses.replace(saved, format="onnx")
        elif "python_function" in flavors:
            _refuse_pickles(path, flavors["python_function"], options)
            shutil.copytree(path, directory / _FOLDER)
            loader = flavors["python_function"].get("loader_module")
            saved = SavedModel(
                meta={"dir": _FOLDER, "flavors": sorted(flavors), "loader_module": loader},
                format=self.format,
            )
        else:
            raise UnsupportedModelError(
                f"The MLflow model at {str(path)!r} has the flavors {sorted(flavors)}; "
                "modelyard can import sklearn, onnx and python_function models.",
                hint="Save the model with one of those flavors, or register the underlying "
                "model object directly.",
            )
        return dataclasses.replace(saved, signature=signature or saved.signature)

    def load(self, directory: Path, meta: dict[str, Any], options: LoadOptions) -> MlflowPredictor:
        try:
            import mlflow.pyfunc
        except ImportError:
            raise DependencyMissingError(
                "mlflow", "mlflow", "Loading an MLflow pyfunc model"
            ) from None
        model = mlflow.pyfunc.load_model(str(directory / meta.get("dir", _FOLDER)))
        return MlflowPredictor(model)


def _read_mlmodel(path: Path) -> dict[str, Any]:
    import yaml

    try:
        doc = yaml.safe_load((path / _MLMODEL).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UnsupportedModelError(
            f"Cannot read the MLmodel file in {str(path)!r}: {exc}",
            hint="Check that the folder was written by mlflow.<flavor>.save_model().",
        ) from None
    if not isinstance(doc, dict):
        raise UnsupportedModelError(
            f"The MLmodel file in {str(path)!r} is not a YAML mapping.",
            hint="Check that the folder was written by mlflow.<flavor>.save_model().",
        )
    return doc


def _flavor_file(path: Path, flavors: dict[str, Any], flavor: str, key: str) -> Path:
    name = (flavors[flavor] or {}).get(key)
    if not name or not (path / name).is_file():
        raise UnsupportedModelError(
            f"The {flavor} flavor of the MLflow model at {str(path)!r} has no model file "
            f"({key}: {name!r} is missing).",
            hint="Save the model again with mlflow; the folder may be incomplete.",
        )
    return path / str(name)


def _save_sklearn(
    path: Path, flavors: dict[str, Any], directory: Path, options: SaveOptions
) -> SavedModel:
    from modelyard.runtimes.sklearn import SklearnRuntime

    file = _flavor_file(path, flavors, "sklearn", "pickled_model")
    serialization = flavors["sklearn"].get("serialization_format", "cloudpickle")
    if serialization != "skops" and not options.trust_pickle:
        raise UnsafeModelError(
            f"The MLflow model at {str(path)!r} stores its scikit-learn model with "
            f"{serialization}, which can execute arbitrary code when loaded, so modelyard "
            "refuses it by default.",
            hint="Save it again with mlflow.sklearn.save_model(..., serialization_format="
            "'skops'), or pass trust_pickle=True (CLI: --trust-pickle) if you trust its "
            "author; it is then stored as skops.",
        )
    # MLflow names the file model.skops or model.pkl; the sklearn runtime goes by the suffix
    # and converts a trusted pickle to skops.
    saved = SklearnRuntime().save_path(file, directory, options)
    return dataclasses.replace(saved, format="sklearn")


def _refuse_pickles(path: Path, flavor: dict[str, Any], options: SaveOptions) -> None:
    if options.trust_pickle:
        return
    pickles = sorted(
        str(f.relative_to(path)) for f in path.rglob("*") if f.suffix in _PICKLE_SUFFIXES
    )
    python_model = str(flavor.get("python_model") or "")
    if python_model.endswith(".pkl") and python_model not in pickles:
        pickles.insert(0, python_model)
    if pickles:
        raise UnsafeModelError(
            f"The MLflow model at {str(path)!r} contains pickled files {pickles} (a "
            "cloudpickled PythonModel, or artifacts); loading them can execute arbitrary code, "
            "so modelyard refuses them by default.",
            hint="Save the PythonModel from code (mlflow.pyfunc.save_model(python_model="
            "'model.py')) or register your class with modelyard's pyfunc runtime; pass "
            "trust_pickle=True (CLI: --trust-pickle) only if you trust the folder's author.",
        )


def mlflow_signature(spec: dict[str, Any] | None) -> Signature | None:
    """Convert an MLmodel ``signature`` section; None if absent or not expressible here.

    >>> mlflow_signature({"inputs": '[{"type": "double", "name": "x"}]'}).inputs.names
    ['x']
    """
    if not spec or not spec.get("inputs"):
        return None
    inputs = _schema(spec["inputs"], "input")
    if inputs is None:
        return None
    outputs = _schema(spec["outputs"], "output") if spec.get("outputs") else None
    return Signature(inputs, outputs)


def _schema(raw: str | list[dict[str, Any]], default_name: str) -> Schema | None:
    items = json.loads(raw) if isinstance(raw, str) else raw
    if not items:
        return None
    if all(item.get("type") == "tensor" for item in items):
        tensors = []
        for i, item in enumerate(items):
            tensor = item["tensor-spec"]
            dtype = np.dtype(tensor["dtype"])
            name = item.get("name") or (default_name if len(items) == 1 else f"{default_name}_{i}")
            tensors.append(
                TensorSpec(
                    str(name),
                    "string" if dtype.kind in "OUS" else dtype.name,
                    tuple(int(d) for d in tensor["shape"]),
                )
            )
        return Schema("tensors", tensors=tuple(tensors))
    columns = []
    for i, item in enumerate(items):
        dtype = _COLUMN_TYPES.get(str(item.get("type")))
        if dtype is None:  # arrays, objects, maps, binary: no column dtype says the same
            return None
        name = str(item.get("name", i))
        columns.append(ColumnSpec(name, dtype, nullable=not item.get("required", True)))
    return Schema("columns", columns=tuple(columns))
