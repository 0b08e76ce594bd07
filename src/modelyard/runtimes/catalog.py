"""Finds runtimes through the ``modelyard.runtimes`` entry point group.

A catalog is an ordinary object (no module-level registry): the Client builds one and passes it
down; tests build one from explicit runtime instances. Entry point names are the format ids, so
loading a registered version imports only its own runtime module.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from modelyard.errors import ConfigurationError, NotFoundError, UnsupportedModelError
from modelyard.runtimes.base import Runtime

__all__ = ["ENTRY_POINT_GROUP", "RuntimeCatalog"]

ENTRY_POINT_GROUP = "modelyard.runtimes"
log = logging.getLogger(__name__)


class RuntimeCatalog:
    """The runtimes available to this process, highest priority first."""

    def __init__(self, runtimes: Iterable[Runtime] | None = None) -> None:
        self._loaded: dict[str, Runtime] = {}
        self._entry_points: dict[str, EntryPoint] = {}
        if runtimes is not None:
            self._loaded = {r.format: r for r in runtimes}
        else:
            self._entry_points = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        self._all: list[Runtime] | None = None

    @property
    def formats(self) -> list[str]:
        return sorted(set(self._loaded) | set(self._entry_points))

    @property
    def runtimes(self) -> list[Runtime]:
        if self._all is None:
            for name in list(self._entry_points):
                try:
                    self._load(name)
                except Exception as exc:  # a broken third-party plugin must not break the rest
                    log.warning("Skipping model runtime %r: %s", name, exc)
            self._all = sorted(self._loaded.values(), key=lambda r: -r.priority)
        return self._all

    def _load(self, name: str) -> Runtime:
        if name not in self._loaded:
            runtime: Runtime = self._entry_points[name].load()()
            self._loaded[name] = runtime
        return self._loaded[name]

    def for_format(self, fmt: str) -> Runtime:
        if fmt in self._loaded:
            return self._loaded[fmt]
        if fmt in self._entry_points:
            return self._load(fmt)
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
            raise NotFoundError(
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
