"""A signed-source server uses a version's ONNX export only when both are signed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from modelyard.core.entities import Lineage, ModelVersion, Status
from modelyard.errors import UnsafeModelError
from modelyard.serving.source import SignedSource


def _version(n: int, fmt: str) -> ModelVersion:
    return ModelVersion(name="m", version=n, format=fmt, status=Status.READY,
                        created_at=datetime.now(UTC), created_by="t", artifact_digest="0" * 64,
                        size_bytes=1, signature=None, lineage=Lineage(parent_version=None))


SOURCE, TWIN = _version(1, "sklearn"), _version(2, "onnx")


class _Inner:
    def resolve(self, ref: Any) -> ModelVersion:
        return SOURCE

    def load(self, ref: Any) -> Any:
        raise AssertionError("not loaded here")

    def onnx_twin(self, version: ModelVersion) -> ModelVersion | None:
        return TWIN if version.version == 1 else None


def _checker(signed: set[int]) -> Any:
    def check(version: ModelVersion) -> None:
        if version.version not in signed:
            raise UnsafeModelError(f"version {version.version} is not signed")
    return check


def test_both_signed_uses_the_export() -> None:
    assert SignedSource(_Inner(), _checker({1, 2})).onnx_twin(SOURCE) is TWIN


def test_an_unsigned_export_is_not_used() -> None:
    assert SignedSource(_Inner(), _checker({1})).onnx_twin(SOURCE) is None


def test_an_unsigned_version_is_refused_as_without_an_export() -> None:
    with pytest.raises(UnsafeModelError, match="version 1 is not signed"):
        SignedSource(_Inner(), _checker({2})).onnx_twin(SOURCE)


def test_no_export_no_check() -> None:
    assert SignedSource(_Inner(), _checker(set())).onnx_twin(_version(5, "sklearn")) is None
