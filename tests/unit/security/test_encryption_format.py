"""The encrypted-at-rest format: round trips, streaming, and every way of tampering with it."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.errors import DecryptionError, IntegrityError
from modelyard.security.encryption import (
    DEFAULT_CHUNK_SIZE,
    HEADER_SIZE,
    MAGIC,
    TAG_SIZE,
    Keyring,
    decrypt_bytes,
    decrypt_chunks,
    decrypt_stream,
    encrypt_bytes,
    encrypt_chunks,
    encrypt_stream,
    generate_key,
    is_encrypted,
    key_id_of,
)

RING = Keyring(bytes(range(32)))
OTHER = Keyring(bytes(range(1, 33)))
CS = 64  # a small chunk size, so that chunk boundaries are cheap to reach


def _data(n: int) -> bytes:
    return bytes((i * 7 + 3) % 251 for i in range(n))


def _chunks(blob: bytes, cs: int = CS) -> list[bytes]:
    body = blob[HEADER_SIZE:]
    return [body[i:i + cs + TAG_SIZE] for i in range(0, len(body), cs + TAG_SIZE)]


SIZES = [0, 1, CS - 1, CS, CS + 1, 2 * CS, 3 * CS + 5]


@pytest.mark.parametrize("size", SIZES, ids=[f"{n}B" for n in SIZES])
def test_bytes_and_stream_round_trip_around_chunk_boundaries(size: int) -> None:
    data = _data(size)
    sealed = encrypt_bytes(data, RING, chunk_size=CS)
    n_chunks = max(1, -(-size // CS))
    assert len(sealed) == HEADER_SIZE + n_chunks * TAG_SIZE + size
    assert decrypt_bytes(sealed, RING) == data
    out = io.BytesIO()
    written = encrypt_stream(io.BytesIO(data), out, RING, chunk_size=CS)
    assert written == len(sealed)
    back = io.BytesIO()
    assert decrypt_stream(io.BytesIO(out.getvalue()), back, RING) == size
    assert back.getvalue() == data


def test_default_chunk_size_round_trips_a_multi_chunk_object() -> None:
    data = _data(5000) * 520  # ~2.5 MiB: three 1 MiB chunks
    sealed = encrypt_bytes(data, RING)
    assert len(sealed) == HEADER_SIZE + 3 * TAG_SIZE + len(data)
    assert decrypt_bytes(sealed, RING) == data
    assert [len(c) for c in decrypt_chunks(io.BytesIO(sealed), RING)] == [
        DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_SIZE, len(data) - 2 * DEFAULT_CHUNK_SIZE]


@settings(max_examples=150, deadline=None)
@given(size=st.integers(0, 6 * 16), cs=st.sampled_from([1, 7, 16]),
       cuts=st.lists(st.integers(0, 6 * 16), max_size=6))
def test_any_size_and_any_piece_split_round_trips(size: int, cs: int, cuts: list[int]) -> None:
    data = _data(size)
    bounds = sorted({0, size, *(c for c in cuts if c <= size)})
    pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
    sealed = b"".join(encrypt_chunks(pieces, RING, chunk_size=cs))
    assert sealed == sealed[:HEADER_SIZE] + b"".join(_chunks(sealed, cs))
    assert len(sealed) == HEADER_SIZE + max(1, -(-size // cs)) * TAG_SIZE + size
    assert decrypt_bytes(sealed, RING) == data


class _Trickle(io.RawIOBase):
    """A source that answers every read with at most 3 bytes (as sockets and raw files may)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._data.read(3 if size < 0 else min(size, 3))


def test_short_reads_are_completed() -> None:
    data = _data(5 * CS + 3)
    sealed = encrypt_bytes(data, RING, chunk_size=CS)
    assert b"".join(decrypt_chunks(_Trickle(sealed), RING)) == data


def test_encryption_streams_with_one_chunk_of_lookahead() -> None:
    consumed = 0

    def pieces() -> Iterator[bytes]:
        nonlocal consumed
        for _ in range(1000):  # 1000 chunks' worth, never all in memory
            consumed += CS
            yield _data(CS)

    out = encrypt_chunks(pieces(), RING, chunk_size=CS)
    assert len(next(out)) == HEADER_SIZE
    assert len(next(out)) == CS + TAG_SIZE
    assert consumed == 2 * CS  # the first chunk is sealed once a second one has begun


def test_the_same_plaintext_encrypts_differently_each_time() -> None:
    a, b = encrypt_bytes(b"same", RING), encrypt_bytes(b"same", RING)
    assert a != b
    assert a[:len(MAGIC)] == MAGIC


def test_header_names_the_key_and_plaintext_has_none() -> None:
    sealed = encrypt_bytes(b"x", RING)
    assert is_encrypted(sealed)
    assert key_id_of(sealed) == RING.current_id
    assert not is_encrypted(b"PAR1....")
    assert key_id_of(b"PAR1" * 20) is None
    assert key_id_of(sealed[:HEADER_SIZE - 1]) is None


# -- tampering ---------------------------------------------------------------------------------
SEALED = encrypt_bytes(_data(150), RING, chunk_size=CS)  # header + chunks of 64, 64, 22 bytes
KEY_ID = range(13, 21)  # offsets of the key id in the header


@pytest.mark.parametrize(("start", "stop"), [
    (0, len(MAGIC)), (len(MAGIC), 13), (21, HEADER_SIZE), (HEADER_SIZE, len(SEALED))],
    ids=["magic", "version+chunk-size", "salt+nonce-prefix", "chunks"])
def test_flipping_any_byte_is_detected_as_tampering(start: int, stop: int) -> None:
    for pos in range(start, stop):
        for bit in (0x01, 0x80):
            bad = bytearray(SEALED)
            bad[pos] ^= bit
            with pytest.raises(IntegrityError):
                decrypt_bytes(bytes(bad), RING)


def test_a_changed_key_id_reads_as_a_key_the_keyring_lacks() -> None:
    for pos in KEY_ID:
        bad = bytearray(SEALED)
        bad[pos] ^= 0x01
        with pytest.raises(DecryptionError, match="was encrypted with key id"):
            decrypt_bytes(bytes(bad), RING)


def _rebuild(chunks: list[bytes]) -> bytes:
    return SEALED[:HEADER_SIZE] + b"".join(chunks)


c0, c1, c2 = _chunks(SEALED)
OTHER_OBJECT = _chunks(encrypt_bytes(_data(150), RING, chunk_size=CS))


@pytest.mark.parametrize(("sealed", "match"), [
    (_rebuild([c1, c0, c2]), "at chunk 0"),
    (_rebuild([c0, c2]), "at chunk 1"),
    (_rebuild([c0, c1]), "at chunk 1"),
    (_rebuild([c0, c1, c2[:-1]]), "at chunk 2"),
    (_rebuild([c0, c1, c2[:TAG_SIZE - 1]]), "is cut short: chunk 2"),
    (_rebuild([c0, c1, c2, b"x"]), "at chunk 2"),  # the byte reads as part of chunk 2
    (_rebuild([c0, c1, c2, c2]), "at chunk 2"),
    (_rebuild([c0, OTHER_OBJECT[1], c2]), "at chunk 1"),
    (SEALED[:HEADER_SIZE], "is cut short: chunk 0"),
    (SEALED[:HEADER_SIZE - 4], "header is cut short"),
], ids=["reordered", "middle-dropped", "last-dropped", "last-truncated", "last-stub",
        "byte-appended", "chunk-appended", "chunk-from-another-object", "header-only",
        "header-truncated"])
def test_reordered_dropped_truncated_or_extended_chunks_are_detected(
        sealed: bytes, match: str) -> None:
    with pytest.raises(IntegrityError, match=match):
        decrypt_bytes(sealed, RING)


def test_unknown_format_version_says_so() -> None:
    bad = bytearray(SEALED)
    bad[len(MAGIC)] = 2
    with pytest.raises(IntegrityError, match="encryption format version 2; this modelyard "
                                             "reads version 1"):
        decrypt_bytes(bytes(bad), RING)


def test_tampering_error_says_the_key_was_right() -> None:
    bad = bytearray(SEALED)
    bad[-1] ^= 1
    with pytest.raises(IntegrityError, match=rf"failed authentication at chunk 2: .*\(its key "
                                             rf"id {RING.current_id} is the configured key's"):
        decrypt_bytes(bytes(bad), RING, name="artifact blob abc")


# -- keys ----------------------------------------------------------------------------------------
def test_a_wrong_key_names_both_key_ids() -> None:
    with pytest.raises(DecryptionError, match=(
            rf"^Artifact blob abc was encrypted with key id {RING.current_id}; the configured "
            rf"key is {OTHER.current_id}\. Set MODELYARD_SECURITY__ENCRYPTION_KEY")):
        decrypt_bytes(SEALED, OTHER, name="artifact blob abc")


def test_no_key_configured_is_a_clear_error() -> None:
    with pytest.raises(DecryptionError, match=rf"is encrypted with key id {RING.current_id}, "
                                              "but no encryption key is configured"):
        decrypt_bytes(SEALED, None)


def test_older_keys_in_the_keyring_still_read() -> None:
    rotated = RING.rotated_to(OTHER)
    assert rotated.current_id == OTHER.current_id
    assert decrypt_bytes(SEALED, rotated) == _data(150)
    assert key_id_of(encrypt_bytes(b"new", rotated)) == OTHER.current_id


def test_a_fresh_key_cannot_read_old_data() -> None:
    with pytest.raises(DecryptionError, match="the configured key is"):
        decrypt_bytes(SEALED, Keyring(generate_key()))


FULL = encrypt_bytes(_data(2 * CS), RING, chunk_size=CS)  # two full chunks, the last one final
f0, f1 = _chunks(FULL)


@pytest.mark.parametrize(("sealed", "match"), [
    (FULL[:HEADER_SIZE] + f0, "at chunk 0"),
    (FULL[:HEADER_SIZE] + f0 + f1 + f1, "at chunk 1"),
    (FULL[:HEADER_SIZE] + f0 + f1 + b"\x00" * TAG_SIZE, "at chunk 1"),
], ids=["last-full-chunk-dropped", "full-chunk-appended", "empty-chunk-appended"])
def test_an_exact_multiple_of_the_chunk_size_cannot_be_cut_or_extended(
        sealed: bytes, match: str) -> None:
    assert decrypt_bytes(FULL, RING) == _data(2 * CS)
    with pytest.raises(IntegrityError, match=match):
        decrypt_bytes(sealed, RING)


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview,
                                  lambda b: memoryview(b).cast("b")],
                         ids=["bytes", "bytearray", "memoryview", "signed-memoryview"])
def test_any_byte_buffer_encrypts(wrap: Any) -> None:
    data = _data(3 * CS + 1)
    assert decrypt_bytes(encrypt_bytes(wrap(data), RING, chunk_size=CS), RING) == data
    pieces = [wrap(data[:100]), wrap(data[100:])]
    assert decrypt_bytes(b"".join(encrypt_chunks(pieces, RING, chunk_size=CS)), RING) == data
