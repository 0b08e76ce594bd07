"""A trained candidate, saved and loaded back the way the registry would, but not registered.

The gates judge a :class:`~modelyard.runtimes.model.Model` and its
:class:`~modelyard.core.entities.ModelVersion` (signature, stored size). A candidate that
fails them must leave no version behind, so the pipeline stages it first: the model is
saved by its runtime into a temporary folder and loaded back, exactly as registration and
serving would, and only a passing candidate is registered.

>>> staged = stage_candidate(client, model, "fraud", features)          # doctest: +SKIP
>>> staged.model.predict(features[:3])                                  # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.core.entities import Lineage, ModelVersion, Status
from modelyard.core.signature import Signature, infer_schema
from modelyard.core.tabular import as_columns, is_table
from modelyard.errors import InvalidInputError, ModelyardError, PredictionError
from modelyard.runtimes.base import LoadOptions, SaveOptions
from modelyard.runtimes.model import Model

if TYPE_CHECKING:
    from modelyard._client import Client

__all__ = ["StagedCandidate", "model_features", "stage_candidate"]

_CHECK_ROWS = 100


@dataclass(frozen=True)
class StagedCandidate:
    """The candidate as the gates see it (version number 0: it has none yet)."""

    model: Model
    version: ModelVersion
    format: str


def stage_candidate(client: Client, model: Any, name: str, features: Any, *,
                    params: dict[str, Any] | None = None,
                    parent: int | None = None) -> StagedCandidate:
    """Save ``model`` with its runtime into a temporary folder, load it back and wrap it as
    an unregistered version of ``name`` whose signature comes from ``features``."""
    files = tempfile.TemporaryDirectory(prefix="modelyard-candidate-")
    try:
        directory = Path(files.name) / "model"
        directory.mkdir()
        runtime = client.catalog.for_object(model)
        saved = runtime.save(model, directory, SaveOptions(sample_input=features))
        fmt = saved.format or runtime.format
        predictor = client.catalog.for_format(fmt).load(directory, saved.meta, LoadOptions())
        signature = saved.signature
        if signature is None:
            head = _head(features)
            try:
                output = predictor.predict(Signature(infer_schema(head)).validate_input(head))
            except ModelyardError:
                raise
            except Exception as exc:
                raise PredictionError(
                    f"The trained model raised {type(exc).__name__} when predicting on its "
                    f"own training features: {exc}",
                    hint="Check that the train function returns a fitted model that takes "
                         "the feature columns (set 'features' in the pipeline if needed).",
                ) from exc
            signature = Signature(infer_schema(features), infer_schema(output, "output"))
        size = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
        version = ModelVersion(
            name=name, version=0, format=fmt, status=Status.READY,
            created_at=datetime.now(UTC), created_by=client.settings.actor(),
            artifact_digest="", size_bytes=size, signature=signature,
            lineage=Lineage(params=dict(params or {}), parent_version=parent),
            runtime_meta=dict(saved.meta))
    except BaseException:
        files.cleanup()
        raise
    return StagedCandidate(model=Model(predictor, version, files=files), version=version,
                           format=fmt)


def model_features(model: Any, frame: Any, *, target: str, exclude: tuple[str, ...] = (),
                   declared: list[str] | None = None,
                   source_features: list[str] | None = None) -> list[str]:
    """The input columns of a trained model: ``declared`` (the spec's ``features``), else the
    names the model learned (``feature_names_in_``), else ``source_features``, else every
    column but the target and ``exclude``."""
    columns = [str(c) for c in frame.columns]
    for choice in (declared, _learned(model), source_features):
        if choice:
            missing = [c for c in choice if c not in columns]
            if missing:
                raise InvalidInputError(
                    f"The feature column(s) {missing} are not in the training data; its "
                    f"columns are {columns}.",
                    hint="Fix 'features' in the pipeline, or the data source.")
            return list(choice)
    return [c for c in columns if c != target and c not in exclude]


def _learned(model: Any) -> list[str] | None:
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return None
    return [str(n) for n in names]


def _head(data: Any) -> Any:
    if is_table(data):
        return {k: v[:_CHECK_ROWS] for k, v in as_columns(data).items()}
    return data[:_CHECK_ROWS]
