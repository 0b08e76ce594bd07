"""Sensitive columns: the key file, keyed hashes, redaction of log batches, the writer hook,
and marking columns in a signature."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modelyard.core.inference import InferenceRecord
from modelyard.core.signature import ColumnSpec, Schema, Signature, TensorSpec
from modelyard.errors import ConfigurationError, InvalidInputError
from modelyard.monitoring.inference_log import InferenceLog
from modelyard.monitoring.sensitive import (
    SensitiveColumns,
    hmac_hex,
    load_hmac_key,
    redact_table,
)

KEY = bytes(range(32))


def _batch() -> pa.Table:
    return pa.table({
        "request_id": ["a", "b", "c", "d"],
        "in.ssn": ["123-45-6789", "987-65-4321", "123-45-6789", None],
        "in.zip": pa.array([75001, 75002, 75001, 75003], pa.int64()),
        "in.score": [0.5, float("nan"), 0.5, 1.0],
        "in.age": [30.0, 40.0, 50.0, 60.0],
        "out.predict": [1, 0, 1, 0],
    })


# -- the key --------------------------------------------------------------------------------------
def test_key_is_created_once_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "home" / "log-hmac.key"
    key = load_hmac_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_hmac_key(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["log-hmac.key"]  # no temp file left


def test_concurrent_first_use_agrees_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "log-hmac.key"
    keys: list[bytes] = []
    start = threading.Barrier(8)

    def get() -> None:
        start.wait()
        keys.append(load_hmac_key(path))

    threads = [threading.Thread(target=get) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(keys) == 8
    assert len(set(keys)) == 1


@pytest.mark.parametrize(("content", "mode", "match"), [
    ("ab" * 32, 0o644, "readable by other users"),
    ("not hex", 0o600, "not at least 16 bytes of hex"),
    ("abcd", 0o600, "not at least 16 bytes of hex"),
], ids=["world-readable", "not-hex", "too-short"])
def test_a_bad_key_file_is_refused(tmp_path: Path, content: str, mode: int, match: str) -> None:
    path = tmp_path / "log-hmac.key"
    path.write_text(content)
    os.chmod(path, mode)
    with pytest.raises(ConfigurationError, match=match):
        load_hmac_key(path)


# -- hashing and redaction -------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "data"), [
    ("123-45-6789", b"123-45-6789"),
    ("é", "é".encode()),
    (75001, b"75001"),
    (0.5, b"0.5"),
    (True, b"true"),
    (b"\x00\x01", b"\x00\x01"),
], ids=["text", "unicode", "int", "float", "bool", "bytes"])
def test_hmac_hex_is_hmac_sha256_of_the_value_text(value: object, data: bytes) -> None:
    assert hmac_hex(KEY, value) == hmac.new(KEY, data, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("value", [None, float("nan")], ids=["none", "nan"])
def test_missing_values_stay_missing(value: object) -> None:
    assert hmac_hex(KEY, value) is None


def test_hash_mode_replaces_values_by_keyed_hashes() -> None:
    out = redact_table(_batch(), {"ssn", "zip", "score"}, "hash", KEY)
    assert out.column_names == _batch().column_names  # same columns, same order
    ssn = out.column("in.ssn").to_pylist()
    assert ssn == [hmac_hex(KEY, "123-45-6789"), hmac_hex(KEY, "987-65-4321"),
                   hmac_hex(KEY, "123-45-6789"), None]
    assert out.column("in.zip").to_pylist()[0] == hmac_hex(KEY, 75001)
    assert out.column("in.score").to_pylist() == [hmac_hex(KEY, 0.5), None,
                                                   hmac_hex(KEY, 0.5), hmac_hex(KEY, 1.0)]
    assert out.column("in.age").to_pylist() == [30.0, 40.0, 50.0, 60.0]
    assert all(out.column(c).type == pa.string() for c in ("in.ssn", "in.zip", "in.score"))
    other = redact_table(_batch(), {"ssn"}, "hash", b"another key, 32 bytes long......")
    assert other.column("in.ssn")[0] != out.column("in.ssn")[0]


def test_list_columns_are_hashed_per_value() -> None:
    table = pa.table({"in.codes": [[1, 2], [1, 2], None]})
    out = redact_table(table, {"codes"}, "hash", KEY).column("in.codes").to_pylist()
    assert out == [hmac_hex(KEY, [1, 2]), hmac_hex(KEY, [1, 2]), None]


def test_drop_mode_removes_the_columns() -> None:
    out = redact_table(_batch(), {"ssn", "zip", "not-logged"}, "drop")
    assert out.column_names == ["request_id", "in.score", "in.age", "out.predict"]


def test_only_input_columns_are_touched() -> None:
    table = pa.table({"out.ssn": ["x"], "in.ssn": ["x"]})
    assert redact_table(table, {"ssn"}, "drop").column_names == ["out.ssn"]


def test_hash_mode_needs_a_key() -> None:
    with pytest.raises(ConfigurationError, match="needs the inference log's HMAC key"):
        redact_table(_batch(), {"ssn"}, "hash", None)


# -- the writer ------------------------------------------------------------------------------------
class _Store:
    def __init__(self) -> None:
        self.tables: list[pa.Table] = []

    def write_inferences(self, model: str, version: int, table: pa.Table) -> None:
        self.tables.append(table)


def _record(i: int, version: int = 1) -> InferenceRecord:
    inputs = {"ssn": np.array([f"111-22-{i:04d}"], object), "age": np.array([40.0 + i])}
    return InferenceRecord(f"r{i}", "people", version, 1.7e9 + i, inputs,
                           {"predict": np.array([i % 2])}, 1.0, "v2")


@pytest.mark.parametrize("mode", ["hash", "drop"])
def test_the_writer_redacts_before_the_store_sees_a_batch(mode: str) -> None:
    store = _Store()
    calls: list[tuple[str, int]] = []
    key_reads: list[int] = []

    def sensitive(model: str, version: int) -> frozenset[str]:
        calls.append((model, version))
        return frozenset({"ssn"}) if version == 1 else frozenset()

    def key() -> bytes:
        key_reads.append(1)
        return KEY

    sink = InferenceLog(store, sensitive_columns=sensitive,  # type: ignore[arg-type]
                        sensitive_mode=mode, hmac_key=key)  # type: ignore[arg-type]
    for i in range(3):
        sink.emit(_record(i))
    sink.emit(_record(9, version=2))
    sink.flush()
    sink.emit(_record(4))
    sink.flush()
    v1 = [t for t in store.tables if t.column("version")[0].as_py() == 1]
    v2 = [t for t in store.tables if t.column("version")[0].as_py() == 2]
    assert v2[0].column("in.ssn").to_pylist() == ["111-22-0009"]  # not marked in version 2
    clear = {f"r{i}": f"111-22-{i:04d}" for i in range(5)}
    for table in v1:
        assert "in.age" in table.column_names
        if mode == "drop":
            assert "in.ssn" not in table.column_names
            continue
        for rid, logged in zip(table.column("request_id").to_pylist(),
                               table.column("in.ssn").to_pylist(), strict=True):
            assert logged == hmac_hex(KEY, clear[rid])
    assert sum(t.num_rows for t in v1) == 4
    assert key_reads == ([1] if mode == "hash" else [])  # read once, when first needed
    assert sorted(set(calls)) == [("people", 1), ("people", 2)]


def test_a_failing_lookup_fails_the_batch_instead_of_logging_in_clear() -> None:
    store = _Store()

    def sensitive(model: str, version: int) -> frozenset[str]:
        raise ConnectionError("registry down")

    sink = InferenceLog(store, sensitive_columns=sensitive,  # type: ignore[arg-type]
                        sensitive_mode="drop")
    sink.emit(_record(0))
    assert sink.flush() == 0
    assert store.tables == []
    assert sink.stats.failed == 1


def test_hashing_without_a_key_is_refused_up_front() -> None:
    with pytest.raises(ConfigurationError, match="without an HMAC key"):
        InferenceLog(_Store(), sensitive_columns=lambda m, v: frozenset())  # type: ignore[arg-type]


def test_sensitive_columns_caches_each_version() -> None:
    looked_up: list[tuple[str, int]] = []
    sig = Signature.infer({"ssn": ["1"], "age": [2]}).with_sensitive(["ssn"])

    def signature_of(model: str, version: int) -> Signature | None:
        looked_up.append((model, version))
        return sig if version == 1 else None

    lookup = SensitiveColumns(signature_of)
    assert lookup("m", 1) == {"ssn"}
    assert lookup("m", 1) == {"ssn"}
    assert lookup("m", 2) == frozenset()
    assert looked_up == [("m", 1), ("m", 2)]


# -- signatures ------------------------------------------------------------------------------------
def test_sensitive_is_serialised_only_when_set() -> None:
    sig = Signature.infer({"ssn": ["1"], "age": [2]})
    plain = sig.to_dict()
    assert "sensitive" not in plain["inputs"]["columns"][0]  # stored signatures unchanged
    marked = sig.with_sensitive(["ssn"])
    assert marked.to_dict()["inputs"]["columns"][0]["sensitive"] is True
    assert Signature.from_dict(marked.to_dict()) == marked
    assert Signature.from_dict(plain) == sig  # absent means False
    assert marked.sensitive_columns == {"ssn"}
    assert sig.sensitive_columns == frozenset()
    assert marked.inputs.columns[1] == ColumnSpec("age", "int64", False)
    assert sig.with_sensitive([]) is sig


@pytest.mark.parametrize(("sig", "names", "match"), [
    (Signature.infer({"ssn": ["1"], "age": [2]}), ["SSN", "age"],
     r"Cannot mark \['SSN'\] sensitive: the model's input columns are \['ssn', 'age'\]"),
    (Signature(Schema("tensors", tensors=(TensorSpec("x", "float32", (-1, 3)),))), ["x"],
     "the model takes tensors, not named columns"),
], ids=["unknown-column", "tensor-model"])
def test_marking_unknown_columns_is_an_error(sig: Signature, names: list[str],
                                            match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        sig.with_sensitive(names)
