"""A content-addressed, verify-on-read blob store with file trees described by manifests.

Every blob is stored under its SHA-256 (``blobs/sha256/ab/abcdef...``), written to a temporary
name and renamed into place, so a reader never sees half a blob and a killed writer leaves at
most an unreferenced temporary file. A model's files are a *tree*: a JSON manifest (itself a
blob) listing each relative path with its digest and size. Every read re-hashes the bytes: a
single changed byte raises :class:`IntegrityError` and nothing is loaded.

Given a :class:`~modelyard.security.encryption.Keyring`, blobs (manifests included) are stored
AES-256-GCM encrypted, streamed in 1 MiB chunks. The address stays the SHA-256 of the
*plaintext*: reading decrypts (which authenticates every chunk), then re-hashes, so a valid
ciphertext moved to another blob's address is caught too. Blobs written before encryption was
turned on stay readable (they have no encryption header); writing such a blob again with
encryption on replaces the plaintext copy, and :meth:`ArtifactStore.rekey_blob` (``modelyard
security rotate-key``) moves every blob to the current key.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from modelyard.errors import ConfigurationError, DecryptionError, IntegrityError, NotFoundError
from modelyard.security.checksums import CHUNK, Hasher, sha256_bytes, sha256_file
from modelyard.security.encryption import (
    HEADER_SIZE,
    Keyring,
    decrypt_bytes,
    decrypt_chunks,
    decrypt_stream,
    encrypt_bytes,
    encrypt_chunks,
    is_encrypted,
    key_id_of,
)

__all__ = ["ArtifactStore", "Manifest", "ManifestEntry"]


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class Manifest:
    """The files of one tree, sorted by path."""

    entries: tuple[ManifestEntry, ...]

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries)

    def to_bytes(self) -> bytes:
        files = [{"path": e.path, "sha256": e.sha256, "size": e.size} for e in self.entries]
        return orjson.dumps({"files": files, "version": 1}, option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        doc = orjson.loads(data)
        return cls(tuple(ManifestEntry(f["path"], f["sha256"], int(f["size"]))
                         for f in doc["files"]))


class ArtifactStore:
    """Blobs and trees under ``uri``: a local path, ``file://``, ``memory://``, ``s3://``...

    >>> import tempfile
    >>> store = ArtifactStore(tempfile.mkdtemp())
    >>> digest = store.put_bytes(b"hello")
    >>> store.get_bytes(digest)
    b'hello'
    """

    def __init__(self, uri: str, *, keyring: Keyring | None = None) -> None:
        self.uri = uri
        self.keyring = keyring
        self._local: Path | None = None
        self._fs: Any = None
        if "://" not in uri or uri.startswith("file://"):
            self._local = Path(uri.removeprefix("file://")).expanduser()
            self._root = str(self._local)
        else:
            try:
                import fsspec

                self._fs, self._root = fsspec.core.url_to_fs(uri)
            except (ImportError, ValueError) as exc:
                raise ConfigurationError(
                    f"The artifact URI {uri!r} cannot be opened: {exc}.",
                    hint="Use a local path, file://, memory://, or install the fsspec "
                    "backend for this scheme (for s3://: pip install s3fs).",
                ) from exc

    # -- blobs ---------------------------------------------------------------------------
    def _blob_path(self, digest: str) -> str:
        return f"{self._root}/blobs/sha256/{digest[:2]}/{digest}"

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` and return its digest (a no-op when the blob already exists)."""
        digest = sha256_bytes(data)
        final = self._blob_path(digest)
        if self._needs_write(final):
            payload = data if self.keyring is None else encrypt_bytes(data, self.keyring)
            self._write_atomic(final, [payload])
        return digest

    def put_file(self, path: str | Path) -> tuple[str, int]:
        """Store the file at ``path``; return its digest and size."""
        digest, size = sha256_file(path)
        final = self._blob_path(digest)
        if not self._needs_write(final):
            return digest, size
        if self.keyring is not None:
            with open(path, "rb") as fh:
                self._write_atomic(final, encrypt_chunks(_read_pieces(fh), self.keyring))
        elif self._local is not None:
            _atomic_copy_local(Path(path), Path(final))
        else:
            self.put_bytes(Path(path).read_bytes())
        return digest, size

    def get_bytes(self, digest: str) -> bytes:
        """Read a blob (decrypting it) and verify it; raise IntegrityError if its bytes changed."""
        path = self._blob_path(digest)
        try:
            data = Path(path).read_bytes() if self._local is not None else self._fs.cat_file(path)
        except FileNotFoundError:
            raise _missing(digest, self.uri) from None
        if is_encrypted(data):
            try:
                data = decrypt_bytes(data, self.keyring, name=_blob_name(digest))
            except (DecryptionError, IntegrityError):
                if sha256_bytes(data) != digest:
                    raise
                # A plaintext blob that merely starts like ciphertext: its digest vouches.
        actual = sha256_bytes(data)
        if actual != digest:
            raise _integrity_error(digest, actual)
        return data

    def exists(self, digest: str) -> bool:
        path = self._blob_path(digest)
        return os.path.exists(path) if self._local is not None else bool(self._fs.exists(path))

    # -- trees ---------------------------------------------------------------------------
    def put_tree(self, directory: str | Path) -> tuple[str, Manifest]:
        """Store every file under ``directory``; return the manifest's digest and the manifest."""
        root = Path(directory)
        entries = []
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            digest, size = self.put_file(file)
            entries.append(ManifestEntry(file.relative_to(root).as_posix(), digest, size))
        manifest = Manifest(tuple(entries))
        return self.put_bytes(manifest.to_bytes()), manifest

    def get_manifest(self, digest: str) -> Manifest:
        return Manifest.from_bytes(self.get_bytes(digest))

    def fetch_tree(self, digest: str, dest: str | Path) -> Manifest:
        """Write the tree ``digest`` under ``dest``, verifying every file on the way."""
        manifest = self.get_manifest(digest)
        dest = Path(dest)
        for entry in manifest.entries:
            rel = PurePosixPath(entry.path)
            if rel.is_absolute() or ".." in rel.parts:
                raise IntegrityError(f"Manifest {digest[:12]} holds an unsafe path {entry.path!r}.")
            target = dest.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            if self._local is not None:
                self._copy_verified(entry.sha256, target)
            else:
                target.write_bytes(self.get_bytes(entry.sha256))
        return manifest

    def _copy_verified(self, digest: str, target: Path) -> None:
        """Copy a local blob in the kernel (no user-space buffer), then hash the copy: what is
        verified is exactly the file that will be loaded, and loading a large model skips a
        read and a write through Python. An encrypted blob is decrypted chunk by chunk."""
        source = self._blob_path(digest)
        try:
            with open(source, "rb") as fh:
                sealed = is_encrypted(fh.read(HEADER_SIZE))
            if sealed:
                self._decrypt_local(digest, source, target)
            else:
                shutil.copyfile(source, target)
        except FileNotFoundError:
            raise _missing(digest, self.uri) from None
        actual, _ = sha256_file(target)
        if actual != digest:
            target.unlink(missing_ok=True)
            raise _integrity_error(digest, actual)

    def _decrypt_local(self, digest: str, source: str, target: Path) -> None:
        try:
            with open(source, "rb") as fin, open(target, "wb") as fout:
                decrypt_stream(fin, fout, self.keyring, name=_blob_name(digest))
        except (DecryptionError, IntegrityError):
            target.unlink(missing_ok=True)
            if sha256_file(source)[0] != digest:
                raise
            shutil.copyfile(source, target)  # plaintext that merely starts like ciphertext

    # -- encryption at rest ---------------------------------------------------------------------
    def blob_digests(self) -> list[str]:
        """Every blob's digest (manifests included), sorted; temporary files are skipped."""
        base = f"{self._root}/blobs/sha256"
        if self._local is not None:
            names = [p.name for p in Path(base).glob("*/*")] if os.path.isdir(base) else []
        else:
            names = ([p.rsplit("/", 1)[-1] for p in self._fs.find(base)]
                     if self._fs.exists(base) else [])
        return sorted(n for n in names if _DIGEST.fullmatch(n))

    def blob_key_id(self, digest: str) -> str | None:
        """The key id a blob is encrypted with; None for a plaintext blob."""
        with self._open(self._blob_path(digest), "rb") as fh:
            return key_id_of(fh.read(HEADER_SIZE))

    def rekey_blob(self, digest: str) -> bool:
        """Rewrite one blob under the keyring's current key; False when it already was.

        Plaintext blobs are encrypted too. The new copy is written beside the blob, its
        plaintext re-hashed against the digest and read back through decryption, and only then
        renamed over the old one: an interrupted rotation leaves every blob readable, and
        running it again finishes the job.
        """
        keyring = self._require_keyring("Re-encrypting artifacts")
        path = self._blob_path(digest)
        try:
            current = self.blob_key_id(digest)
        except FileNotFoundError:
            raise _missing(digest, self.uri) from None
        if current == keyring.current_id:
            return False
        try:
            self._rewrite(digest, path, keyring, sealed=current is not None)
        except (DecryptionError, IntegrityError):
            if current is None or self._raw_digest(path) != digest:
                raise
            self._rewrite(digest, path, keyring, sealed=False)  # plaintext lookalike
        return True

    def _rewrite(self, digest: str, path: str, keyring: Keyring, *, sealed: bool) -> None:
        hasher = Hasher()

        def plaintext() -> Iterator[bytes]:
            with self._open(path, "rb") as fin:
                pieces = (decrypt_chunks(fin, keyring, name=_blob_name(digest)) if sealed
                          else _read_pieces(fin))
                for piece in pieces:
                    hasher.update(piece)
                    yield piece

        def check(tmp: str) -> None:
            if hasher.hexdigest() != digest:
                raise _integrity_error(digest, hasher.hexdigest())
            again = Hasher()
            with self._open(tmp, "rb") as fh:
                for piece in decrypt_chunks(fh, keyring, name=_blob_name(digest)):
                    again.update(piece)
            if again.hexdigest() != digest:
                raise _integrity_error(digest, again.hexdigest())

        self._write_atomic(path, encrypt_chunks(plaintext(), keyring), check=check)

    def _raw_digest(self, path: str) -> str:
        with self._open(path, "rb") as fh:
            return sha256_file(fh)[0]

    def _require_keyring(self, purpose: str) -> Keyring:
        if self.keyring is None:
            raise ConfigurationError(f"{purpose} needs an encryption key.",
                                     hint="Set MODELYARD_SECURITY__ENCRYPTION_KEY.")
        return self.keyring

    # -- storage primitives -----------------------------------------------------------------------
    def _open(self, path: str, mode: str) -> Any:
        return open(path, mode) if self._local is not None else self._fs.open(path, mode)

    def _needs_write(self, final: str) -> bool:
        """Absent, or present in clear while encryption is on (the clear copy is replaced)."""
        if self._local is not None:
            if not os.path.exists(final):
                return True
        elif not self._fs.exists(final):
            return True
        if self.keyring is None:
            return False
        with self._open(final, "rb") as fh:
            return not is_encrypted(fh.read(HEADER_SIZE))

    def _write_atomic(self, final: str, pieces: Iterable[bytes],
                      check: Callable[[str], None] | None = None) -> None:
        """Write ``pieces`` to a temporary name, run ``check`` on it, rename it to ``final``."""
        if self._local is not None:
            _atomic_write_local(Path(final), pieces, check)
            return
        tmp = f"{self._root}/tmp/{uuid.uuid4().hex}"
        self._fs.makedirs(f"{self._root}/tmp", exist_ok=True)
        self._fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        try:
            with self._fs.open(tmp, "wb") as fh:
                for piece in pieces:
                    fh.write(piece)
            if check is not None:
                check(tmp)
            self._fs.mv(tmp, final)
        finally:
            if self._fs.exists(tmp):
                self._fs.rm(tmp)


_DIGEST = re.compile(r"[0-9a-f]{64}")


def _blob_name(digest: str) -> str:
    return f"artifact blob {digest[:12]}"


def _missing(digest: str, uri: str) -> NotFoundError:
    return NotFoundError(
        f"Artifact blob {digest[:12]} is missing from {uri}.",
        hint="The artifact store may have been moved or pruned; re-register the model.",
    )


def _read_pieces(fh: Any) -> Iterator[bytes]:
    while piece := fh.read(CHUNK):
        yield piece


def _integrity_error(digest: str, actual: str) -> IntegrityError:
    return IntegrityError(
        f"Artifact blob {digest[:12]} failed its integrity check: its SHA-256 is now "
        f"{actual[:12]}. The file was changed after it was stored, so it was not loaded.",
        hint="Restore the artifact store from a backup or re-register the model.",
    )


def _atomic_write_local(final: Path, pieces: Iterable[bytes],
                        check: Callable[[str], None] | None = None) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{uuid.uuid4().hex}"
    try:
        with open(tmp, "wb") as fh:
            for piece in pieces:
                fh.write(piece)
            fh.flush()
            os.fsync(fh.fileno())
        if check is not None:
            check(str(tmp))
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def _atomic_copy_local(src: Path, final: Path) -> None:
    with open(src, "rb") as fin:
        _atomic_write_local(final, _read_pieces(fin))
