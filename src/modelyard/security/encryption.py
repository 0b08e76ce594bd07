"""Encryption at rest: AES-256-GCM in a framed, chunked format that streams.

An encrypted object is a 44-byte header followed by chunks::

    header  magic b"\\x89MYENC\\r\\n" | format version (1 byte) | chunk size (uint32)
            | key id (8 bytes) | salt (16 bytes) | nonce prefix (7 bytes)
    chunk   AES-256-GCM(chunk plaintext) || 16-byte tag        (repeated)

The key id is the first 16 hex digits of the SHA-256 of the key, so an object names the key it
needs without revealing it. Each object is sealed with its own key, derived from the master key
and the object's random salt (HKDF-SHA256), so the nonces of different objects never collide
however many objects one key protects. A chunk's nonce is the nonce prefix, the chunk index and
a final-chunk flag; its associated data binds the whole header, the index and the flag. Every
chunk but the last holds exactly ``chunk size`` bytes of plaintext, and only the last carries
the flag, so a chunk changed, swapped, reordered, dropped or cut short fails authentication,
and so does data appended after the last chunk. Objects stream through in ``chunk size``
pieces: a large artifact never sits whole in memory.

A wrong key is a :class:`~modelyard.errors.DecryptionError` naming both key ids; tampering is
an :class:`~modelyard.errors.IntegrityError`. Data written before encryption was turned on has
no header and is told apart by :func:`is_encrypted`.

Example:
    >>> ring = Keyring(generate_key())
    >>> sealed = encrypt_bytes(b"secret", ring)
    >>> is_encrypted(sealed), decrypt_bytes(sealed, ring)
    (True, b'secret')
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
import re
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from modelyard.errors import ConfigurationError, DecryptionError, IntegrityError
from modelyard.settings import SecuritySettings

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "KEY_SIZE",
    "MAGIC",
    "TAG_SIZE",
    "Keyring",
    "decrypt_bytes",
    "decrypt_chunks",
    "decrypt_stream",
    "encode_key",
    "encrypt_bytes",
    "encrypt_chunks",
    "encrypt_stream",
    "generate_key",
    "is_encrypted",
    "key_id",
    "key_id_of",
    "keyring_from_settings",
    "parse_keys",
    "read_key_file",
]

MAGIC = b"\x89MYENC\r\n"
"""First bytes of every encrypted object (the \\x89 and \\r\\n, as in PNG, catch text-mode
mangling and cannot start JSON, Parquet, zip or pickle data)."""

FORMAT_VERSION = 1
KEY_SIZE = 32
DEFAULT_CHUNK_SIZE = 1 << 20
MAX_CHUNK_SIZE = 64 << 20
"""A header asking for larger chunks is refused as corrupt (it would make a reader allocate
whatever a tampered header says)."""

TAG_SIZE = 16
_SALT_SIZE = 16
_PREFIX_SIZE = 7
_HEADER = struct.Struct(f">{len(MAGIC)}sBI8s{_SALT_SIZE}s{_PREFIX_SIZE}s")
HEADER_SIZE = _HEADER.size
_MAX_CHUNKS = 1 << 32  # the chunk index is a uint32 in the nonce
_HKDF_INFO = b"modelyard encryption at rest v1"
_ENV_HINT = ("Set MODELYARD_SECURITY__ENCRYPTION_KEY (or MODELYARD_SECURITY__ENCRYPTION_KEY_FILE) "
             "to the key it was written with; during a rotation, list the old key after the new "
             "one in the key file.")


class Readable(Protocol):
    """A binary source (a file, ``io.BytesIO``, an fsspec file)."""

    def read(self, size: int = -1, /) -> bytes: ...


class Writable(Protocol):
    """A binary sink."""

    def write(self, data: bytes, /) -> object: ...


# -- keys -------------------------------------------------------------------------------------
def generate_key() -> bytes:
    """A new random 32-byte key (``encode_key`` turns it into the base64 text settings take)."""
    return os.urandom(KEY_SIZE)


def encode_key(key: bytes) -> str:
    """The base64 text of ``key``, as ``MODELYARD_SECURITY__ENCRYPTION_KEY`` and key files hold it.

    >>> encode_key(bytes(32))
    'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='
    """
    return base64.b64encode(key).decode("ascii")


def key_id(key: bytes) -> str:
    """The id an encrypted object records: the first 16 hex digits of SHA-256(key).

    >>> key_id(bytes(32))
    '66687aadf862bd77'
    """
    return hashlib.sha256(key).hexdigest()[:16]


def parse_keys(text: str, *, source: str = "the encryption key") -> list[bytes]:
    """Decode one or more base64 keys separated by whitespace or commas (first one first).

    Blank lines and lines starting with ``#`` are ignored, so a key file can carry comments.
    A key that is not base64 of exactly 32 bytes is a :class:`ConfigurationError`.
    """
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    tokens = [t for t in re.split(r"[\s,]+", "\n".join(lines)) if t]
    if not tokens:
        raise ConfigurationError(f"{_cap(source)} is empty.", hint=_GENERATE_HINT)
    keys = []
    for n, token in enumerate(tokens, 1):
        where = source if len(tokens) == 1 else f"key {n} of {source}"
        try:
            key = base64.b64decode(token, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigurationError(
                f"{_cap(where)} is not valid base64 (it starts with {token[:4]!r}...).",
                hint=_GENERATE_HINT) from None
        if len(key) != KEY_SIZE:
            raise ConfigurationError(
                f"{_cap(where)} decodes to {len(key)} bytes; AES-256 needs exactly {KEY_SIZE}.",
                hint=_GENERATE_HINT)
        keys.append(key)
    return keys


_GENERATE_HINT = "Generate a key with: modelyard security generate-key -o KEYFILE."


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


class Keyring:
    """The key that encrypts new objects, plus older keys kept for reading during a rotation.

    Keys are held in memory only; ``repr`` shows their ids, never the keys.

    >>> ring = Keyring(bytes(32))
    >>> ring.current_id
    '66687aadf862bd77'
    """

    __slots__ = ("_keys", "current_id")

    def __init__(self, current: bytes, older: Iterable[bytes] = ()) -> None:
        self._keys: dict[str, bytes] = {}
        for key in (current, *older):
            if len(key) != KEY_SIZE:
                raise ConfigurationError(
                    f"An encryption key must be {KEY_SIZE} bytes; got {len(key)}.",
                    hint=_GENERATE_HINT)
            self._keys.setdefault(key_id(key), bytes(key))
        self.current_id = key_id(current)

    @property
    def current(self) -> bytes:
        """The key new objects are encrypted with."""
        return self._keys[self.current_id]

    @property
    def ids(self) -> tuple[str, ...]:
        """Ids of every key held, the current one first."""
        return tuple(self._keys)

    def key(self, kid: str) -> bytes | None:
        """The key with id ``kid``, or None when this keyring does not hold it."""
        return self._keys.get(kid)

    def rotated_to(self, new: Keyring) -> Keyring:
        """A keyring that encrypts with ``new``'s current key and reads with every key of both.

        >>> old, new = Keyring(generate_key()), Keyring(generate_key())
        >>> ring = old.rotated_to(new)
        >>> ring.current_id == new.current_id and old.current_id in ring
        True
        """
        return Keyring(new.current, [*new._keys.values(), *self._keys.values()])

    def __contains__(self, kid: object) -> bool:
        return kid in self._keys

    def __repr__(self) -> str:
        return f"Keyring(current={self.current_id!r}, ids={list(self.ids)!r})"


def keyring_from_settings(security: SecuritySettings) -> Keyring | None:
    """The keyring ``security.encryption_key`` or ``encryption_key_file`` describes (None: off).

    Either setting may hold several keys (one a line, or comma-separated): the first encrypts,
    all of them decrypt, which is how readers keep working while ``modelyard security
    rotate-key`` runs.

    >>> from modelyard.settings import SecuritySettings
    >>> keyring_from_settings(SecuritySettings()) is None
    True
    >>> keyring_from_settings(SecuritySettings(encryption_key=encode_key(bytes(32)))).current_id
    '66687aadf862bd77'
    """
    inline, path = security.encryption_key, security.encryption_key_file
    if inline is not None and path is not None:
        raise ConfigurationError(
            "Both security.encryption_key and security.encryption_key_file are set.",
            hint="Keep one: MODELYARD_SECURITY__ENCRYPTION_KEY or "
                 "MODELYARD_SECURITY__ENCRYPTION_KEY_FILE.")
    if inline is not None:
        keys = parse_keys(inline.get_secret_value(),
                          source="MODELYARD_SECURITY__ENCRYPTION_KEY")
    elif path is not None:
        keys = parse_keys(read_key_file(path), source=f"the key file {str(path)!r}")
    else:
        return None
    return Keyring(keys[0], keys[1:])


def read_key_file(path: Path) -> str:
    """The text of a key file, or a :class:`ConfigurationError` saying why it cannot be read."""
    try:
        return Path(path).expanduser().read_text(encoding="ascii")
    except FileNotFoundError:
        raise ConfigurationError(f"There is no encryption key file at {str(path)!r}.",
                                 hint=_GENERATE_HINT) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"Cannot read the encryption key file {str(path)!r}: {exc}.",
                                 hint="Check its path and permissions.") from None


# -- format -----------------------------------------------------------------------------------
def is_encrypted(data: bytes | memoryview) -> bool:
    """Whether ``data`` (an object, or at least its first 8 bytes) starts like an encrypted one."""
    return bytes(data[: len(MAGIC)]) == MAGIC


def key_id_of(data: bytes | memoryview) -> str | None:
    """The key id recorded in an encrypted object's header; None for plaintext (or too short)."""
    if len(data) < HEADER_SIZE or not is_encrypted(data):
        return None
    kid: bytes = _HEADER.unpack(bytes(data[:HEADER_SIZE]))[3]
    return kid.hex()


@functools.cache
def _primitives() -> tuple[Any, Any, Any]:
    """cryptography's SHA-256, HKDF and AES-GCM, imported once, when first needed (a small
    log cell is sealed in ~10 µs: three import statements per object would add a third)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return SHA256, HKDF, AESGCM


class _Sealer:
    """The per-object state: header, derived key and nonce prefix."""

    __slots__ = ("aead", "chunk_size", "header", "kid", "prefix")

    def __init__(self, header: bytes, key: bytes) -> None:
        sha256, hkdf, aesgcm = _primitives()
        _magic, _version, self.chunk_size, kid, salt, self.prefix = _HEADER.unpack(header)
        self.kid = kid.hex()
        self.header = header
        self.aead: AESGCM = aesgcm(hkdf(sha256(), KEY_SIZE, salt, _HKDF_INFO).derive(key))

    def _nonce_aad(self, index: int, final: bool) -> tuple[bytes, bytes]:
        if index >= _MAX_CHUNKS:
            raise ConfigurationError(
                f"An encrypted object holds at most {_MAX_CHUNKS} chunks of {self.chunk_size} "
                "bytes.", hint="Use a larger chunk size.")
        flag = b"\x01" if final else b"\x00"
        nonce = self.prefix + struct.pack(">I", index) + flag
        return nonce, self.header + struct.pack(">Q", index) + flag

    def seal(self, index: int, plaintext: bytes | bytearray | memoryview, final: bool) -> bytes:
        nonce, aad = self._nonce_aad(index, final)
        return self.aead.encrypt(nonce, plaintext, aad)

    def open(self, index: int, sealed: bytes | memoryview, final: bool, name: str) -> bytes:
        from cryptography.exceptions import InvalidTag

        nonce, aad = self._nonce_aad(index, final)
        try:
            return self.aead.decrypt(nonce, sealed, aad)
        except InvalidTag:
            raise IntegrityError(
                f"{_cap(name)} failed authentication at chunk {index}: it was changed, cut "
                f"short or reordered after it was written (its key id {self.kid} is the "
                "configured key's, so the key is not the problem).",
                hint="Restore it from a backup; nothing of it was used.") from None


def _new_sealer(keyring: Keyring, chunk_size: int) -> _Sealer:
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise ConfigurationError(
            f"The chunk size must be between 1 and {MAX_CHUNK_SIZE} bytes; got {chunk_size}.")
    random = os.urandom(_SALT_SIZE + _PREFIX_SIZE)
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, chunk_size, bytes.fromhex(keyring.current_id),
                          random[:_SALT_SIZE], random[_SALT_SIZE:])
    return _Sealer(header, keyring.current)


def _open_header(header: bytes, keyring: Keyring | None, name: str) -> _Sealer:
    if len(header) < HEADER_SIZE or not is_encrypted(header):
        raise IntegrityError(
            f"{_cap(name)} is not an encrypted object: its {len(header)}-byte header is "
            f"{'cut short' if is_encrypted(header) else 'missing'}.",
            hint="Restore it from a backup.")
    _magic, version, chunk_size, kid_raw, _salt, _prefix = _HEADER.unpack(header)
    kid = kid_raw.hex()
    if version != FORMAT_VERSION:
        raise IntegrityError(
            f"{_cap(name)} uses encryption format version {version}; this modelyard reads "
            f"version {FORMAT_VERSION}.",
            hint="Upgrade modelyard, or restore the object if it was corrupted.")
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise IntegrityError(f"{_cap(name)} has a corrupt header (chunk size {chunk_size}).",
                             hint="Restore it from a backup.")
    if keyring is None:
        raise DecryptionError(
            f"{_cap(name)} is encrypted with key id {kid}, but no encryption key is configured.",
            hint=_ENV_HINT)
    key = keyring.key(kid)
    if key is None:
        held = ", ".join(keyring.ids)
        raise DecryptionError(
            f"{_cap(name)} was encrypted with key id {kid}; the configured key"
            f"{'s are' if len(keyring.ids) > 1 else ' is'} {held}.", hint=_ENV_HINT)
    return _Sealer(header, key)


# -- streaming --------------------------------------------------------------------------------
def encrypt_chunks(pieces: Iterable[bytes | memoryview], keyring: Keyring, *,
                   chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
    """Encrypt plaintext arriving in pieces of any size; yield the header, then sealed chunks.

    At most one chunk of plaintext is buffered, whatever the pieces' sizes.
    """
    sealer = _new_sealer(keyring, chunk_size)
    yield sealer.header
    buf = bytearray()
    index = 0
    for piece in pieces:
        buf += piece
        # Strictly more than a chunk buffered: this chunk is not the last one.
        while len(buf) > chunk_size:
            yield sealer.seal(index, memoryview(buf)[:chunk_size], final=False)
            del buf[:chunk_size]
            index += 1
    yield sealer.seal(index, buf, final=True)


def decrypt_chunks(src: Readable, keyring: Keyring | None, *,
                   name: str = "the encrypted data") -> Iterator[bytes]:
    """Read an encrypted object from ``src``; yield its plaintext chunk by chunk.

    Every chunk yielded is authenticated, but a missing end is only known at the end: a
    consumer must treat what it received as void when the iteration raises. ``name`` (for
    example ``"artifact blob 3fa1c2..."``) is used in error messages.
    """
    sealer = _open_header(_read_exact(src, HEADER_SIZE), keyring, name)
    size = sealer.chunk_size + TAG_SIZE
    current = _read_exact(src, size)
    index = 0
    while True:
        following = _read_exact(src, size) if len(current) == size else b""
        final = not following
        if len(current) < TAG_SIZE:
            raise IntegrityError(
                f"{_cap(name)} is cut short: chunk {index} has {len(current)} of at least "
                f"{TAG_SIZE} bytes.", hint="Restore it from a backup; nothing of it was used.")
        yield sealer.open(index, current, final, name)
        if final:
            return
        current = following
        index += 1


def encrypt_stream(src: Readable, dst: Writable, keyring: Keyring, *,
                   chunk_size: int = DEFAULT_CHUNK_SIZE) -> int:
    """Encrypt everything ``src`` holds into ``dst``; return the bytes written.

    >>> import io
    >>> ring, out = Keyring(generate_key()), io.BytesIO()
    >>> encrypt_stream(io.BytesIO(b"abc"), out, ring) == HEADER_SIZE + 3 + 16
    True
    """
    written = 0
    for piece in encrypt_chunks(_iter_read(src, chunk_size), keyring, chunk_size=chunk_size):
        dst.write(piece)
        written += len(piece)
    return written


def decrypt_stream(src: Readable, dst: Writable, keyring: Keyring | None, *,
                   name: str = "the encrypted data") -> int:
    """Decrypt ``src`` into ``dst``; return the plaintext bytes written.

    On an error, ``dst`` may hold a prefix of authentic plaintext: discard it.
    """
    written = 0
    for chunk in decrypt_chunks(src, keyring, name=name):
        dst.write(chunk)
        written += len(chunk)
    return written


def encrypt_bytes(data: bytes | memoryview, keyring: Keyring, *,
                  chunk_size: int = DEFAULT_CHUNK_SIZE) -> bytes:
    """Encrypt a buffer (the same format as :func:`encrypt_stream`, without its buffering)."""
    sealer = _new_sealer(keyring, chunk_size)
    view = memoryview(data)
    if view.format != "B":  # a pyarrow Buffer is signed bytes, which OpenSSL's binding refuses
        view = view.cast("B")
    last = max(0, (len(view) - 1) // chunk_size)  # an empty buffer is one empty final chunk
    parts = [sealer.header]
    parts.extend(sealer.seal(i, view[i * chunk_size:(i + 1) * chunk_size], final=i == last)
                 for i in range(last + 1))
    return b"".join(parts)


def decrypt_bytes(data: bytes | memoryview, keyring: Keyring | None, *,
                  name: str = "the encrypted data") -> bytes:
    """Decrypt a buffer written by :func:`encrypt_bytes` or :func:`encrypt_stream`."""
    return b"".join(decrypt_chunks(_MemoryReader(data), keyring, name=name))


class _MemoryReader:
    """``read`` over a buffer without copying it first (``io.BytesIO`` would)."""

    __slots__ = ("_pos", "_view")

    def __init__(self, data: bytes | memoryview) -> None:
        self._view = memoryview(data)
        self._pos = 0

    def read(self, size: int = -1, /) -> bytes:
        end = len(self._view) if size < 0 else self._pos + size
        out = self._view[self._pos:end]
        self._pos += len(out)
        return bytes(out)


def _read_exact(src: Readable, size: int) -> bytes:
    """Up to ``size`` bytes: fewer only at the end (raw files and sockets may read short)."""
    data = src.read(size)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = src.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _iter_read(src: Readable, size: int) -> Iterator[bytes]:
    while piece := src.read(size):
        yield piece
