"""The model registry: metadata in SQL, files in a content-addressed artifact store."""

from __future__ import annotations

from modelyard.registry.artifacts import ArtifactStore, Manifest
from modelyard.registry.sql import NewVersion, SqlRegistryStore

__all__ = ["ArtifactStore", "Manifest", "NewVersion", "SqlRegistryStore"]
