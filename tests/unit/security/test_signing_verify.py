"""What a version signature binds (content digest, model name, version number) and how
verification fails for each way a signature can be wrong."""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.errors import IntegrityError, InvalidInputError, UnsafeModelError
from modelyard.security.signing import (
    SigningKey,
    TrustedKeys,
    VersionSignature,
    sign_version,
    signed_statement,
    verify_signature,
    verify_version,
)

DIGEST = "a1" * 32
OTHER_DIGEST = "b2" * 32
SIGNER = SigningKey.of(Ed25519PrivateKey.generate())
STRANGER = SigningKey.of(Ed25519PrivateKey.generate())
TRUSTED = TrustedKeys({SIGNER.key_id: SIGNER.private_key.public_key()})


def _sign(key: SigningKey = SIGNER, model: str = "fraud", version: int = 3,
          digest: str = DIGEST) -> VersionSignature:
    return sign_version(key, model=model, version=version, digest=digest, signed_by="ann",
                        signed_at=datetime(2024, 5, 1, tzinfo=UTC))


def test_the_statement_is_fixed_bytes() -> None:
    assert signed_statement("fraud", 3, DIGEST) == (
        b"modelyard-version-signature:v1\nmodel:fraud\nversion:3\ndigest:" + DIGEST.encode()
        + b"\n")


def test_a_newline_cannot_forge_a_statement() -> None:
    with pytest.raises(InvalidInputError, match="cannot hold a newline"):
        signed_statement("fraud\nversion:9", 3, DIGEST)


def test_a_signature_records_what_it_signed() -> None:
    sig = _sign()
    assert (sig.model, sig.version, sig.digest, sig.key_id, sig.signed_by) == (
        "fraud", 3, DIGEST, SIGNER.key_id, "ann")
    assert sig.uri == "models:/fraud/3"
    assert len(base64.b64decode(sig.signature)) == 64
    assert sig.public_key == SIGNER.public_pem
    assert sig.to_dict()["signed_at"] == "2024-05-01T00:00:00+00:00"


def test_a_valid_signature_by_a_trusted_key_verifies() -> None:
    sig = _sign()
    assert verify_version([sig], model="fraud", version=3, digest=DIGEST, trusted=TRUSTED) == sig


def test_the_trusted_signature_is_found_among_others() -> None:
    stranger, good = _sign(STRANGER), _sign()
    found = verify_version([stranger, good], model="fraud", version=3, digest=DIGEST,
                           trusted=TRUSTED)
    assert found == good


@pytest.mark.parametrize(
    ("model", "version", "digest"),
    [("fraud", 4, DIGEST), ("churn", 3, DIGEST), ("fraud", 3, OTHER_DIGEST)],
    ids=["other-version", "other-model", "other-content"],
)
def test_a_signature_binds_model_version_and_content(model: str, version: int,
                                                     digest: str) -> None:
    sig = _sign()
    public = SIGNER.private_key.public_key()
    assert verify_signature(sig, public, model="fraud", version=3, digest=DIGEST)
    assert not verify_signature(sig, public, model=model, version=version, digest=digest)


def _moved(sig: VersionSignature) -> VersionSignature:
    # A database edit copies version 3's row to version 4 (same content in this example).
    return dataclasses.replace(sig, version=4)


def _flipped(sig: VersionSignature) -> VersionSignature:
    raw = bytearray(base64.b64decode(sig.signature))
    raw[0] ^= 1
    return dataclasses.replace(sig, signature=base64.b64encode(bytes(raw)).decode())


@pytest.mark.parametrize(
    ("signatures", "version", "digest", "error", "match"),
    [
        ([], 3, DIGEST, UnsafeModelError,
         r"^models:/fraud/3 has no signature by a trusted key \(it is not signed\); trusted "
         rf"keys: {SIGNER.key_id}\. Sign it with a trusted key \(modelyard sign models:/fraud/3 "
         r"--key private\.pem\), or trust its signer's key"),
        ([_sign(STRANGER)], 3, DIGEST, UnsafeModelError,
         rf"signed only by untrusted key\(s\) {STRANGER.key_id}\).*--trusted public\.pem"),
        ([_sign()], 3, OTHER_DIGEST, IntegrityError,
         rf"by trusted key {SIGNER.key_id} is not valid: it signs content a1a1a1a1a1a1 but the "
         r"version holds b2b2b2b2b2b2: its artifact was replaced"),
        ([_moved(_sign())], 4, DIGEST, IntegrityError,
         r"^The signature of models:/fraud/4 .* does not verify for this model and version"),
        ([_flipped(_sign())], 3, DIGEST, IntegrityError, r"does not verify"),
        ([dataclasses.replace(_sign(), signature="***")], 3, DIGEST, IntegrityError,
         r"does not verify"),
    ],
    ids=["unsigned", "untrusted-key", "changed-content", "moved-to-version-4",
         "altered-bytes", "not-base64"],
)
def test_each_wrong_signature_is_refused_with_its_reason(
        signatures: list[VersionSignature], version: int, digest: str,
        error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match) as info:
        verify_version(signatures, model="fraud", version=version, digest=digest,
                       trusted=TRUSTED)
    assert "\n" not in str(info.value)


def test_the_stored_public_key_is_never_trusted_by_itself() -> None:
    # An attacker who writes a row names a trusted key id but brings their own public key.
    forged = dataclasses.replace(_sign(STRANGER), key_id=SIGNER.key_id,
                                 public_key=STRANGER.public_pem)
    with pytest.raises(IntegrityError, match="does not verify"):
        verify_version([forged], model="fraud", version=3, digest=DIGEST, trusted=TRUSTED)


@settings(max_examples=40, deadline=None)
@given(
    model=st.from_regex(r"[a-z][a-z0-9_-]{0,20}", fullmatch=True),
    version=st.integers(1, 10_000),
    digest=st.text("0123456789abcdef", min_size=64, max_size=64),
    other_version=st.integers(1, 10_000),
)
def test_a_signature_verifies_for_exactly_its_own_version(
        model: str, version: int, digest: str, other_version: int) -> None:
    sig = sign_version(SIGNER, model=model, version=version, digest=digest, signed_by="ann")
    public = SIGNER.private_key.public_key()
    assert verify_signature(sig, public, model=model, version=version, digest=digest)
    assert verify_signature(sig, public, model=model, version=other_version,
                            digest=digest) == (other_version == version)
    assert not verify_signature(sig, STRANGER.private_key.public_key(), model=model,
                                version=version, digest=digest)
