"""SHA-256 content digests: the identity of every artifact and the check on every load."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

__all__ = ["CHUNK", "Hasher", "sha256_bytes", "sha256_file"]

CHUNK = 1 << 20


class Hasher:
    """Incremental SHA-256 that also counts bytes."""

    __slots__ = ("_h", "size")

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes | memoryview) -> None:
        self._h.update(data)
        self.size += len(data)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def sha256_bytes(data: bytes | memoryview) -> str:
    """Hex SHA-256 of a buffer.

    >>> sha256_bytes(b"")[:12]
    'e3b0c44298fc'
    """
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path | BinaryIO) -> tuple[str, int]:
    """Hex SHA-256 and size of a file, read in 1 MiB chunks."""
    if isinstance(path, str | Path):
        with open(path, "rb") as fh:
            return sha256_file(fh)
    h = Hasher()
    while chunk := path.read(CHUNK):
        h.update(chunk)
    return h.hexdigest(), h.size
