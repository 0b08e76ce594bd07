"""A content-addressed, verify-on-read blob store with file trees described by manifests.

Every blob is stored under its SHA-256 (``blobs/sha256/ab/abcdef...``), written to a temporary
name and renamed into place, so a reader never sees half a blob and a killed writer leaves at
most an unreferenced temporary file. A model's files are a *tree*: a JSON manifest (itself a
blob) listing each relative path with its digest and size. Every read re-hashes the bytes: a
single changed byte raises :class:`IntegrityError` and nothing is loaded.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from modelyard.errors import ConfigurationError, IntegrityError, NotFoundError
from modelyard.security.checksums import sha256_bytes, sha256_file

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

    def __init__(self, uri: str) -> None:
        self.uri = uri
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
        if self._local is not None:
            if not os.path.exists(final):
                _atomic_write_local(Path(final), data)
        elif not self._fs.exists(final):
            tmp = f"{self._root}/tmp/{uuid.uuid4().hex}"
            self._fs.makedirs(f"{self._root}/tmp", exist_ok=True)
            self._fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
            self._fs.pipe_file(tmp, data)
            self._fs.mv(tmp, final)
        return digest

    def put_file(self, path: str | Path) -> tuple[str, int]:
        """Store the file at ``path``; return its digest and size."""
        digest, size = sha256_file(path)
        final = self._blob_path(digest)
        if self._local is not None:
            if not os.path.exists(final):
                _atomic_copy_local(Path(path), Path(final))
        elif not self._fs.exists(final):
            self.put_bytes(Path(path).read_bytes())
        return digest, size

    def get_bytes(self, digest: str) -> bytes:
        """Read a blob and verify it; raise IntegrityError if its bytes changed."""
        path = self._blob_path(digest)
        try:
            data = Path(path).read_bytes() if self._local is not None else self._fs.cat_file(path)
        except FileNotFoundError:
            raise NotFoundError(
                f"Artifact blob {digest[:12]} is missing from {self.uri}.",
                hint="The artifact store may have been moved or pruned; re-register the model.",
            ) from None
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
        read and a write through Python."""
        try:
            shutil.copyfile(self._blob_path(digest), target)
        except FileNotFoundError:
            self.get_bytes(digest)  # raises the NotFoundError with its hint
            raise
        actual, _ = sha256_file(target)
        if actual != digest:
            target.unlink(missing_ok=True)
            raise _integrity_error(digest, actual)


def _integrity_error(digest: str, actual: str) -> IntegrityError:
    return IntegrityError(
        f"Artifact blob {digest[:12]} failed its integrity check: its SHA-256 is now "
        f"{actual[:12]}. The file was changed after it was stored, so it was not loaded.",
        hint="Restore the artifact store from a backup or re-register the model.",
    )


def _atomic_write_local(final: Path, data: bytes) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{uuid.uuid4().hex}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def _atomic_copy_local(src: Path, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{uuid.uuid4().hex}"
    try:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            while chunk := fin.read(1 << 20):
                fout.write(chunk)
            fout.flush()
            os.fsync(fout.fileno())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
