"""Finds runtimes through the ``modelyard.runtimes`` entry point group.

A catalog is an ordinary object (no module-level registry): the Client builds one and passes it
down; tests build one from explicit runtime classes.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import entry_points
from pathlib import Path

from modelyard.errors import ConfigurationError, UnsupportedModelError
from modelyard.runtimes.base import Runtime

__all__ = ["ENTRY_POINT_GROUP", "RuntimeCatalog"]

ENTRY_POINT_GROUP = "modelyard.runtimes"


class RuntimeCatalog:
    """The runtimes available to this process, highest priority first."""

    def __init__(self, runtimes: Iterable[Runtime] | None = None) -> None:
        self._runtimes: list[Runtime] | None = (
            sorted(runtimes, key=lambda r: -r.priority) if runtimes is not None else None
        )

    @property
    def runtimes(self) -> list[Runtime]:
        if self._runtimes is None:
            found = []
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                found.append(ep.load()())
            self._runtimes = sorted(found, key=lambda r: -r.priority)
        return self._runtimes

    @property
    def formats(self) -> list[str]:
        return [r.format for r in self.runtimes]

    def for_format(self, fmt: str) -> Runtime:
        for runtime in self.runtimes:
            if runtime.format == fmt:
                return runtime
        raise ConfigurationError(
            f"No runtime for the model format {fmt!r} is installed; installed: {self.formats}.",
            hint="Install the package that provides it, e.g. pip install 'modelyard[all]'.",
        )

    def for_object(self, obj: object) -> Runtime:
        for runtime in self.runtimes:
            if runtime.can_save(obj):
                return runtime
        kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
        raise UnsupportedModelError(
            f"modelyard cannot register an object of type {kind}: no runtime handles it "
            f"(installed formats: {', '.join(self.formats)}).",
            hint="Pass a fitted scikit-learn, XGBoost, LightGBM, PyTorch or ONNX model, or a "
            "class with load(context) and predict(data) methods.",
        )

    def for_path(self, path: Path) -> Runtime:
        if not path.exists():
            raise UnsupportedModelError(
                f"There is no file or folder at {str(path)!r}.", hint="Check the path."
            )
        for runtime in self.runtimes:
            if runtime.can_save_path(path):
                return runtime
        raise UnsupportedModelError(
            f"modelyard does not recognise {str(path)!r} as a saved model.",
            hint="Supported: .skops, .onnx, .pt/.pt2 (TorchScript or exported program), "
            "XGBoost .json/.ubj, LightGBM .txt, an MLflow model folder (with an MLmodel file), "
            "or .pkl/.joblib with --trust-pickle.",
        )
