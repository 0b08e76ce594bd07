"""Helpers of the batch tests: loaded models built in memory (no registry), data files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd

from modelyard.core.entities import Lineage, ModelVersion, Status
from modelyard.core.signature import Signature
from modelyard.runtimes.model import Model
from modelyard.runtimes.sklearn import SklearnPredictor

FEATURES = ["f0", "f1", "f2", "f3"]


def make_model(estimator: Any, sample: Any, *, name: str = "m", version: int = 1,
               signature: Signature | str | None = "infer") -> Model:
    """A loaded sklearn model as ``Client.load`` returns it, without a registry."""
    sig = Signature.infer(sample) if signature == "infer" else signature
    assert not isinstance(sig, str)
    mv = ModelVersion(name=name, version=version, format="sklearn", status=Status.READY,
                      created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), created_by="t",
                      artifact_digest="0" * 64, size_bytes=0, signature=sig, lineage=Lineage())
    return Model(SklearnPredictor(estimator), mv)


def write(frame: pd.DataFrame, path: Path) -> Path:
    """``frame`` as CSV, Parquet or JSON lines, by ``path``'s suffix."""
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
    return path


def read(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_json(path, lines=True)
