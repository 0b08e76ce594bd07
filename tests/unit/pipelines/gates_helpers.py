"""Helpers of the gate tests: versions and loaded models built in memory (no registry), with
predictors whose outputs the test controls through the input column ``x``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from modelyard.core.entities import Lineage, ModelVersion, Status
from modelyard.core.signature import ColumnSpec, Schema, Signature
from modelyard.runtimes.model import Model


def version(*, name: str = "m", number: int = 1, signature: Signature | None = None,
            size_bytes: int = 1000) -> ModelVersion:
    return ModelVersion(name=name, version=number, format="pyfunc", status=Status.READY,
                        created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), created_by="t",
                        artifact_digest="0" * 64, size_bytes=size_bytes, signature=signature,
                        lineage=Lineage())


def columns(*specs: tuple[str, str] | tuple[str, str, bool]) -> Signature:
    """A signature of named columns: ("x", "float64") or ("x", "float64", nullable)."""
    return Signature(Schema("columns", columns=tuple(
        ColumnSpec(s[0], s[1], bool(s[2]) if len(s) == 3 else False) for s in specs)))


X_ONLY = columns(("x", "float64"))


class Threshold:
    """A classifier: 1 where x > cut; P(1) = x clipped to [0, 1] (with ``proba``)."""

    classes = np.array([0, 1])

    def __init__(self, cut: float = 0.5, *, proba: bool = True) -> None:
        self.cut = cut
        if proba:
            self.predict_proba = self._proba

    def predict(self, data: dict[str, np.ndarray]) -> np.ndarray:
        return (data["x"] > self.cut).astype(np.int64)

    def _proba(self, data: dict[str, np.ndarray]) -> np.ndarray:
        p = np.clip(data["x"], 0.0, 1.0)
        return np.column_stack([1.0 - p, p])


class Linear:
    """A regressor: a * x + b."""

    def __init__(self, a: float = 1.0, b: float = 0.0) -> None:
        self.a, self.b = a, b

    def predict(self, data: dict[str, np.ndarray]) -> np.ndarray:
        return self.a * data["x"] + self.b


class Broken:
    """A model that raises on every call."""

    def predict(self, data: Any) -> np.ndarray:
        raise RuntimeError("weights are corrupt")


def model(predictor: Any, *, number: int = 1, signature: Signature | None = X_ONLY,
          size_bytes: int = 1000) -> Model:
    return Model(predictor, version(number=number, signature=signature, size_bytes=size_bytes))


def holdout(x: list[float], y: list[Any]) -> pd.DataFrame:
    return pd.DataFrame({"x": np.asarray(x, dtype=np.float64), "y": y})


# Ten rows: Threshold(0.5) gets 8 right (rows 3 and 5 wrong), Threshold(0.35) 9 (row 5).
X10 = [0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9, 0.05, 0.95]
Y10 = [0, 0, 0, 1, 1, 0, 1, 1, 0, 1]
