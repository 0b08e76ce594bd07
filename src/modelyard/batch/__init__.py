"""Batch scoring: a model over a CSV, Parquet or JSON-lines file, chunk by chunk.

>>> from modelyard.batch import BatchOptions, run_batch
>>> model = client.load("models:/fraud@production")                    # doctest: +SKIP
>>> result = run_batch(model, "today.parquet", "scores.parquet",
...                    options=BatchOptions(id_column="id", on_error="quarantine"))
...                                                                     # doctest: +SKIP
>>> result.scored, result.quarantined                                   # doctest: +SKIP
(999990, 10)

See docs/batch.md. The engines are :class:`LocalEngine` (default) and :class:`RayEngine`.
"""

from __future__ import annotations

from modelyard.batch.engines import ChunkSink, Engine, LocalEngine, ModelLoader, RayEngine
from modelyard.batch.job import BatchOptions, BatchResult, OnError, ProgressCallback, run_batch
from modelyard.batch.readers import InputFile
from modelyard.batch.scoring import ChunkScorer, ScoringPlan

__all__ = [
    "BatchOptions",
    "BatchResult",
    "ChunkScorer",
    "ChunkSink",
    "Engine",
    "InputFile",
    "LocalEngine",
    "ModelLoader",
    "OnError",
    "ProgressCallback",
    "RayEngine",
    "ScoringPlan",
    "run_batch",
]
