"""Ed25519 key files: generation (modes, no overwrite), loading, key ids, and the errors for
every kind of wrong file, none of which may echo a private key's bytes."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from modelyard.errors import ConfigurationError, ConflictError, InvalidInputError, NotFoundError
from modelyard.security.signing import (
    KeyFiles,
    generate_key_pair,
    key_id_of,
    load_private_key,
    load_public_key,
    load_trusted_keys,
)

MARKER = "TOPSECRETKEYMATERIAL"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    return generate_key_pair(tmp_path_factory.mktemp("keys") / "signer")


def test_generate_writes_a_private_key_only_the_owner_can_read(pair: KeyFiles) -> None:
    assert stat.S_IMODE(pair.private_key.stat().st_mode) == 0o600
    assert pair.private_key.name == "private.pem"
    assert pair.public_key.name == "public.pem"
    assert pair.private_key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert pair.public_key.read_text().startswith("-----BEGIN PUBLIC KEY-----")


def test_key_id_is_a_short_hash_of_the_raw_public_key(pair: KeyFiles) -> None:
    key = load_private_key(pair.private_key)
    public = load_public_key(pair.public_key)
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert pair.key_id == key.key_id == key_id_of(public)
    assert pair.key_id == hashlib.sha256(raw).hexdigest()[:16]


def test_two_generated_keys_have_different_ids(pair: KeyFiles, tmp_path: Path) -> None:
    assert generate_key_pair(tmp_path).key_id != pair.key_id


@pytest.mark.parametrize("existing", ["private.pem", "public.pem"], ids=["private", "public"])
def test_generate_never_overwrites_a_key(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_text("keep me")
    with pytest.raises(ConflictError, match="already exists; a key pair is never overwritten"):
        generate_key_pair(tmp_path)
    assert (tmp_path / existing).read_text() == "keep me"
    assert len(list(tmp_path.iterdir())) == 1


def test_repr_of_a_signing_key_shows_no_key_material(pair: KeyFiles) -> None:
    key = load_private_key(pair.private_key)
    text = repr(key)
    assert pair.key_id in text
    assert "PRIVATE" not in text
    assert "PUBLIC" not in text


def _ec_private_pem() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())


def _encrypted_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"))


_FAKE_KEY = f"-----BEGIN PRIVATE KEY-----\n{MARKER}\n-----END PRIVATE KEY-----\n".encode()


@pytest.mark.parametrize(
    ("content", "error", "match"),
    [
        (None, NotFoundError, r"There is no private key at .*missing\.pem"),
        (b"hello", InvalidInputError, r"is not a PEM private key"),
        (_FAKE_KEY, InvalidInputError, r"is not a PEM private key"),
        (_encrypted_pem(), InvalidInputError, r"is encrypted; modelyard reads unencrypted"),
        (_ec_private_pem(), InvalidInputError, r"is not an Ed25519 key"),
    ],
    ids=["missing", "not-pem", "garbled-pem", "encrypted", "ec-key"],
)
def test_wrong_private_key_files(tmp_path: Path, content: bytes | None,
                                 error: type[Exception], match: str) -> None:
    path = tmp_path / "missing.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=match) as info:
        load_private_key(path)
    assert MARKER not in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("content", "error", "match"),
    [
        (None, NotFoundError, r"There is no public key at"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", InvalidInputError,
         r"is not a PEM public key"),
        (ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
         InvalidInputError, r"is not an Ed25519 key; modelyard verifies Ed25519 only"),
    ],
    ids=["missing", "garbled", "ec-key"],
)
def test_wrong_public_key_files(tmp_path: Path, content: bytes | None,
                                error: type[Exception], match: str) -> None:
    path = tmp_path / "public.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=match):
        load_public_key(path)


def test_a_private_key_passed_as_public_key_is_refused(pair: KeyFiles) -> None:
    with pytest.raises(InvalidInputError, match="is not a PEM public key"):
        load_public_key(pair.private_key)


def test_trusted_keys_are_indexed_by_key_id(pair: KeyFiles, tmp_path: Path) -> None:
    other = generate_key_pair(tmp_path)
    trusted = load_trusted_keys([pair.public_key, str(other.public_key)])
    assert sorted(trusted.keys) == sorted([pair.key_id, other.key_id])
    assert trusted.sources[other.key_id] == str(other.public_key)
    assert len(trusted) == 2
    assert pair.key_id in trusted


def test_no_trusted_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"No trusted public key is configured.*"
                       r"--trusted public\.pem"):
        load_trusted_keys([])
