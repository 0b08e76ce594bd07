"""ONNX models, run with onnxruntime on the CPU.

An ONNX file describes its own inputs and outputs, so the signature is read from the graph and a
model registered without sample data still has one. Classifiers converted by skl2onnx have two
outputs, the labels and the probabilities; the probabilities come either as a plain tensor or,
with skl2onnx's default ZipMap, as one ``{label: probability}`` dict per row. Both become a
``(rows, classes)`` array ordered by class label, as scikit-learn orders ``classes_``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from modelyard.core.signature import ColumnSpec, Schema, Signature, TensorSpec
from modelyard.core.tabular import Columns
from modelyard.errors import InvalidInputError, UnsupportedModelError
from modelyard.runtimes.base import LoadOptions, SavedModel, SaveOptions, to_matrix

__all__ = ["OnnxPredictor", "OnnxRuntime"]

_FILE = "model.onnx"

# onnxruntime reports types as "tensor(float)"; these are the names that differ from numpy's.
_ORT_DTYPES = {"float": "float32", "double": "float64", "float16": "float16", "string": "object"}


class OnnxPredictor:
    """An onnxruntime session: ``predict`` is the first output, ``predict_proba`` the second."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.inputs = [(i.name, _ort_dtype(i.type)) for i in session.get_inputs()]
        self.ranks = [len(i.shape) for i in session.get_inputs()]
        outputs = session.get_outputs()
        self.outputs = [o.name for o in outputs]
        if _is_classifier([o.type for o in outputs]):
            self.predict_proba = self._predict_proba

    def _feeds(self, data: Columns | np.ndarray) -> dict[str, np.ndarray]:
        if len(self.inputs) == 1:
            name, dtype = self.inputs[0]
            return {name: to_matrix(data, dtype)}
        if isinstance(data, np.ndarray):
            if data.ndim != 2 or data.shape[1] != len(self.inputs):
                raise InvalidInputError(
                    f"This ONNX model takes {len(self.inputs)} inputs "
                    f"{[n for n, _ in self.inputs]}. Got an array of shape {data.shape} instead.",
                    hint="Pass a table with one column per input.",
                )
            columns = [data[:, i] for i in range(data.shape[1])]
        elif all(name in data for name, _ in self.inputs):
            columns = [data[name] for name, _ in self.inputs]
        elif len(data) == len(self.inputs):
            # skl2onnx renames columns ("mean radius" -> "mean_radius") but keeps their order.
            columns = list(data.values())
        else:
            raise InvalidInputError(
                f"This ONNX model takes the inputs {[n for n, _ in self.inputs]}. "
                f"Got the columns {list(data)} instead."
            )
        feeds = {}
        for (name, dtype), rank, column in zip(self.inputs, self.ranks, columns, strict=True):
            array = np.asarray(column)
            if array.ndim == 1 and rank == 2:  # one value per row, given as an [N, 1] tensor
                array = array.reshape(-1, 1)
            feeds[name] = array.astype(dtype, copy=False)
        return feeds

    def predict(self, data: Columns | np.ndarray) -> np.ndarray:
        (labels,) = self.session.run(self.outputs[:1], self._feeds(data))
        return np.asarray(labels)

    def _predict_proba(self, data: Columns | np.ndarray) -> np.ndarray:
        (proba,) = self.session.run(self.outputs[1:2], self._feeds(data))
        if isinstance(proba, list):  # ZipMap: one {label: probability} dict per row
            labels = sorted(proba[0]) if proba else []
            return np.array([[row[k] for k in labels] for row in proba], dtype=np.float32)
        return np.asarray(proba)


class OnnxRuntime:
    """ONNX models (format id ``onnx``), from an ``onnx.ModelProto`` or a ``.onnx`` file."""

    format: ClassVar[str] = "onnx"
    priority: ClassVar[int] = 20

    def can_save(self, obj: object) -> bool:
        kind = type(obj)
        return kind.__name__ == "ModelProto" and kind.__module__.startswith("onnx")

    def can_save_path(self, path: Path) -> bool:
        return path.is_file() and path.suffix == ".onnx"

    def save(self, obj: object, directory: Path, options: SaveOptions) -> SavedModel:
        import onnx

        if not isinstance(obj, onnx.ModelProto):
            raise UnsupportedModelError(
                "The onnx runtime saves onnx.ModelProto objects. "
                f"Got {type(obj).__name__} instead.",
                hint="Pass the ModelProto (onnx.load('model.onnx')) or the path of the .onnx file.",
            )
        try:
            onnx.checker.check_model(obj)
        except onnx.checker.ValidationError as exc:
            raise UnsupportedModelError(
                f"The ONNX model is not valid: {exc}",
                hint="Check the converter that produced it (onnx.checker.check_model).",
            ) from None
        onnx.save_model(obj, str(directory / _FILE))
        return SavedModel(meta={"file": _FILE}, signature=graph_signature(obj))

    def save_path(self, path: Path, directory: Path, options: SaveOptions) -> SavedModel:
        import onnx
        from google.protobuf.message import DecodeError

        try:
            # Loads external tensor files next to ``path`` too; they are stored inline.
            model = onnx.load(str(path))
        except (DecodeError, OSError) as exc:
            raise UnsupportedModelError(
                f"{str(path)!r} is not a readable ONNX model ({exc}); the file may be truncated "
                "or not an ONNX file at all.",
                hint="Export the model again and register the complete .onnx file.",
            ) from None
        return self.save(model, directory, options)

    def load(self, directory: Path, meta: dict[str, Any], options: LoadOptions) -> OnnxPredictor:
        import onnxruntime as ort

        session_options = ort.SessionOptions()
        # One thread by default: the server runs several models and requests side by side.
        session_options.intra_op_num_threads = options.intra_op_threads or 1
        session = ort.InferenceSession(
            str(directory / meta.get("file", _FILE)),
            sess_options=session_options,
            providers=["CPUExecutionProvider"],
        )
        return OnnxPredictor(session)


def graph_signature(model: Any) -> Signature | None:
    """The signature an ONNX graph declares, or None when an input has no known rank.

    Several inputs that each take one value per row (shape ``[N, 1]``, as skl2onnx makes from
    a DataFrame) become table columns; anything else becomes tensors.
    """
    initializers = {t.name for t in model.graph.initializer}  # listed as inputs by old exporters
    inputs = [_tensor_spec(v) for v in model.graph.input if v.name not in initializers]
    if not inputs or any(spec is None for spec in inputs):
        return None
    specs = [s for s in inputs if s is not None]
    if len(specs) > 1 and all(s.shape in ((-1,), (-1, 1)) for s in specs):
        schema = Schema("columns", columns=tuple(ColumnSpec(s.name, s.dtype) for s in specs))
    else:
        schema = Schema("tensors", tensors=tuple(specs))
    outputs = [_tensor_spec(v) for v in model.graph.output]
    if any(spec is None for spec in outputs):
        return Signature(schema)
    return Signature(schema, Schema("tensors", tensors=tuple(s for s in outputs if s)))


def _tensor_spec(value: Any) -> TensorSpec | None:
    kind = value.type.WhichOneof("value")
    if kind == "tensor_type" and value.type.tensor_type.HasField("shape"):
        tensor = value.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
        return TensorSpec(value.name, _elem_dtype(tensor.elem_type), shape)
    if kind == "sequence_type":
        # A ZipMap (list of {label: probability}); the predictor turns it into a matrix.
        inner = value.type.sequence_type.elem_type
        if inner.WhichOneof("value") == "map_type":
            map_value = inner.map_type.value_type.tensor_type.elem_type
            return TensorSpec(value.name, _elem_dtype(map_value), (-1, -1))
    return None


def _elem_dtype(elem_type: int) -> str:
    from onnx import helper

    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
    return "string" if dtype.kind in "OUS" else dtype.name


def _ort_dtype(ort_type: str) -> Any:
    name = ort_type.removeprefix("tensor(").removesuffix(")")
    return np.dtype(_ORT_DTYPES.get(name, name))


def _is_classifier(output_types: list[str]) -> bool:
    """Labels (integers or text) followed by scores: the shape of every converted classifier."""
    if len(output_types) < 2:
        return False
    labels, scores = output_types[:2]
    is_labels = labels.startswith(("tensor(int", "tensor(string"))
    is_scores = scores.startswith("seq(map(") or scores in ("tensor(float)", "tensor(double)")
    return is_labels and is_scores
