"""Content-addressed artifact storage: local folders or any fsspec URI."""

from __future__ import annotations

from modelyard.registry.artifacts.store import ArtifactStore, Manifest, ManifestEntry

__all__ = ["ArtifactStore", "Manifest", "ManifestEntry"]
