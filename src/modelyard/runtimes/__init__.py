"""Model formats. One module per format, each a :class:`Runtime` found through entry points."""

from __future__ import annotations

from modelyard.runtimes.base import LoadOptions, Predictor, Runtime, SavedModel, SaveOptions
from modelyard.runtimes.catalog import RuntimeCatalog
from modelyard.runtimes.model import Model

__all__ = [
    "LoadOptions",
    "Model",
    "Predictor",
    "Runtime",
    "RuntimeCatalog",
    "SaveOptions",
    "SavedModel",
]
