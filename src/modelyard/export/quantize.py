"""Make an ONNX export smaller and faster for the edge, and report what it cost.

* **Pruning** (``prune=0.3``) zeroes the 30% smallest-magnitude weights of every MatMul/Gemm
  weight matrix, layer by layer. The file keeps its size, but zeros compress: the bundle or
  image that carries it shrinks. Tree ensembles have split thresholds, not weights, and are
  refused.
* **Dynamic quantization** stores MatMul/Gemm weights as int8 and quantizes activations on
  the fly; no data needed.
* **Static quantization** also fixes the activations' ranges, calibrated on the reference
  sample (QDQ format).

Both run onnxruntime's recommended pre-processing (shape inference, graph optimization) first.
:func:`optimize` returns the new graph and a before/after report: file size (and compressed
size), median single-row latency over N onnxruntime calls, and agreement with the original
model on the reference sample.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelyard.core.tabular import Columns
from modelyard.errors import InvalidInputError, UnsupportedModelError
from modelyard.export.equivalence import EquivalenceReport, compare
from modelyard.runtimes.base import Predictor

if TYPE_CHECKING:
    import onnx

__all__ = [
    "QUANTIZE_MODES",
    "ModelStats",
    "OptimizationReport",
    "measure",
    "optimize",
    "prune_weights",
    "quantize_model",
]

QUANTIZE_MODES = ("dynamic", "static")

_WEIGHT_OPS = frozenset({"MatMul", "Gemm"})
_QUANTIZABLE_OPS = frozenset({"MatMul", "Gemm", "Conv"})
_TREE_OPS = frozenset({"TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble"})
_CALIBRATION_ROWS = 1024
_CALIBRATION_BATCH = 64
_AGREEMENT_TOLERANCE = 1e-4  # only labels and the 1% closeness count for optimized models


@dataclass(frozen=True, slots=True)
class ModelStats:
    """One model's figures in a report."""

    size_bytes: int
    compressed_bytes: int
    """Size after zlib (level 6): what a zip bundle or an image layer carries."""

    latency_ms: float
    """Median wall time of one single-row onnxruntime call."""

    agreement: float
    """Share of reference rows predicted like the original (labels, or within 1%)."""

    max_abs_diff: float
    """Largest absolute difference from the original's probabilities or predictions."""


@dataclass(frozen=True, slots=True)
class OptimizationReport:
    """Before (the float export) and after (pruned and/or quantized)."""

    steps: tuple[str, ...]
    before: ModelStats
    after: ModelStats
    after_equivalence: EquivalenceReport
    rows: int
    latency_runs: int
    pruned_weights: int = 0
    total_weights: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": list(self.steps),
            "before": asdict(self.before),
            "after": asdict(self.after),
            "rows": self.rows,
            "latency_runs": self.latency_runs,
            "pruned_weights": self.pruned_weights,
            "total_weights": self.total_weights,
        }

    def lines(self) -> list[tuple[str, str, str]]:
        """(measure, before, after) rows for a table."""
        b, a = self.before, self.after
        return [
            ("size", _size(b.size_bytes), _size(a.size_bytes)),
            ("size compressed", _size(b.compressed_bytes), _size(a.compressed_bytes)),
            (f"latency, 1 row (median of {self.latency_runs})", f"{b.latency_ms:.3f} ms",
             f"{a.latency_ms:.3f} ms"),
            (f"agreement with original ({self.rows} rows)", f"{b.agreement:.2%}",
             f"{a.agreement:.2%}"),
            ("max abs difference", f"{b.max_abs_diff:.3g}", f"{a.max_abs_diff:.3g}"),
        ]


def optimize(proto: onnx.ModelProto, data: Columns | np.ndarray, *, original: Predictor,
             quantize: str | None = None, prune: float | None = None,
             latency_runs: int = 200, before: EquivalenceReport | None = None,
             source: str = "the model") -> tuple[onnx.ModelProto, OptimizationReport]:
    """Prune and/or quantize ``proto``; compare both versions with ``original`` on ``data``.

    >>> new, report = optimize(proto, prepared, original=model.predictor,
    ...                        quantize="dynamic")                           # doctest: +SKIP
    >>> report.after.size_bytes < report.before.size_bytes                    # doctest: +SKIP
    True
    """
    from modelyard.export.onnx_export import load_onnx

    if quantize is None and prune is None:
        raise InvalidInputError("Nothing to optimize: pass quantize= and/or prune=.")
    if latency_runs < 1:
        raise InvalidInputError(f"latency_runs must be at least 1. Got {latency_runs} instead.")
    float_predictor = load_onnx(proto)
    if before is None:
        before = compare(original, float_predictor, data, tolerance=_AGREEMENT_TOLERANCE)
    steps: list[str] = []
    pruned = total = 0
    result = proto
    if prune is not None:
        result, pruned, total = prune_weights(result, prune, source=source)
        steps.append(f"prune {prune:.0%}")
    if quantize is not None:
        calibration = (_calibration_feeds(float_predictor, data) if quantize == "static"
                       else None)
        result = quantize_model(result, quantize, calibration, source=source)
        steps.append(f"quantize {quantize}")
    optimized = load_onnx(result)
    after = compare(original, optimized, data, tolerance=_AGREEMENT_TOLERANCE)
    one_row = _rows(data, slice(0, 1))
    report = OptimizationReport(
        steps=tuple(steps),
        before=measure(proto, float_predictor, one_row, before, latency_runs),
        after=measure(result, optimized, one_row, after, latency_runs),
        after_equivalence=after, rows=before.rows, latency_runs=latency_runs,
        pruned_weights=pruned, total_weights=total)
    return result, report


def measure(proto: onnx.ModelProto, predictor: Predictor, one_row: Columns | np.ndarray,
            equivalence: EquivalenceReport, runs: int) -> ModelStats:
    """Size, compressed size and median single-row latency of ``proto``."""
    data = proto.SerializeToString()
    return ModelStats(
        size_bytes=len(data), compressed_bytes=len(zlib.compress(data, 6)),
        latency_ms=single_row_latency(predictor, one_row, runs),
        agreement=equivalence.agreement, max_abs_diff=equivalence.max_abs_diff)


def single_row_latency(predictor: Predictor, one_row: Columns | np.ndarray, runs: int) -> float:
    """Median milliseconds of ``runs`` onnxruntime calls on one row (after 10 warm-up calls).

    Only the session call is timed: the input is converted to tensors once, before."""
    session: Any = getattr(predictor, "session", None)
    if session is None:
        raise InvalidInputError("Latency is measured on onnxruntime predictors only.")
    # The runtime's own conversion of columns to tensors, so the timed call is what a
    # server's call costs once its input is decoded.
    feeds = predictor._feeds(one_row)  # type: ignore[attr-defined]
    for _ in range(10):
        session.run(None, feeds)
    timings = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        session.run(None, feeds)
        timings.append(time.perf_counter_ns() - start)
    return statistics.median(timings) / 1e6


def prune_weights(proto: onnx.ModelProto, ratio: float, *,
                  source: str = "the model") -> tuple[onnx.ModelProto, int, int]:
    """A copy of ``proto`` with the ``ratio`` smallest-magnitude entries of each MatMul/Gemm
    weight matrix set to zero; also returns how many weights were zeroed, out of how many.

    Biases and other initializers are left alone.
    """
    import onnx
    from onnx import numpy_helper

    if not 0 < ratio < 1:
        raise InvalidInputError(
            f"The prune ratio must be between 0 and 1 (exclusive). Got {ratio} instead.",
            hint="For example --prune 0.3 zeroes the 30% smallest weights of each layer.")
    ops = {node.op_type for node in proto.graph.node}
    if ops & _TREE_OPS:
        raise UnsupportedModelError(
            f"Pruning zeroes the smallest weights of a neural network, but {source} is a tree "
            "ensemble: its splits hold thresholds, not weights, and zeroing them would change "
            "which branch every row takes.",
            hint="To shrink a forest or boosted model, train it with fewer or shallower trees.")
    result = onnx.ModelProto()
    result.CopyFrom(proto)
    initializers = {t.name: t for t in result.graph.initializer}
    names = _weight_names(result, initializers)
    if not names:
        raise UnsupportedModelError(
            f"{source} has no MatMul or Gemm weight matrices to prune (operators: "
            f"{sorted(ops)}).", hint="Pruning applies to neural networks (MLPs).")
    pruned = total = 0
    for name in names:
        tensor = initializers[name]
        weights = numpy_helper.to_array(tensor).copy()
        flat = weights.reshape(-1)
        k = int(ratio * flat.size)
        if k:
            flat[np.argpartition(np.abs(flat), k - 1)[:k]] = 0
        pruned += k
        total += flat.size
        tensor.CopyFrom(numpy_helper.from_array(weights, name))
    return result, pruned, total


def _weight_names(proto: onnx.ModelProto, initializers: dict[str, Any]) -> list[str]:
    from onnx import TensorProto

    names: list[str] = []
    for node in proto.graph.node:
        if node.op_type not in _WEIGHT_OPS:
            continue
        candidates = [node.input[1]] if node.op_type == "Gemm" else list(node.input[:2])
        for name in candidates:
            tensor = initializers.get(name)
            if (tensor is not None and tensor.data_type in (TensorProto.FLOAT, TensorProto.DOUBLE)
                    and len(tensor.dims) == 2 and name not in names):
                names.append(name)
    return names


def quantize_model(proto: onnx.ModelProto, mode: str,
                   calibration: Sequence[dict[str, np.ndarray]] | None = None, *,
                   source: str = "the model") -> onnx.ModelProto:
    """Quantize ``proto`` to int8 weights: ``dynamic``, or ``static`` with ``calibration``
    feeds (one dict of input tensors per batch)."""
    import onnx

    if mode not in QUANTIZE_MODES:
        raise InvalidInputError(
            f"The quantization mode must be one of {list(QUANTIZE_MODES)}. Got {mode!r} instead.",
            hint="'dynamic' needs no data; 'static' calibrates on the reference sample.")
    ops = {node.op_type for node in proto.graph.node}
    if not ops & _QUANTIZABLE_OPS:
        kind = "a tree ensemble" if ops & _TREE_OPS else "a graph without weight matrices"
        raise UnsupportedModelError(
            f"Quantization stores the weights of MatMul, Gemm and Conv operators as int8, but "
            f"{source} is {kind} (operators: {sorted(ops)}): there is nothing to quantize.",
            hint="Export it without --quantize; it is already as small as ONNX makes it.")
    if mode == "static" and not calibration:
        raise InvalidInputError("Static quantization needs calibration data.",
                                hint="Pass the reference sample, or use --quantize dynamic.")
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    with tempfile.TemporaryDirectory(prefix="modelyard-quantize-") as tmp:
        src = Path(tmp) / "float.onnx"
        onnx.save_model(proto, str(src))
        prepared = _preprocess(src, Path(tmp) / "prepared.onnx")
        out = Path(tmp) / "quantized.onnx"
        if mode == "dynamic":
            quantize_dynamic(str(prepared), str(out), weight_type=QuantType.QInt8)
        else:
            quantize_static(str(prepared), str(out), _Reader(list(calibration or [])),
                            quant_format=QuantFormat.QDQ, weight_type=QuantType.QInt8,
                            activation_type=QuantType.QUInt8)
        return onnx.load_model(str(out))


def _preprocess(src: Path, dest: Path) -> Path:
    """onnxruntime's pre-quantization pass (shape inference and graph optimization); the
    original graph when that pass cannot handle it."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(src), str(dest))
    except Exception:  # an operator the symbolic shape inference does not know
        return src
    return dest


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over prepared feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return iter(self._feeds)


def _calibration_feeds(predictor: Predictor,
                       data: Columns | np.ndarray) -> list[dict[str, np.ndarray]]:
    rows = min(_row_count(data), _CALIBRATION_ROWS)
    feeds = []
    for start in range(0, rows, _CALIBRATION_BATCH):
        batch = _rows(data, slice(start, min(start + _CALIBRATION_BATCH, rows)))
        feeds.append(predictor._feeds(batch))  # type: ignore[attr-defined]
    return feeds


def _row_count(data: Columns | np.ndarray) -> int:
    if isinstance(data, np.ndarray):
        return len(data)
    return len(next(iter(data.values()))) if data else 0


def _rows(data: Columns | np.ndarray, rows: slice) -> Columns | np.ndarray:
    if isinstance(data, np.ndarray):
        return data[rows]
    return {name: column[rows] for name, column in data.items()}


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.1f} MiB"

