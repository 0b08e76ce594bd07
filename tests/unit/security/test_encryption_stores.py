"""Encryption at rest in the artifact store and the inference log stores."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from modelyard.core.inference import InferenceRecord
from modelyard.errors import DecryptionError, IntegrityError
from modelyard.monitoring.feedback import feedback_from_json
from modelyard.monitoring.inference_log import records_to_tables
from modelyard.monitoring.log_store import ParquetLogStore, SqlLogStore, open_log_store
from modelyard.registry.artifacts import ArtifactStore
from modelyard.security.checksums import sha256_bytes
from modelyard.security.encryption import MAGIC, Keyring, key_id_of

OLD = Keyring(bytes(range(32)))
NEW = Keyring(bytes(range(1, 33)))
MARKER = b"PLAINTEXT-MARKER-unit"
T0 = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC).timestamp()


def _uri(kind: str, tmp_path: Path) -> str:
    return {"local": str(tmp_path / "art"), "file": f"file://{tmp_path / 'art'}",
            "memory": f"memory://enc-{uuid.uuid4().hex}"}[kind]


def _raw(store: ArtifactStore, digest: str) -> bytes:
    with store._open(store._blob_path(digest), "rb") as fh:
        return bytes(fh.read())


def _corrupt(store: ArtifactStore, digest: str, offset: int) -> None:
    data = bytearray(_raw(store, digest))
    data[offset] ^= 0x01
    with store._open(store._blob_path(digest), "wb") as fh:
        fh.write(bytes(data))


# -- artifacts -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["local", "file", "memory"])
def test_blobs_are_encrypted_and_addressed_by_their_plaintext(kind: str, tmp_path: Path) -> None:
    store = ArtifactStore(_uri(kind, tmp_path), keyring=OLD)
    data = MARKER * 1000
    digest = store.put_bytes(data)
    assert digest == sha256_bytes(data)
    raw = _raw(store, digest)
    assert raw.startswith(MAGIC)
    assert MARKER not in raw
    assert store.blob_key_id(digest) == OLD.current_id
    assert store.get_bytes(digest) == data
    assert store.blob_digests() == [digest]


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_trees_with_multi_chunk_files_round_trip(kind: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    big = np.random.default_rng(0).bytes(2_500_000) + MARKER
    (src / "model.bin").write_bytes(big)
    (src / "meta.json").write_bytes(b'{"category": "' + MARKER + b'"}')
    store = ArtifactStore(_uri(kind, tmp_path), keyring=OLD)
    digest, manifest = store.put_tree(src)
    assert len(store.blob_digests()) == 3  # two files and the manifest
    assert all(MARKER not in _raw(store, d) for d in store.blob_digests())
    store.fetch_tree(digest, tmp_path / "out")
    assert (tmp_path / "out" / "model.bin").read_bytes() == big
    assert manifest.size == len(big) + (src / "meta.json").stat().st_size


def test_blobs_written_in_clear_stay_readable_and_are_encrypted_when_written_again(
        tmp_path: Path) -> None:
    plain = ArtifactStore(str(tmp_path / "art"))
    digest = plain.put_bytes(MARKER)
    store = ArtifactStore(str(tmp_path / "art"), keyring=OLD)
    assert store.blob_key_id(digest) is None
    assert store.get_bytes(digest) == MARKER
    store.put_bytes(MARKER)
    assert store.blob_key_id(digest) == OLD.current_id
    assert store.get_bytes(digest) == MARKER


def test_a_plaintext_blob_that_starts_like_ciphertext_still_reads(tmp_path: Path) -> None:
    lookalike = MAGIC + b"\x01 not really encrypted " * 5
    digest = ArtifactStore(str(tmp_path / "art")).put_bytes(lookalike)
    store = ArtifactStore(str(tmp_path / "art"), keyring=OLD)
    assert store.get_bytes(digest) == lookalike
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(lookalike)
    tree, _ = ArtifactStore(str(tmp_path / "art")).put_tree(tmp_path / "src")
    store.fetch_tree(tree, tmp_path / "out")
    assert (tmp_path / "out" / "f").read_bytes() == lookalike


@pytest.mark.parametrize(("keyring", "match"), [
    (NEW, rf"^Artifact blob [0-9a-f]{{12}} was encrypted with key id {OLD.current_id}; the "
          rf"configured key is {NEW.current_id}\."),
    (None, rf"is encrypted with key id {OLD.current_id}, but no encryption key is configured"),
], ids=["wrong-key", "no-key"])
def test_reading_with_a_wrong_or_missing_key_is_a_clear_error(
        tmp_path: Path, keyring: Keyring | None, match: str) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "model.bin").write_bytes(MARKER)
    tree, manifest = ArtifactStore(str(tmp_path / "art"), keyring=OLD).put_tree(tmp_path / "src")
    reader = ArtifactStore(str(tmp_path / "art"), keyring=keyring)
    with pytest.raises(DecryptionError, match=match):
        reader.get_bytes(manifest.entries[0].sha256)
    with pytest.raises(DecryptionError, match=match):
        reader.fetch_tree(tree, tmp_path / "out")


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_a_tampered_encrypted_blob_is_refused_and_nothing_is_left(
        kind: str, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "model.bin").write_bytes(MARKER * 100)
    store = ArtifactStore(_uri(kind, tmp_path), keyring=OLD)
    tree, manifest = store.put_tree(tmp_path / "src")
    blob = manifest.entries[0].sha256
    _corrupt(store, blob, -3)
    with pytest.raises(IntegrityError, match="failed authentication at chunk 0"):
        store.get_bytes(blob)
    with pytest.raises(IntegrityError, match="failed authentication at chunk 0"):
        store.fetch_tree(tree, tmp_path / "out")
    assert not (tmp_path / "out" / "model.bin").exists()


def test_a_valid_ciphertext_moved_to_another_address_fails_the_checksum(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "art"), keyring=OLD)
    a, b = store.put_bytes(b"model a"), store.put_bytes(b"model b")
    Path(store._blob_path(a)).write_bytes(Path(store._blob_path(b)).read_bytes())
    with pytest.raises(IntegrityError, match=f"Artifact blob {a[:12]} failed its integrity"):
        store.get_bytes(a)


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_rekey_moves_every_blob_to_the_new_key_once(kind: str, tmp_path: Path) -> None:
    uri = _uri(kind, tmp_path)
    clear = ArtifactStore(uri).put_bytes(b"written before encryption " + MARKER)
    old = ArtifactStore(uri, keyring=OLD).put_bytes(b"written with the old key")
    rotating = ArtifactStore(uri, keyring=OLD.rotated_to(NEW))
    assert [rotating.rekey_blob(d) for d in (clear, old)] == [True, True]
    assert [rotating.rekey_blob(d) for d in (clear, old)] == [False, False]  # resumable
    assert {rotating.blob_key_id(d) for d in (clear, old)} == {NEW.current_id}
    assert MARKER not in _raw(rotating, clear)
    assert ArtifactStore(uri, keyring=NEW).get_bytes(clear).endswith(MARKER)
    with pytest.raises(DecryptionError, match="the configured key is"):
        ArtifactStore(uri, keyring=OLD).get_bytes(old)
    if kind == "local":
        assert not list((tmp_path / "art").rglob(".tmp-*"))


def test_rekey_leaves_a_tampered_blob_as_it_was(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "art"), keyring=OLD)
    digest = store.put_bytes(b"x" * 500)
    _corrupt(store, digest, 60)
    before = _raw(store, digest)
    rotating = ArtifactStore(str(tmp_path / "art"), keyring=OLD.rotated_to(NEW))
    with pytest.raises(IntegrityError, match="failed authentication"):
        rotating.rekey_blob(digest)
    assert _raw(store, digest) == before
    assert not list((tmp_path / "art").rglob(".tmp-*"))


def test_rekey_refuses_a_clear_blob_whose_bytes_changed(tmp_path: Path) -> None:
    plain = ArtifactStore(str(tmp_path / "art"))
    digest = plain.put_bytes(b"y" * 500)
    Path(plain._blob_path(digest)).write_bytes(b"z" * 500)
    with pytest.raises(IntegrityError, match="failed its integrity check"):
        ArtifactStore(str(tmp_path / "art"), keyring=NEW).rekey_blob(digest)
    assert Path(plain._blob_path(digest)).read_bytes() == b"z" * 500


# -- inference logs ------------------------------------------------------------------------------
def _records(n: int, ts: float = T0) -> list[InferenceRecord]:
    return [InferenceRecord(f"r{i}", "m", 1, ts + i,
                            {"a": np.array([float(i)]),
                             "c": np.array([MARKER.decode()], dtype=object)},
                            {"predict": np.array([i % 2])}, 0.5, "v2") for i in range(n)]


def _write(store: Any, n: int, ts: float = T0) -> None:
    for (model, version), table in records_to_tables(_records(n, ts)).items():
        store.write_inferences(model, version, table)
    store.write_feedback("m", feedback_from_json({"id": "r0", "label": MARKER.decode()},
                                                 now=ts))


def _sql_store(tmp_path: Path, keyring: Keyring | None) -> SqlLogStore:
    from modelyard.registry.sql.engine import make_engine, upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'log.db'}")
    upgrade(engine)
    return SqlLogStore(engine, keyring=keyring)


def _sql_cells(store: SqlLogStore) -> list[str]:
    from sqlalchemy import text

    with store.engine.connect() as conn:
        return [*conn.execute(text("SELECT inputs FROM inference_log")).scalars(),
                *conn.execute(text("SELECT outputs FROM inference_log")).scalars(),
                *conn.execute(text("SELECT label FROM feedback")).scalars()]


@pytest.fixture(params=["parquet", "memory-fs", "sqlite"])
def log_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _log_store(kind: str, tmp_path: Path, keyring: Keyring | None) -> Any:
    if kind == "sqlite":
        return _sql_store(tmp_path, keyring)
    root = str(tmp_path / "logs") if kind == "parquet" else f"memory://logs-{tmp_path.name}"
    return open_log_store(root, keyring=keyring)


def _stored_bytes(store: Any) -> list[bytes]:
    if isinstance(store, SqlLogStore):
        return [c.encode() for c in _sql_cells(store)]
    return [store.fs.cat_file(p) for p in store.log_files()]


def test_logs_are_encrypted_on_disk_and_read_back(log_kind: str, tmp_path: Path) -> None:
    store = _log_store(log_kind, tmp_path, OLD)
    _write(store, 5)
    stored = _stored_bytes(store)
    assert stored
    assert all(MARKER not in b for b in stored)
    if log_kind != "sqlite":
        assert all(b.startswith(MAGIC) for b in stored)
    table = store.read_inferences("m")
    assert table.num_rows == 5
    assert table.column("in.c").to_pylist() == [MARKER.decode()] * 5
    assert store.read_feedback("m").column("label").to_pylist() == [MARKER.decode()]


def test_logs_in_clear_and_under_old_and_new_keys_all_read_with_the_keyring(
        log_kind: str, tmp_path: Path) -> None:
    _write(_log_store(log_kind, tmp_path, None), 2, T0)
    _write(_log_store(log_kind, tmp_path, OLD), 3, T0 + 100)
    _write(_log_store(log_kind, tmp_path, NEW), 4, T0 + 200)
    both = _log_store(log_kind, tmp_path, OLD.rotated_to(NEW))
    assert both.read_inferences("m").num_rows == 9
    assert both.read_feedback("m").num_rows == 3
    with pytest.raises(DecryptionError, match=f"was encrypted with key id {NEW.current_id}"):
        _log_store(log_kind, tmp_path, OLD).read_inferences("m")


def test_rekey_logs_then_only_the_new_key_reads(log_kind: str, tmp_path: Path) -> None:
    _write(_log_store(log_kind, tmp_path, None), 2, T0)
    _write(_log_store(log_kind, tmp_path, OLD), 3, T0 + 100)
    rotating = _log_store(log_kind, tmp_path, OLD.rotated_to(NEW))
    if isinstance(rotating, SqlLogStore):
        assert rotating.count_rows() == 7
        assert list(rotating.rekey_rows(batch_size=4)) == [(4, 4, []), (1, 1, []), (2, 2, [])]
        assert list(rotating.rekey_rows(batch_size=4)) == [(4, 0, []), (1, 0, []), (2, 0, [])]
    else:
        files = rotating.log_files()
        assert len(files) == 4
        assert [rotating.rekey_file(f) for f in files] == [True] * 4
        assert [rotating.rekey_file(f) for f in files] == [False] * 4
        assert {key_id_of(b) for b in _stored_bytes(rotating)} == {NEW.current_id}
    assert all(MARKER not in b for b in _stored_bytes(rotating))
    assert _log_store(log_kind, tmp_path, NEW).read_inferences("m").num_rows == 5
    assert _log_store(log_kind, tmp_path, NEW).read_feedback("m").num_rows == 2
    with pytest.raises(DecryptionError, match=f"was encrypted with key id {NEW.current_id}"):
        _log_store(log_kind, tmp_path, OLD).read_inferences("m")


def test_a_tampered_log_file_is_refused(tmp_path: Path) -> None:
    store = ParquetLogStore(str(tmp_path / "logs"), keyring=OLD)
    _write(store, 2)
    path = Path(store.log_files()[0])
    assert "/feedback/" in str(path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"^Inference log file .*part-.*\.parquet failed "):
        store.read_feedback("m")
    assert store.read_inferences("m").num_rows == 2


def test_parquet_table_survives_encryption_unchanged(tmp_path: Path) -> None:
    table = records_to_tables(_records(3))[("m", 1)]
    store = ParquetLogStore(str(tmp_path / "logs"), keyring=OLD)
    store.write_inferences("m", 1, table)
    assert store.read_inferences("m").equals(table.cast(store.read_inferences("m").schema))
    assert isinstance(store.read_inferences("m"), pa.Table)


def test_rekey_rows_leaves_a_tampered_cell_and_reports_it(tmp_path: Path) -> None:
    from sqlalchemy import text

    store = _sql_store(tmp_path, OLD)
    _write(store, 3)
    with store.engine.begin() as conn:
        cell = conn.execute(text("SELECT inputs FROM inference_log WHERE id = 2")).scalar_one()
        bad = cell[:-8] + ("A" if cell[-8] != "A" else "B") + cell[-7:]
        conn.execute(text("UPDATE inference_log SET inputs = :v WHERE id = 2"), {"v": bad})
    rotating = _sql_store(tmp_path, OLD.rotated_to(NEW))
    assert list(rotating.rekey_rows()) == [(3, 2, ["inference_log row 2"]), (1, 1, [])]
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT inputs FROM inference_log WHERE id = 2")).scalar_one(
        ) == bad
