"""PyTorch models, stored as TorchScript (``model.pt``) or as an exported program (``model.pt2``).

Neither format is a pickle of Python objects: TorchScript archives hold TorchScript code and
tensors, exported programs an FX graph as JSON and raw weights. A plain ``nn.Module`` is
exported with ``torch.export`` from the sample input given at registration, in eval mode, with
the batch dimension left free where the module allows it. ``torch.save`` checkpoints (pickles)
are refused.

A program exported with a fixed batch size (the default of ``torch.export.export`` without
``dynamic_shapes``) is fed in chunks of that size, the last one padded by repeating its last
row, so that it serves requests of any size. This assumes rows are independent, as they are in
eval mode for the usual layers.

The model takes one float tensor of shape ``[N, ...]`` and returns one tensor. When its output
on the sample looks like class probabilities (rows in [0, 1] summing to 1), the predictor has
``predict_proba`` and ``predict`` returns the argmax.
"""

from __future__ import annotations

import shutil
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from modelyard.core.tabular import Columns, as_columns, is_table
from modelyard.errors import (
    InvalidInputError,
    PredictionError,
    UnsupportedModelError,
)
from modelyard.runtimes.base import (
    LoadOptions,
    SavedModel,
    SaveOptions,
    import_framework,
    to_matrix,
)

__all__ = ["TorchPredictor", "TorchRuntime"]

_FILES = {"torchscript": "model.pt", "exported": "model.pt2"}
_EXAMPLE_ROWS = 16  # enough to trace with and to recognise probabilities
_KINDS = {  # (module prefix, class name) anywhere in the MRO -> kind
    ("torch.jit", "ScriptModule"): "torchscript",
    ("torch.export", "ExportedProgram"): "exported",
    ("torch.nn", "Module"): "module",
}


def _torch() -> Any:
    return import_framework("torch", "torch", "Using PyTorch models")


def _kind(obj: object) -> str | None:
    for cls in type(obj).__mro__:
        for (prefix, name), kind in _KINDS.items():
            if cls.__name__ == name and cls.__module__.startswith(prefix):
                return kind
    return None


class TorchPredictor:
    """A TorchScript module or exported program, run on CPU under ``inference_mode``."""

    def __init__(self, module: Any, meta: dict[str, Any]) -> None:
        self.module = module
        self.input_dtype = getattr(_torch(), meta.get("input_dtype", "float32"))
        # Convert once in numpy; float32 unless the model wants float64 precision.
        self.numpy_dtype = np.float64 if meta.get("input_dtype") == "float64" else np.float32
        self.batch_size: int | None = meta.get("batch_size")
        self.proba = bool(meta.get("proba", False))
        if self.proba:
            self.predict_proba = self._forward

    def predict(self, data: Columns | np.ndarray) -> np.ndarray:
        out = self._forward(data)
        if self.proba:
            return np.asarray(out.argmax(axis=1))
        return out[:, 0] if out.ndim == 2 and out.shape[1] == 1 else out

    def _forward(self, data: Columns | np.ndarray) -> np.ndarray:
        matrix = to_matrix(data, self.numpy_dtype)
        if self.batch_size is None or len(matrix) == self.batch_size:
            return self._run(matrix)
        # A fixed-size program: run full chunks, padding the last with copies of its last row.
        outs = []
        for start in range(0, len(matrix), self.batch_size):
            chunk = matrix[start : start + self.batch_size]
            pad = np.repeat(chunk[-1:], self.batch_size - len(chunk), axis=0)
            outs.append(self._run(np.concatenate([chunk, pad]))[: len(chunk)])
        return np.concatenate(outs)

    def _run(self, matrix: np.ndarray) -> np.ndarray:
        torch = _torch()
        # torch.from_numpy warns on read-only arrays (e.g. views of Arrow buffers).
        array = matrix if matrix.flags.writeable else matrix.copy()
        with torch.inference_mode():
            out = self.module(torch.from_numpy(array).to(self.input_dtype))
        if not isinstance(out, torch.Tensor):
            raise PredictionError(
                f"The model returned a {type(out).__name__}; modelyard needs one tensor."
            )
        return np.asarray(out.float().numpy() if out.dtype == torch.bfloat16 else out.numpy())


class TorchRuntime:
    """TorchScript modules, exported programs and plain ``nn.Module`` s (format id ``torch``)."""

    format: ClassVar[str] = "torch"
    priority: ClassVar[int] = 20

    def can_save(self, obj: object) -> bool:
        return _kind(obj) is not None

    def can_save_path(self, path: Path) -> bool:
        return path.is_file() and path.suffix in (".pt", ".pt2")

    def save(self, obj: object, directory: Path, options: SaveOptions) -> SavedModel:
        torch = _torch()
        kind = _kind(obj)
        example = _example(options.sample_input)
        if kind == "module":
            obj = _export(obj, example, torch)
            kind = "exported"
        meta = _meta(obj, str(kind), example, torch)
        target = directory / _FILES[str(kind)]
        if kind == "torchscript":
            torch.jit.save(obj, str(target))
        else:
            torch.export.save(obj, str(target))
        return SavedModel(meta=meta)

    def save_path(self, path: Path, directory: Path, options: SaveOptions) -> SavedModel:
        torch = _torch()
        kind = _file_kind(path)
        try:
            model = (torch.jit.load(str(path), map_location="cpu") if kind == "torchscript"
                     else _load_exported(torch, str(path)))
        except Exception as exc:
            raise UnsupportedModelError(
                f"{str(path)!r} looks like a {kind} file but PyTorch cannot load it: {exc}",
                hint="Check that it was saved with the same or an older PyTorch version.",
            ) from exc
        meta = _meta(model, kind, _example(options.sample_input), torch)
        shutil.copyfile(path, directory / _FILES[kind])
        return SavedModel(meta=meta)

    def load(self, directory: Path, meta: dict[str, Any], options: LoadOptions) -> TorchPredictor:
        torch = _torch()
        if options.intra_op_threads is not None:  # process-wide, so only when asked
            torch.set_num_threads(options.intra_op_threads)
        path = str(directory / _FILES[meta["kind"]])
        if meta["kind"] == "torchscript":
            module = torch.jit.load(path, map_location="cpu")
            module.eval()
        else:
            # An exported program's module has no train/eval mode: it runs as it was exported.
            module = _load_exported(torch, path).module()
        return TorchPredictor(module, meta)


_EXPORT_LOAD_LOCK = threading.Lock()
"""torch.export.load keeps its deserializer in a global: two loads at once (the server loading
two versions in its threads) fail with '_CURRENT_DESERIALIZER is already set'."""


def _load_exported(torch: Any, path: str) -> Any:
    with _EXPORT_LOAD_LOCK:
        return torch.export.load(path)


def _example(sample: Any) -> np.ndarray | None:
    if sample is None:
        return None
    if is_table(sample):
        data: Columns | np.ndarray = {k: v[:_EXAMPLE_ROWS] for k, v in as_columns(sample).items()}
    else:
        data = np.asarray(sample)[:_EXAMPLE_ROWS]
    try:
        matrix = to_matrix(data, np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"The sample input must be numeric to run a PyTorch model on it: {exc}.",
            hint="Pass numeric features as data=, encoded the way the model expects them.",
        ) from None
    # torch.export fixes a batch dimension of 1 to exactly 1, so trace with at least two rows.
    return np.concatenate([matrix, matrix]) if len(matrix) == 1 else matrix


def _export(module: Any, example: np.ndarray | None, torch: Any) -> Any:
    if example is None or len(example) == 0:
        raise InvalidInputError(
            f"A plain torch.nn.Module ({type(module).__name__}) can only be registered with "
            "sample input: modelyard exports it with torch.export, which runs it on an example.",
            hint="Pass data= (a few rows of model input) to register(), or register a "
            "TorchScript module or a torch.export.ExportedProgram instead.",
        )
    x = torch.from_numpy(example).to(_param_dtype(module, torch))
    try:
        with _eval_mode(module):
            # AUTO leaves the batch dimension free unless the module fixes it.
            return torch.export.export(module, (x,), dynamic_shapes=({0: torch.export.Dim.AUTO},))
    except Exception as exc:
        raise UnsupportedModelError(
            f"torch.export could not export {type(module).__name__}: {exc}",
            hint="Make forward() take one tensor and return one tensor, or register a "
            "TorchScript module (torch.jit.script) instead.",
        ) from exc


@contextmanager
def _eval_mode(module: Any) -> Iterator[None]:
    """Run the user's module in eval mode (no dropout, fixed batch norm), then restore it."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def _param_dtype(module: Any, torch: Any) -> Any:
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)


def _file_kind(path: Path) -> str:
    names: list[str] = []
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    if any(n.endswith("/archive_format") for n in names):
        return "exported"
    if any(n.endswith("/constants.pkl") for n in names):
        return "torchscript"
    raise UnsupportedModelError(
        f"{str(path)!r} is neither a TorchScript archive nor a torch.export program; it is "
        "probably a torch.save checkpoint, which is a pickle and can run code when loaded.",
        hint="Save the model with torch.jit.save(torch.jit.script(model), ...) or "
        "torch.export.save(torch.export.export(model, (x,)), ...), or register the "
        "nn.Module itself with data=.",
    )


def _user_input(program: Any) -> Any:
    """The placeholder value (a fake tensor) of the exported program's one user input."""
    names = [s.arg.name for s in program.graph_signature.input_specs
             if s.kind.name == "USER_INPUT"]
    if len(names) != 1:
        raise UnsupportedModelError(
            f"The exported program takes {len(names)} inputs; modelyard feeds it one tensor.",
            hint="Export a module whose forward() takes a single tensor.",
        )
    return next(n.meta["val"] for n in program.graph.nodes if n.name == names[0])


def _meta(model: Any, kind: str, example: np.ndarray | None, torch: Any) -> dict[str, Any]:
    batch_size = None
    if kind == "exported":
        value = _user_input(model)
        dtype, module = value.dtype, model.module()
        # A free batch dimension is a SymInt; a fixed one is a plain int.
        if value.ndim and isinstance(value.shape[0], int):
            batch_size = value.shape[0]
    else:
        dtype, module = _param_dtype(model, torch), model
    meta: dict[str, Any] = {
        "file": _FILES[kind],
        "kind": kind,
        "input_dtype": str(dtype).removeprefix("torch."),
        "batch_size": batch_size,
        "proba": False,
        "torch_version": torch.__version__,
    }
    if example is not None and len(example):
        # An exported program's module has no train/eval switch; it runs as exported.
        with _eval_mode(module) if kind == "torchscript" else nullcontext():
            out = TorchPredictor(module, meta)._forward(example)
        meta["proba"] = bool(
            out.ndim == 2 and out.shape[1] > 1 and out.min() >= 0 and out.max() <= 1
            and np.allclose(out.sum(axis=1), 1.0, rtol=0, atol=1e-4)
        )
    return meta
