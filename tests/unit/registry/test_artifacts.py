from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from modelyard.errors import IntegrityError, NotFoundError
from modelyard.registry.artifacts import ArtifactStore
from modelyard.security.checksums import sha256_bytes


@pytest.fixture(params=["local", "file", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return ArtifactStore(str(tmp_path / "art"))
    if request.param == "file":
        return ArtifactStore(f"file://{tmp_path / 'art'}")
    return ArtifactStore(f"memory://modelyard-{uuid.uuid4().hex}")


def test_blob_round_trip_is_content_addressed(store: ArtifactStore) -> None:
    digest = store.put_bytes(b"model bytes")
    assert digest == sha256_bytes(b"model bytes")
    assert store.put_bytes(b"model bytes") == digest  # idempotent
    assert store.get_bytes(digest) == b"model bytes"
    assert store.exists(digest)


def test_tree_round_trip(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "model.bin").write_bytes(b"\x00" * 1000)
    (src / "sub" / "meta.json").write_text('{"a": 1}')
    digest, manifest = store.put_tree(src)
    assert [e.path for e in manifest.entries] == ["model.bin", "sub/meta.json"]
    assert manifest.size == 1000 + len('{"a": 1}')
    out = tmp_path / "out"
    store.fetch_tree(digest, out)
    assert (out / "model.bin").read_bytes() == b"\x00" * 1000
    assert (out / "sub" / "meta.json").read_text() == '{"a": 1}'


def test_missing_blob_is_not_found(store: ArtifactStore) -> None:
    with pytest.raises(NotFoundError, match="is missing from"):
        store.get_bytes("0" * 64)


def test_one_changed_byte_fails_the_integrity_check(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "art"))
    digest = store.put_bytes(b"abcdefgh" * 100)
    blob = next((tmp_path / "art" / "blobs").rglob(digest))
    data = bytearray(blob.read_bytes())
    data[17] ^= 0x01
    blob.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="failed its integrity check"):
        store.get_bytes(digest)


def test_no_temporary_files_left_behind(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "art"))
    store.put_bytes(b"x")
    assert not list((tmp_path / "art").rglob(".tmp-*"))
