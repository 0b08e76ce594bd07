"""Signed model versions: Ed25519 signatures over what a version *is*.

A signature covers one statement, in fixed bytes::

    modelyard-version-signature:v1
    model:fraud
    version:3
    digest:<sha256 of the version's artifact manifest>

The manifest digest names every file of the version and its SHA-256, so the signature covers
the model's bytes; the name and number bind it to one version, so a signature copied to
another version (or another model) no longer verifies. The store keeps the digest that was
signed beside the signature, which lets a failure say *what* changed.

A key is known by its key id: the first 16 hex digits of the SHA-256 of its raw public key.
Verification trusts only the public keys it is given (``--trusted`` files, or the setting
``security.trusted_keys``), never the public key stored next to a signature.

>>> import tempfile
>>> files = generate_key_pair(tempfile.mkdtemp())
>>> key = load_private_key(files.private_key)
>>> sig = sign_version(key, model="fraud", version=3, digest="ab" * 32, signed_by="ann")
>>> trusted = load_trusted_keys([files.public_key])
>>> verify_version([sig], model="fraud", version=3, digest="ab" * 32, trusted=trusted).key_id \
== key.key_id
True
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from modelyard.errors import (
    ConfigurationError,
    ConflictError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    UnsafeModelError,
)

__all__ = [
    "KeyFiles",
    "SigningKey",
    "TrustedKeys",
    "VersionSignature",
    "generate_key_pair",
    "key_id_of",
    "load_private_key",
    "load_public_key",
    "load_trusted_keys",
    "sign_version",
    "signed_statement",
    "verify_signature",
    "verify_version",
]

PRIVATE_KEY_FILE = "private.pem"
PUBLIC_KEY_FILE = "public.pem"
_STATEMENT_HEADER = "modelyard-version-signature:v1"
_KEY_ID_HEX = 16


# -- keys ----------------------------------------------------------------------------------------


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """The short id of a public key: 16 hex digits of the SHA-256 of its 32 raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:_KEY_ID_HEX]


def _public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An Ed25519 private key and its id. The key itself never appears in ``repr``."""

    private_key: Ed25519PrivateKey = field(repr=False)
    key_id: str
    public_pem: str = field(repr=False)

    @classmethod
    def of(cls, private_key: Ed25519PrivateKey) -> SigningKey:
        public = private_key.public_key()
        return cls(private_key, key_id_of(public), _public_pem(public))


@dataclass(frozen=True, slots=True)
class KeyFiles:
    """Where :func:`generate_key_pair` wrote a key pair, and the pair's key id."""

    private_key: Path
    public_key: Path
    key_id: str


@dataclass(frozen=True, slots=True)
class TrustedKeys:
    """The public keys whose signatures count, by key id (and the file each came from)."""

    keys: Mapping[str, Ed25519PublicKey] = field(default_factory=dict, repr=False)
    sources: Mapping[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self.keys


def generate_key_pair(directory: str | Path) -> KeyFiles:
    """Write a new Ed25519 key pair to ``directory/private.pem`` (mode 0600, PKCS#8) and
    ``directory/public.pem``; existing files are never overwritten."""
    folder = Path(directory).expanduser()
    private_path, public_path = folder / PRIVATE_KEY_FILE, folder / PUBLIC_KEY_FILE
    for path in (private_path, public_path):
        if path.exists():
            raise ConflictError(
                f"{str(path)!r} already exists; a key pair is never overwritten.",
                hint="Choose another directory for --generate-key, or move the old pair away.",
            )
    folder.mkdir(parents=True, exist_ok=True)
    key = SigningKey.of(Ed25519PrivateKey.generate())
    private_pem = key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    # O_EXCL with mode 0600: the private key is never readable by others, not even briefly.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
    public_path.write_text(key.public_pem)
    return KeyFiles(private_path, public_path, key.key_id)


def _read_key_file(path: str | Path, what: str) -> bytes:
    file = Path(path).expanduser()
    try:
        return file.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(
            f"There is no {what} at {str(file)!r}.",
            hint="Create a key pair with: modelyard sign --generate-key DIR",
        ) from None
    except OSError as exc:
        raise InvalidInputError(
            f"Cannot read the {what} {str(file)!r}: {exc.strerror or exc}.",
            hint="Check the path and its permissions.",
        ) from None


def load_private_key(path: str | Path) -> SigningKey:
    """Read an unencrypted PEM Ed25519 private key (as ``generate_key_pair`` writes it)."""
    data = _read_key_file(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # the key is encrypted
        raise InvalidInputError(
            f"The private key {str(path)!r} is encrypted; modelyard reads unencrypted keys.",
            hint="Decrypt it to a file only you can read (chmod 600), or generate a new pair.",
        ) from None
    except (ValueError, binascii.Error):  # never echo the parser's view of a private key
        raise InvalidInputError(
            f"{str(path)!r} is not a PEM private key.",
            hint="Pass the private.pem written by: modelyard sign --generate-key DIR",
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInputError(
            f"The private key {str(path)!r} is not an Ed25519 key; modelyard signs with "
            "Ed25519 only.",
            hint="Generate one with: modelyard sign --generate-key DIR",
        )
    return SigningKey.of(key)


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """Read a PEM Ed25519 public key (``public.pem``)."""
    data = _read_key_file(path, "public key")
    return _parse_public_key(data, repr(str(path)))


def _parse_public_key(data: bytes, where: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, binascii.Error):
        raise InvalidInputError(
            f"{where} is not a PEM public key.",
            hint="Pass the public.pem written by: modelyard sign --generate-key DIR",
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInputError(
            f"The public key {where} is not an Ed25519 key; modelyard verifies Ed25519 only.",
            hint="Pass the public.pem written by: modelyard sign --generate-key DIR",
        )
    return key


def load_trusted_keys(paths: Iterable[str | Path]) -> TrustedKeys:
    """Read the public keys whose signatures count; at least one is needed."""
    keys: dict[str, Ed25519PublicKey] = {}
    sources: dict[str, str] = {}
    for path in paths:
        key = load_public_key(path)
        kid = key_id_of(key)
        keys[kid], sources[kid] = key, str(path)
    if not keys:
        raise ConfigurationError(
            "No trusted public key is configured, so no signature can be checked.",
            hint="Pass --trusted public.pem, or set MODELYARD_SECURITY__TRUSTED_KEYS='[\"/path/"
            "public.pem\"]'.",
        )
    return TrustedKeys(keys, sources)


# -- signatures ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VersionSignature:
    """One signature of one version, as stored in the registry."""

    model: str
    version: int
    key_id: str
    public_key: str  # PEM, informative only: verification uses trusted keys
    signature: str  # base64 of the 64 signature bytes
    digest: str  # the artifact manifest digest that was signed
    signed_at: datetime
    signed_by: str

    @property
    def uri(self) -> str:
        return f"models:/{self.model}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "version": self.version, "key_id": self.key_id,
            "public_key": self.public_key, "signature": self.signature, "digest": self.digest,
            "signed_at": self.signed_at.isoformat(), "signed_by": self.signed_by,
        }


def signed_statement(model: str, version: int, digest: str) -> bytes:
    """The exact bytes a version signature covers."""
    if "\n" in model or "\n" in digest:
        raise InvalidInputError(f"A model name or digest cannot hold a newline. Got {model!r}.")
    return (f"{_STATEMENT_HEADER}\nmodel:{model}\nversion:{int(version)}\n"
            f"digest:{digest}\n").encode()


def sign_version(key: SigningKey, *, model: str, version: int, digest: str, signed_by: str,
                 signed_at: datetime | None = None) -> VersionSignature:
    """Sign version ``version`` of ``model`` whose artifact manifest digest is ``digest``."""
    raw = key.private_key.sign(signed_statement(model, version, digest))
    return VersionSignature(
        model=model, version=int(version), key_id=key.key_id, public_key=key.public_pem,
        signature=base64.b64encode(raw).decode("ascii"), digest=digest,
        signed_at=signed_at or datetime.now(UTC), signed_by=signed_by,
    )


def verify_signature(sig: VersionSignature, public_key: Ed25519PublicKey, *, model: str,
                     version: int, digest: str) -> bool:
    """True if ``sig`` is ``public_key``'s signature of this model, version and digest."""
    try:
        raw = base64.b64decode(sig.signature, validate=True)
        public_key.verify(raw, signed_statement(model, version, digest))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def verify_version(signatures: Sequence[VersionSignature], *, model: str, version: int,
                   digest: str, trusted: TrustedKeys) -> VersionSignature:
    """The signature by a trusted key that verifies for this version; else the error that says
    why none does.

    Raises :class:`UnsafeModelError` when no trusted key signed the version, and
    :class:`IntegrityError` when a trusted key's signature exists but does not match (the
    artifact changed, or the signature was made for another version).
    """
    uri = f"models:/{model}/{version}"
    by_trusted = [s for s in signatures if s.key_id in trusted]
    for sig in by_trusted:
        if verify_signature(sig, trusted.keys[sig.key_id], model=model, version=version,
                            digest=digest):
            return sig
    if by_trusted:
        sig = by_trusted[0]
        if sig.digest != digest:
            why = (f"it signs content {sig.digest[:12]} but the version holds {digest[:12]}: "
                   "its artifact was replaced, or the signature was copied from another version")
        else:
            why = ("it does not verify for this model and version: it was altered, or copied "
                   "from another version")
        raise IntegrityError(
            f"The signature of {uri} by trusted key {sig.key_id} is not valid: {why}.",
            hint="Do not serve it: register the model again and sign the new version "
            "(modelyard sign models:/NAME/VERSION --key private.pem).",
        )
    others = sorted({s.key_id for s in signatures})
    signed = f"it is signed only by untrusted key(s) {', '.join(others)}" if others else (
        "it is not signed")
    raise UnsafeModelError(
        f"{uri} has no signature by a trusted key ({signed}); trusted keys: "
        f"{', '.join(sorted(trusted.keys))}.",
        hint=f"Sign it with a trusted key (modelyard sign {uri} --key private.pem), or trust "
        "its signer's key (--trusted public.pem or MODELYARD_SECURITY__TRUSTED_KEYS).",
    )
