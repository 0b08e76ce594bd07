"""Convert a registered model to ONNX, check it against the original, and register it.

scikit-learn goes through skl2onnx, PyTorch through ``torch.onnx.export``, XGBoost and LightGBM
through onnxmltools. The graph is shaped so that modelyard's own onnx runtime
(:mod:`modelyard.runtimes.onnx`) serves it with the *source version's signature*, unchanged:

* Numeric tables become one float32 tensor ``input`` of shape ``[N, columns]``, stacked in
  signature order (what the runtime feeds a single-input graph); when the model orders its
  features differently, a ``Gather`` at the top of the graph reorders them. Tables with text
  columns become one ``[N, 1]`` input per column, named after it.
* Classifiers answer ``label`` then ``probabilities`` (no ZipMap), so the runtime exposes
  ``predict`` and ``predict_proba`` like the original; labels are mapped back to the original
  classes where a converter numbers them ``0..k-1``.
* A regressor's ``[N, 1]`` output is flattened to ``[N]``, as the original returns it.

Every export is compared with the original on the version's reference sample
(:mod:`modelyard.export.equivalence`) and refused beyond the tolerance; quantization and
pruning (:mod:`modelyard.export.quantize`) are checked and reported the same way. This module
never touches the registry itself: the caller passes the loaded :class:`Model`, the sample and
a ``register`` callable (``Client.register``).
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from modelyard.core.entities import ModelVersion
from modelyard.core.signature import Signature
from modelyard.core.tabular import Columns, as_columns, is_table
from modelyard.errors import InvalidInputError, UnsupportedModelError
from modelyard.export.equivalence import (
    EquivalenceReport,
    compare,
    require_agreement,
    require_equivalent,
)
from modelyard.runtimes.base import LoadOptions, Predictor, import_framework, to_matrix
from modelyard.runtimes.model import Model

if TYPE_CHECKING:
    import onnx

    from modelyard.export.quantize import OptimizationReport

__all__ = [
    "SUPPORTED_FORMATS",
    "OnnxExport",
    "RegisterVersion",
    "checked_onnx",
    "export_onnx",
    "load_onnx",
    "prepare_sample",
    "to_onnx",
]

SUPPORTED_FORMATS = ("sklearn", "torch", "xgboost", "lightgbm")
"""Source formats :func:`to_onnx` converts."""

_INPUT = "input"
_DEFAULT_OPSET = 15  # for the standard operators added to converted graphs
_TRACE_ROWS = 16  # rows torch.onnx traces with; the batch dimension stays free
_TREE_OPS = frozenset({"TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble"})


class RegisterVersion(Protocol):
    """What :func:`export_onnx` needs to register the export: ``Client.register`` fits."""

    def __call__(self, model: Any, name: str, *, data: Any = ...,
                 metrics: Mapping[str, float] | None = ..., params: Mapping[str, Any] | None = ...,
                 tags: Mapping[str, str] | None = ..., description: str = ...,
                 parent: int | None = ..., signature: Signature | None = ...,
                 format: str | None = ...) -> ModelVersion: ...


@dataclass(frozen=True, slots=True)
class OnnxExport:
    """What :func:`export_onnx` did: the new version and the checks it passed."""

    version: ModelVersion
    equivalence: EquivalenceReport
    """The float export against the original, on the reference sample."""

    optimization: OptimizationReport | None = None
    """Before/after figures when ``quantize`` or ``prune`` was asked for."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version.to_dict(),
            "equivalence": self.equivalence.to_dict(),
            "optimization": self.optimization.to_dict() if self.optimization else None,
        }


# -- the whole flow --------------------------------------------------------------------------
def export_onnx(
    model: Model,
    sample: Any,
    register: RegisterVersion,
    *,
    quantize: str | None = None,
    prune: float | None = None,
    tolerance: float = 1e-4,
    min_agreement: float = 0.99,
    max_rows: int = 10_000,
    latency_runs: int = 200,
    description: str = "",
) -> OnnxExport:
    """Convert ``model`` to ONNX, check it on ``sample`` and register it as a new version.

    ``sample`` is the source version's reference sample (``Client.get_reference_sample``) or
    any table of model inputs. The float conversion must reproduce the original within
    ``tolerance`` (see :func:`~modelyard.export.equivalence.compare`); with ``prune`` (share of
    the smallest weights to zero) and/or ``quantize`` (``"dynamic"`` or ``"static"``) the
    optimized model must also agree with the original on at least ``min_agreement`` of the rows.
    The new version has format ``onnx``, the source's signature and its lineage parent set to
    the source version.

    >>> from modelyard import Client                                         # doctest: +SKIP
    >>> client = Client()                                                    # doctest: +SKIP
    >>> ref = "models:/fraud/3"                                              # doctest: +SKIP
    >>> done = export_onnx(client.load(ref), client.get_reference_sample(ref),
    ...                    client.register, quantize="dynamic")             # doctest: +SKIP
    >>> done.version.format                                                  # doctest: +SKIP
    'onnx'
    """
    from modelyard.export import quantize as optimize

    if not 0 < min_agreement <= 1:
        raise InvalidInputError(
            f"The minimum agreement must be in (0, 1]. Got {min_agreement} instead.",
            hint="0.99 means the optimized model may change at most 1% of predictions.")
    source = model.version
    proto, equivalence, prepared = checked_onnx(model, sample, tolerance=tolerance,
                                                max_rows=max_rows)

    report: OptimizationReport | None = None
    final = proto
    if quantize is not None or prune is not None:
        final, report = optimize.optimize(
            proto, prepared, original=model.predictor, quantize=quantize, prune=prune,
            latency_runs=latency_runs, before=equivalence, source=source.uri)
        require_agreement(report.after_equivalence, source.uri, min_agreement)

    params: dict[str, Any] = {"exported_from": source.uri, "source_format": source.format,
                              "tolerance": tolerance}
    tags = {"exported_from": source.uri}
    if quantize is not None:
        params["quantize"] = quantize
        tags["quantized"] = quantize
    if prune is not None:
        params["prune"] = prune
        tags["pruned"] = str(prune)
    metrics: dict[str, float] = {}
    if math.isfinite(equivalence.max_abs_diff):  # NaN for text labels without probabilities
        metrics["export_max_abs_diff"] = equivalence.max_abs_diff
    if equivalence.label_agreement is not None:
        metrics["export_label_agreement"] = equivalence.label_agreement
    if report is not None:
        metrics["export_agreement"] = report.after_equivalence.agreement
    version = register(
        final, source.name, data=sample, signature=model.signature, parent=source.version,
        format="onnx", params=params, metrics=metrics, tags=tags,
        description=description or f"ONNX export of {source.uri}",
    )
    return OnnxExport(version, equivalence, report)


def checked_onnx(model: Model, sample: Any, *, tolerance: float = 1e-4, max_rows: int = 10_000,
                 ) -> tuple[onnx.ModelProto, EquivalenceReport, Columns | np.ndarray]:
    """Convert ``model`` and check the graph against it on ``sample`` (refused beyond
    ``tolerance``); returns the graph, the comparison and the prepared sample rows."""
    if not 0 < tolerance < 1:
        raise InvalidInputError(f"The tolerance must be between 0 and 1. Got {tolerance} instead.",
                                hint="The default, 1e-4, suits float32 conversions.")
    prepared = prepare_sample(model, sample, max_rows=max_rows)
    proto = to_onnx(model, prepared)
    equivalence = compare(model.predictor, load_onnx(proto), prepared, tolerance=tolerance)
    require_equivalent(equivalence, model.version.uri)
    return proto, equivalence, prepared


def prepare_sample(model: Model, sample: Any, *, max_rows: int = 10_000) -> Columns | np.ndarray:
    """The first ``max_rows`` rows of ``sample``, checked against the model's signature and in
    the form its predictor (and a server) receives."""
    if sample is None:
        raise InvalidInputError(
            f"{model.version.uri} has no reference sample to check the export against.",
            hint="Register the version with data=..., or pass a table of inputs (CLI: --data).")
    if max_rows < 1:
        raise InvalidInputError(f"max_rows must be at least 1. Got {max_rows} instead.")
    if is_table(sample):
        head: Any = {k: v[:max_rows] for k, v in as_columns(sample).items()}
    else:
        head = np.asarray(sample)[:max_rows]
    prepared: Columns | np.ndarray = model.prepare(head)
    rows = len(prepared) if isinstance(prepared, np.ndarray) else len(next(iter(
        prepared.values()), ()))
    if rows == 0:
        raise InvalidInputError(f"The sample for {model.version.uri} has no rows.",
                                hint="Pass a table with at least one row of inputs.")
    return prepared


def load_onnx(model: onnx.ModelProto | bytes) -> Predictor:
    """An onnxruntime predictor exactly as ``modelyard serve`` would load ``model``."""
    from modelyard.runtimes.onnx import OnnxRuntime

    data = model if isinstance(model, bytes) else model.SerializeToString()
    with tempfile.TemporaryDirectory(prefix="modelyard-export-") as tmp:
        (Path(tmp) / "model.onnx").write_bytes(data)
        # The session holds the graph in memory; the file may go.
        return OnnxRuntime().load(Path(tmp), {"file": "model.onnx"}, LoadOptions())


# -- conversion ------------------------------------------------------------------------------
def to_onnx(model: Model, sample: Columns | np.ndarray | None = None) -> onnx.ModelProto:
    """Convert a loaded model to an ONNX graph that modelyard's onnx runtime serves with the
    model's own signature. ``sample`` (prepared input) is needed for PyTorch, which traces.

    Raises :class:`UnsupportedModelError` for other formats and for models a converter cannot
    handle, with the converter's reason.
    """
    fmt = model.version.format
    if fmt == "onnx":
        raise UnsupportedModelError(
            f"{model.version.uri} is already an ONNX model.",
            hint="To quantize or prune it, export its parent version again with --quantize "
            "or --prune; 'modelyard export bundle' takes ONNX versions as they are.")
    if fmt not in SUPPORTED_FORMATS:
        raise UnsupportedModelError(
            f"Models of format {fmt!r} cannot be exported to ONNX; the supported formats are "
            f"{list(SUPPORTED_FORMATS)}.",
            hint="Register the model from its framework object (scikit-learn, PyTorch, "
            "XGBoost or LightGBM) to export it.")
    predictor: Any = model.predictor
    signature = model.signature
    with _converter_errors(model.version.uri, fmt):
        if fmt == "sklearn":
            proto = _from_sklearn(predictor, signature)
        elif fmt == "torch":
            proto = _from_torch(predictor, model.version.uri, sample)
        elif fmt == "xgboost":
            proto = _from_xgboost(predictor, signature, model.version)
        else:
            proto = _from_lightgbm(predictor, signature, model.version)
    _free_batch_dimension(proto)
    import onnx

    onnx.checker.check_model(proto)
    return proto


@contextlib.contextmanager
def _converter_errors(uri: str, fmt: str) -> Iterator[None]:
    try:
        yield
    except (UnsupportedModelError, InvalidInputError):
        raise
    except ImportError as exc:
        raise UnsupportedModelError(
            f"Exporting {fmt} models to ONNX needs a package that is not installed: {exc}.",
            hint="Install it with: pip install 'modelyard[export]'.") from exc
    except Exception as exc:
        raise UnsupportedModelError(
            f"The {fmt} to ONNX converter could not convert {uri}: "
            f"{type(exc).__name__}: {exc}",
            hint="The converter does not support every estimator or layer; check its list of "
            "supported models, or register an ONNX file you exported yourself.") from exc


def _from_sklearn(predictor: Any, signature: Signature | None) -> onnx.ModelProto:
    import_framework("skl2onnx", "export", "Exporting scikit-learn models to ONNX")
    from skl2onnx import convert_sklearn

    estimator = predictor.estimator
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    options = {id(final): {"zipmap": False}} if hasattr(final, "predict_proba") else None
    initial, order = _sklearn_inputs(signature, predictor.feature_names, estimator)
    proto: onnx.ModelProto = convert_sklearn(estimator, initial_types=initial, options=options)
    if order is not None:
        _gather_columns(proto, order)
    _flatten_single_output(proto)
    return proto


def _sklearn_inputs(signature: Signature | None, feature_names: list[str] | None,
                    estimator: Any) -> tuple[list[tuple[str, Any]], list[int] | None]:
    from skl2onnx.common.data_types import (
        BooleanTensorType,
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
    )

    if signature is None:
        n = getattr(estimator, "n_features_in_", None)
        if n is None:
            raise UnsupportedModelError(
                "The model has no signature and does not say how many features it takes.",
                hint="Register it with data= so that its inputs are known.")
        return [(_INPUT, FloatTensorType([None, int(n)]))], None
    schema = signature.inputs
    if schema.kind == "tensors":
        if len(schema.tensors) != 1 or len(schema.tensors[0].shape) != 2:
            raise UnsupportedModelError(
                "scikit-learn models are exported from one 2-D input; this signature has "
                f"{[t.to_dict() for t in schema.tensors]}.")
        return [(_INPUT, FloatTensorType([None, schema.tensors[0].shape[1]]))], None
    dtypes = [c.dtype for c in schema.columns]
    if all(_is_numeric(d) for d in dtypes):
        return ([(_INPUT, FloatTensorType([None, len(dtypes)]))],
                _column_order(schema.names, feature_names))
    kinds = {"string": StringTensorType, "bool": BooleanTensorType}
    initial = []
    for column in schema.columns:
        kind = kinds.get(column.dtype) or (
            FloatTensorType if np.dtype(column.dtype).kind == "f" else Int64TensorType)
        initial.append((column.name, kind([None, 1])))
    return initial, None


def _from_torch(predictor: Any, uri: str, sample: Columns | np.ndarray | None) -> onnx.ModelProto:
    torch = import_framework("torch", "torch", "Exporting PyTorch models to ONNX")
    if predictor.batch_size is not None:
        raise UnsupportedModelError(
            f"{uri} was exported with a fixed batch size of {predictor.batch_size}, so its ONNX "
            "graph could not take other batch sizes.",
            hint="Register the nn.Module itself (modelyard exports it with a free batch "
            "dimension), then export that version.")
    if sample is None:
        raise InvalidInputError(
            f"Exporting {uri} to ONNX traces the network, which needs sample input.",
            hint="Pass the reference sample (or any model input).")
    example = to_matrix(sample, predictor.numpy_dtype)[:_TRACE_ROWS]
    if len(example) == 1:  # a batch of one would be traced as a constant batch size
        example = np.concatenate([example, example])
    # A writable copy: torch warns on read-only arrays (views of Arrow buffers).
    x = torch.from_numpy(np.array(example, copy=True)).to(predictor.input_dtype)
    # A TorchScript module exports as it is; an exported program's module cannot switch to
    # eval mode (the exporter asks), so it is wrapped in a module that declines to.
    module = predictor.module
    if hasattr(module, "graph") and hasattr(module, "save"):
        # The exporter rewrites a ScriptModule's graph in place: export a copy, so that the
        # loaded model still runs (under inference_mode) for the check.
        network = _script_copy(torch, module)
    else:
        network = _eval_only(torch, module)
    output = "probabilities" if predictor.proba else "variable"
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated in favour of the dynamo one, which
        # needs onnxscript; it traces this fixed network exactly, which the check verifies.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # ScriptModules carry no Python signature; the exporter says so, then copes.
        warnings.filterwarnings("ignore", "no signature found", UserWarning)
        torch.onnx.export(
            network, (x,), buffer, dynamo=False, input_names=[_INPUT], output_names=[output],
            dynamic_axes={_INPUT: {0: "N"}, output: {0: "N"}})
    import onnx

    proto = onnx.load_model_from_string(buffer.getvalue())
    if predictor.proba:
        _add_argmax_label(proto)  # modelyard's torch runtime predicts the argmax class
    else:
        _flatten_single_output(proto)  # ... and one value per row for a [N, 1] output
    return proto


def _script_copy(torch: Any, module: Any) -> Any:
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    buffer.seek(0)
    return torch.jit.load(buffer, map_location="cpu")


def _eval_only(torch: Any, module: Any) -> Any:
    """``module`` inside an ``nn.Module`` whose ``train()`` does nothing."""

    class EvalOnly(torch.nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def train(self, mode: bool = True) -> Any:
            return self

        def forward(self, x: Any) -> Any:
            return self.inner(x)

    return EvalOnly()


def _from_xgboost(predictor: Any, signature: Signature | None,
                  version: ModelVersion) -> onnx.ModelProto:
    xgb = import_framework("xgboost", "xgboost", "Exporting XGBoost models")
    import_framework("onnxmltools", "export", "Exporting XGBoost models to ONNX")
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    source = predictor.model
    booster = source if predictor.is_booster else source.get_booster()
    objective = str(version.runtime_meta.get("objective", ""))
    if predictor.is_booster and objective.startswith(("binary:", "multi:")):
        raise UnsupportedModelError(
            f"{version.uri} is a raw XGBoost Booster with the classification objective "
            f"{objective!r}: it predicts probabilities, while its ONNX graph would predict "
            "labels.",
            hint="Register the XGBClassifier itself (not its Booster), then export that version.")
    # onnxmltools reads the trees' text dump, which must name features f0, f1...: convert a
    # copy without names (the runtime feeds columns in signature order anyway).
    copy = xgb.Booster()
    copy.load_model(bytearray(booster.save_raw(raw_format="ubj")))
    names = list(booster.feature_names) if booster.feature_names else None
    copy.feature_names = None
    copy.feature_types = None
    n = int(booster.num_features())
    initial = [(_INPUT, FloatTensorType([None, n]))]
    proto: onnx.ModelProto = convert_xgboost(copy, initial_types=initial)
    _finish_tree_model(proto, signature, names, predictor.model, n)
    return proto


def _from_lightgbm(predictor: Any, signature: Signature | None,
                   version: ModelVersion) -> onnx.ModelProto:
    import_framework("lightgbm", "lightgbm", "Exporting LightGBM models")
    import_framework("onnxmltools", "export", "Exporting LightGBM models to ONNX")
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    booster = predictor.booster
    objective = str(version.runtime_meta.get("objective", ""))
    if predictor.classes is None and objective in ("binary", "multiclass", "multiclassova"):
        raise UnsupportedModelError(
            f"{version.uri} is a raw LightGBM Booster with the objective {objective!r}: it "
            "predicts probabilities, while its ONNX graph would predict labels.",
            hint="Register the LGBMClassifier itself (not its Booster), then export that "
            "version.")
    n = int(booster.num_feature())
    initial = [(_INPUT, FloatTensorType([None, n]))]
    proto: onnx.ModelProto = convert_lightgbm(booster, initial_types=initial, zipmap=False)
    names = [str(f) for f in booster.feature_name()]
    _finish_tree_model(proto, signature, names, None, n,
                       classes=predictor.classes, rename=lambda c: c.replace(" ", "_"))
    return proto


def _finish_tree_model(proto: onnx.ModelProto, signature: Signature | None,
                       feature_names: list[str] | None, wrapper: Any, n_features: int, *,
                       classes: Any = None, rename: Any = None) -> None:
    if signature is not None and signature.inputs.kind == "columns":
        columns = signature.inputs.names
        if len(columns) != n_features:
            raise UnsupportedModelError(
                f"The model takes {n_features} features but its signature has {len(columns)} "
                "columns.", hint="Register the model with exactly its input features as data=.")
        if rename is not None:
            columns = [rename(c) for c in columns]
        order = _column_order(columns, feature_names)
        if order is not None:
            _gather_columns(proto, order)
    if classes is None and wrapper is not None:
        classes = getattr(wrapper, "classes_", None)
    if classes is not None and len(proto.graph.output) >= 2:
        values = np.asarray(classes)
        if not np.array_equal(values, np.arange(len(values))):
            _relabel(proto, values)
    _flatten_single_output(proto)


# -- graph surgery ---------------------------------------------------------------------------
def _is_numeric(dtype: str) -> bool:
    return dtype != "string" and not dtype.startswith("datetime") and np.dtype(
        dtype).kind in "biuf"


def _column_order(columns: Sequence[str], feature_names: Sequence[str] | None) -> list[int] | None:
    """Positions of the model's features among the signature's columns, when they are the same
    names in another order; None when the order already matches (or nothing is named)."""
    if not feature_names or list(columns) == list(feature_names):
        return None
    if sorted(columns) != sorted(feature_names):
        return None  # generated names (f0, Column_0...): signature order is the model's order
    position = {name: i for i, name in enumerate(columns)}
    return [position[name] for name in feature_names]


def _gather_columns(proto: onnx.ModelProto, order: list[int]) -> None:
    """Feed the graph's first input with columns picked (in ``order``) from a new input of
    the same name: the caller's signature order becomes the model's feature order."""
    from onnx import TensorProto, helper, numpy_helper

    _ensure_default_opset(proto)
    graph = proto.graph
    original = graph.input[0]
    inner = f"{original.name}_in_model_order"
    for node in graph.node:
        node.input[:] = [inner if name == original.name else name for name in node.input]
    indices = numpy_helper.from_array(np.asarray(order, dtype=np.int64), f"{inner}_indices")
    graph.initializer.append(indices)
    graph.node.insert(0, helper.make_node("Gather", [original.name, indices.name], [inner],
                                          axis=1, name=f"{inner}_gather"))
    dims = [d.dim_value if d.HasField("dim_value") else None
            for d in original.type.tensor_type.shape.dim]
    elem = original.type.tensor_type.elem_type or TensorProto.FLOAT
    graph.input[0].CopyFrom(helper.make_tensor_value_info(original.name, elem, dims))


def _relabel(proto: onnx.ModelProto, classes: np.ndarray) -> None:
    """Map the label output ``0..k-1`` back to the original classes."""
    from onnx import TensorProto, helper, numpy_helper

    _ensure_default_opset(proto)
    graph = proto.graph
    label = graph.output[0]
    raw = f"{label.name}_index"
    _rename_output(graph, label.name, raw)
    if classes.dtype.kind in "OUS":
        table = numpy_helper.from_array(np.array([str(c) for c in classes], dtype=object),
                                        f"{label.name}_classes")
        elem = TensorProto.STRING
    else:
        table = numpy_helper.from_array(classes.astype(np.int64), f"{label.name}_classes")
        elem = TensorProto.INT64
    graph.initializer.append(table)
    graph.node.append(helper.make_node("Gather", [table.name, raw], [label.name], axis=0,
                                       name=f"{label.name}_relabel"))
    graph.output[0].CopyFrom(helper.make_tensor_value_info(label.name, elem, ["N"]))


def _flatten_single_output(proto: onnx.ModelProto) -> None:
    """A regressor's ``[N, 1]`` output becomes ``[N]``, as the original model returns it."""
    from onnx import helper, numpy_helper

    graph = proto.graph
    if len(graph.output) != 1:
        return
    out = graph.output[0]
    dims = out.type.tensor_type.shape.dim
    if len(dims) != 2 or dims[1].dim_value != 1:
        return
    _ensure_default_opset(proto)
    raw = f"{out.name}_column"
    _rename_output(graph, out.name, raw)
    shape = numpy_helper.from_array(np.asarray([-1], dtype=np.int64), f"{out.name}_shape")
    graph.initializer.append(shape)
    graph.node.append(helper.make_node("Reshape", [raw, shape.name], [out.name],
                                       name=f"{out.name}_flatten"))
    elem = out.type.tensor_type.elem_type
    graph.output[0].CopyFrom(helper.make_tensor_value_info(out.name, elem, ["N"]))


def _add_argmax_label(proto: onnx.ModelProto) -> None:
    """Outputs ``(label, probabilities)`` from a graph that outputs probabilities only: the
    label is the most probable class index, as modelyard's torch runtime predicts it."""
    from onnx import TensorProto, helper

    _ensure_default_opset(proto)
    graph = proto.graph
    scores = graph.output[0]
    graph.node.append(helper.make_node("ArgMax", [scores.name], ["label"], axis=1, keepdims=0,
                                       name="label_argmax"))
    label = helper.make_tensor_value_info("label", TensorProto.INT64, ["N"])
    outputs = [label, *graph.output]
    del graph.output[:]
    graph.output.extend(outputs)


def _ensure_default_opset(proto: onnx.ModelProto) -> None:
    """Tree converters may import only the ``ai.onnx.ml`` domain; the nodes added here
    (Gather, Reshape) are standard operators and need the default domain too."""
    from onnx import helper

    if not any(op.domain in ("", "ai.onnx") for op in proto.opset_import):
        proto.opset_import.append(helper.make_opsetid("", _DEFAULT_OPSET))


def _rename_output(graph: Any, old: str, new: str) -> None:
    for node in graph.node:
        node.output[:] = [new if name == old else name for name in node.output]
        node.input[:] = [new if name == old else name for name in node.input]


def _free_batch_dimension(proto: onnx.ModelProto) -> None:
    """Declare the first dimension of every output free: some converters write a literal 1
    there, and onnxruntime then logs a shape warning on every call."""
    for value in proto.graph.output:
        if not value.type.HasField("tensor_type"):
            continue
        dims = value.type.tensor_type.shape.dim
        if dims and (dims[0].HasField("dim_value") or not dims[0].dim_param):
            dims[0].dim_param = "N"


def graph_ops(proto: onnx.ModelProto) -> set[str]:
    """The operator types a graph uses."""
    return {node.op_type for node in proto.graph.node}


def is_tree_ensemble(proto: onnx.ModelProto) -> bool:
    """True when the graph scores with tree ensemble operators (forests, boosted trees)."""
    return bool(graph_ops(proto) & _TREE_OPS)
