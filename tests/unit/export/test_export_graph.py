"""Graph edits, pruning and quantization on small hand-built ONNX graphs, run in onnxruntime."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelyard.errors import InvalidInputError, UnsupportedModelError
from modelyard.export.onnx_export import (
    _column_order,
    _flatten_single_output,
    _free_batch_dimension,
    _gather_columns,
    _relabel,
    is_tree_ensemble,
)
from modelyard.export.quantize import prune_weights, quantize_model

RNG = np.random.default_rng(0)
W1 = RNG.normal(size=(4, 16)).astype(np.float32)
B1 = RNG.normal(size=16).astype(np.float32)
W2 = RNG.normal(size=(16, 3)).astype(np.float32)
B2 = RNG.normal(size=3).astype(np.float32)


def _model(nodes: list[Any], inputs: list[Any], outputs: list[Any],
           initializers: list[Any] | None = None, opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializers or [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def _mlp() -> onnx.ModelProto:
    """input [N, 4] -> MatMul -> Add -> Relu -> Gemm -> Softmax -> output [N, 3]."""
    return _model(
        [helper.make_node("MatMul", ["input", "w1"], ["h"]),
         helper.make_node("Add", ["h", "b1"], ["hb"]),
         helper.make_node("Relu", ["hb"], ["r"]),
         helper.make_node("Gemm", ["r", "w2", "b2"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["output"], axis=1)],
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(W1, "w1"), numpy_helper.from_array(B1, "b1"),
         numpy_helper.from_array(W2, "w2"), numpy_helper.from_array(B2, "b2")])


def _run(model: onnx.ModelProto, **feeds: np.ndarray) -> list[Any]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return list(session.run(None, feeds))


def _classifier(op: str, **attributes: Any) -> onnx.ModelProto:
    """A one-node ai.onnx.ml classifier over input [N, 4]: labels and probabilities."""
    graph = helper.make_graph(
        [helper.make_node(op, ["input"], ["label", "probabilities"], domain="ai.onnx.ml",
                          **attributes)],
        "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def _forest() -> onnx.ModelProto:
    """A stump: feature 0 <= 0 -> class 0, else class 1."""
    return _classifier(
        "TreeEnsembleClassifier", nodes_treeids=[0, 0, 0], nodes_nodeids=[0, 1, 2],
        nodes_featureids=[0, 0, 0], nodes_values=[0.0, 0.0, 0.0],
        nodes_modes=["BRANCH_LEQ", "LEAF", "LEAF"], nodes_truenodeids=[1, 0, 0],
        nodes_falsenodeids=[2, 0, 0], class_treeids=[0, 0], class_nodeids=[1, 2],
        class_ids=[0, 1], class_weights=[1.0, 1.0], classlabels_int64s=[0, 1])


def _linear() -> onnx.ModelProto:
    return _classifier("LinearClassifier", coefficients=[1.0, 0, 0, 0, -1.0, 0, 0, 0],
                       intercepts=[0.0, 0.0], classlabels_ints=[0, 1],
                       post_transform="SOFTMAX")


# -- pruning ------------------------------------------------------------------------------------
@pytest.mark.parametrize("ratio", [0.1, 0.3, 0.5, 0.9], ids=["10%", "30%", "50%", "90%"])
def test_prune_zeroes_the_smallest_weights_of_each_matrix(ratio: float) -> None:
    original = _mlp()
    pruned, zeroed, total = prune_weights(original, ratio)
    weights = {t.name: numpy_helper.to_array(t) for t in pruned.graph.initializer}
    for name, before in (("w1", W1), ("w2", W2)):
        after = weights[name]
        k = int(ratio * before.size)
        assert (after == 0).sum() == k
        kept = np.abs(before[after != 0])
        assert kept.min() >= np.abs(before[after == 0]).max()
        np.testing.assert_array_equal(after[after != 0], before[after != 0])
    np.testing.assert_array_equal(weights["b1"], B1)  # biases are not pruned
    np.testing.assert_array_equal(weights["b2"], B2)
    assert (zeroed, total) == (int(ratio * W1.size) + int(ratio * W2.size), W1.size + W2.size)
    # The original graph is untouched.
    np.testing.assert_array_equal(
        numpy_helper.to_array(next(t for t in original.graph.initializer if t.name == "w1")), W1)


@pytest.mark.parametrize(
    ("build", "ratio", "error", "message"),
    [
        (_mlp, 0.0, InvalidInputError, "between 0 and 1"),
        (_mlp, 1.0, InvalidInputError, "between 0 and 1"),
        (_forest, 0.3, UnsupportedModelError, "is a tree ensemble"),
        (_linear, 0.3, UnsupportedModelError, "no MatMul or Gemm weight matrices"),
    ],
    ids=["zero", "one", "tree-ensemble", "no-weights"],
)
def test_prune_refusals(build: Any, ratio: float, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        prune_weights(build(), ratio, source="models:/m/1")


# -- quantization -------------------------------------------------------------------------------
def test_dynamic_quantization_keeps_predictions_close() -> None:
    model = _mlp()
    quantized = quantize_model(model, "dynamic")
    ops = {n.op_type for n in quantized.graph.node}
    assert "DynamicQuantizeLinear" in ops
    x = RNG.normal(size=(64, 4)).astype(np.float32)
    (before,) = _run(model, input=x)
    (after,) = _run(quantized, input=x)
    np.testing.assert_allclose(after, before, atol=0.05)
    assert (after.argmax(1) == before.argmax(1)).mean() >= 0.9


def test_static_quantization_uses_the_calibration_feeds() -> None:
    x = RNG.normal(size=(128, 4)).astype(np.float32)
    quantized = quantize_model(_mlp(), "static", [{"input": x[i:i + 32]} for i in range(0, 128,
                                                                                          32)])
    ops = {n.op_type for n in quantized.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    (before,) = _run(_mlp(), input=x)
    (after,) = _run(quantized, input=x)
    assert (after.argmax(1) == before.argmax(1)).mean() >= 0.9


@pytest.mark.parametrize(
    ("build", "mode", "calibration", "error", "message"),
    [
        (_mlp, "fp16", None, InvalidInputError, "must be one of"),
        (_mlp, "static", None, InvalidInputError, "needs calibration data"),
        (_forest, "dynamic", None, UnsupportedModelError, "is a tree ensemble"),
        (_linear, "dynamic", None, UnsupportedModelError, "a graph without weight matrices"),
    ],
    ids=["unknown-mode", "static-without-data", "tree-ensemble", "linear-op"],
)
def test_quantize_refusals(build: Any, mode: str, calibration: Any, error: type[Exception],
                           message: str) -> None:
    with pytest.raises(error, match=message):
        quantize_model(build(), mode, calibration)


def test_tree_ensembles_are_recognised() -> None:
    _run(_forest(), input=np.zeros((2, 4), dtype=np.float32))  # a graph onnxruntime runs
    assert is_tree_ensemble(_forest())
    assert not is_tree_ensemble(_mlp())
    assert not is_tree_ensemble(_linear())


# -- graph edits that make converted graphs serve like their source ------------------------------
@pytest.mark.parametrize(
    ("columns", "features", "order"),
    [
        (["a", "b", "c"], ["a", "b", "c"], None),
        (["a", "b", "c"], ["c", "a", "b"], [2, 0, 1]),
        (["a", "b", "c"], ["f0", "f1", "f2"], None),
        (["a", "b", "c"], None, None),
    ],
    ids=["same-order", "reordered", "generated-names", "unnamed"],
)
def test_column_order(columns: list[str], features: list[str] | None,
                      order: list[int] | None) -> None:
    assert _column_order(columns, features) == order


def _identity(out_dims: list[Any], elem: int = TensorProto.FLOAT) -> onnx.ModelProto:
    return _model([helper.make_node("Identity", ["input"], ["output"])],
                  [helper.make_tensor_value_info("input", elem, ["N", 3])],
                  [helper.make_tensor_value_info("output", elem, out_dims)])


def test_gather_columns_feeds_the_model_its_feature_order() -> None:
    model = _identity(["N", 3])
    _gather_columns(model, [2, 0, 1])
    onnx.checker.check_model(model)
    x = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32)
    (out,) = _run(model, input=x)
    np.testing.assert_array_equal(out, x[:, [2, 0, 1]])
    assert [i.name for i in model.graph.input] == ["input"]


def test_relabel_maps_indices_back_to_classes() -> None:
    model = _model(
        [helper.make_node("ArgMax", ["input"], ["label"], axis=1, keepdims=0),
         helper.make_node("Identity", ["input"], ["probabilities"])],
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])])
    _relabel(model, np.array(["cat", "dog", "emu"], dtype=object))
    onnx.checker.check_model(model)
    labels, proba = _run(model, input=np.array([[0.1, 0.7, 0.2], [0.9, 0.05, 0.05]],
                                               dtype=np.float32))
    assert labels.tolist() == ["dog", "cat"]
    assert proba.shape == (2, 3)


def test_relabel_with_integer_classes() -> None:
    model = _model(
        [helper.make_node("ArgMax", ["input"], ["label"], axis=1, keepdims=0),
         helper.make_node("Identity", ["input"], ["probabilities"])],
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])])
    _relabel(model, np.array([3, 7]))
    labels, _ = _run(model, input=np.array([[0.1, 0.9], [0.8, 0.2]], dtype=np.float32))
    assert labels.tolist() == [7, 3]


@pytest.mark.parametrize(
    ("dims", "shape"),
    [(["N", 1], (5,)), (["N", 3], (5, 3)), (["N"], (5,))],
    ids=["column", "matrix", "already-flat"],
)
def test_flatten_single_output(dims: list[Any], shape: tuple[int, ...]) -> None:
    width = dims[1] if len(dims) == 2 else 1
    model = _model([helper.make_node("Identity", ["input"], ["output"])],
                   [helper.make_tensor_value_info("input", TensorProto.FLOAT, dims)],
                   [helper.make_tensor_value_info("output", TensorProto.FLOAT, dims)])
    _flatten_single_output(model)
    onnx.checker.check_model(model)
    x = np.ones((5, width) if len(dims) == 2 else (5,), dtype=np.float32)
    (out,) = _run(model, input=x)
    assert out.shape == shape


def test_flatten_adds_the_default_domain_when_a_converter_left_it_out() -> None:
    graph = helper.make_graph(
        [helper.make_node("Normalizer", ["input"], ["output"], domain="ai.onnx.ml",
                          norm="MAX")],
        "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 9
    _flatten_single_output(model)
    onnx.checker.check_model(model)
    (out,) = _run(model, input=np.full((4, 1), 2.0, dtype=np.float32))
    assert out.shape == (4,)


def test_free_batch_dimension() -> None:
    model = _identity([1, 3])
    _free_batch_dimension(model)
    dims = model.graph.output[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N"
    assert dims[1].dim_value == 3
