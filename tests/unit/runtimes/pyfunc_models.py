"""User classes for the pyfunc and MLflow runtime tests; they live in a module so they import."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


class ThresholdModel:
    """Says 1 where the row sum passes a threshold read from a JSON artifact."""

    def __init__(self) -> None:
        self.threshold: float | None = None

    def load(self, context: Any) -> None:
        config = json.loads(Path(context.artifacts["config"]).read_text())
        self.threshold = float(config["threshold"])
        self.model_dir = context.model_dir

    def _scores(self, data: Any) -> np.ndarray:
        assert self.threshold is not None, "load(context) was not called"
        rows: np.ndarray = np.asarray(data, dtype=np.float64).sum(axis=1)
        return rows - self.threshold

    def predict(self, data: Any) -> np.ndarray:
        return (self._scores(data) > 0).astype(np.int64)

    def predict_proba(self, data: Any) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-self._scores(data)))
        return np.column_stack([1.0 - p, p])


class NeedsArguments:
    """Cannot be rebuilt with no arguments, so the pyfunc runtime refuses it."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def load(self, context: Any) -> None:
        pass

    def predict(self, data: Any) -> np.ndarray:
        return np.zeros(len(data))


class InputKind:
    """Returns the type name of what it was given, once per row."""

    def load(self, context: Any) -> None:
        pass

    def predict(self, data: Any) -> np.ndarray:
        return np.array([type(data).__name__] * len(data))
