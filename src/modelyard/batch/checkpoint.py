"""A run's work folder and checkpoint: what makes an interrupted run resumable.

Next to the output ``scores.parquet`` a run keeps ``scores.parquet.parts/`` holding one part
file per completed chunk (``part-000000.parquet``, ...), the quarantined rows of the chunks
that had any, and ``checkpoint.json``: the number of completed chunks and rows, the counts,
the quarantine parts, and a *key* (the input's path, size and modification time, the model
version, the chunking and the columns). The checkpoint is rewritten atomically after each
chunk's parts are on disk, so after a crash it never counts a part that is not complete.

A new run with the same key resumes after the last completed chunk; with another key it is
refused (``restart`` discards the folder). The folder is removed once the output is in place.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from modelyard.errors import ConflictError

__all__ = ["CHECKPOINT_FILE", "Checkpoint", "WorkFolder", "part_name"]

CHECKPOINT_FILE = "checkpoint.json"
_FORMAT = 1


def part_name(index: int, suffix: str) -> str:
    """The output part of chunk ``index``: ``part-000007.parquet``."""
    return f"part-{index:06d}{suffix}"


@dataclass(slots=True)
class Checkpoint:
    """Progress of one batch run."""

    key: dict[str, Any]
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    chunks_done: int = 0
    rows_done: int = 0
    scored: int = 0
    skipped: int = 0
    quarantined: int = 0
    quarantine_parts: list[str] = field(default_factory=list)
    """Quarantine parts of the chunks that had refused rows (usually none). Output parts need
    no list: chunk ``i`` is always ``part-<i>`` (so the checkpoint stays small and its rewrite
    after every chunk costs the same at chunk 10 and at chunk 10,000)."""

    def parts(self, suffix: str) -> list[str]:
        """The output parts of the completed chunks, in order."""
        return [part_name(i, suffix) for i in range(self.chunks_done)]

    def to_json(self) -> bytes:
        return orjson.dumps({"format": _FORMAT, **asdict(self)}, option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, data: bytes) -> Checkpoint:
        doc = orjson.loads(data)
        doc.pop("format", None)
        return cls(**doc)


class WorkFolder:
    """``OUTPUT.parts/``: the parts and checkpoint of the run writing ``output``."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.path = output.with_name(output.name + ".parts")

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_FILE

    def start(self, key: dict[str, Any], suffix: str, *,
              restart: bool = False) -> Checkpoint:
        """The checkpoint to continue from: the interrupted run's when its key matches, a fresh
        one otherwise (``restart``, or no earlier run)."""
        if restart:
            self.discard()
        previous = self.load()
        if previous is not None:
            _check_same(previous.key, key, self.path)
            missing = [p for p in previous.parts(suffix) + previous.quarantine_parts
                       if not (self.path / p).is_file()]
            if missing:
                raise ConflictError(
                    f"The interrupted run in {str(self.path)!r} lost its part files {missing}.",
                    hint="Pass --restart to score the input again from the start.")
            return previous
        self.path.mkdir(parents=True, exist_ok=True)
        _clear(self.path)  # parts of a run that stopped before its first checkpoint
        checkpoint = Checkpoint(key=key)
        self.save(checkpoint)
        return checkpoint

    def load(self) -> Checkpoint | None:
        try:
            data = self.checkpoint_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return Checkpoint.from_json(data)
        except (ValueError, TypeError) as exc:
            raise ConflictError(
                f"The checkpoint {str(self.checkpoint_path)!r} is unreadable: {exc}",
                hint="Pass --restart to score the input again from the start.") from None

    def save(self, checkpoint: Checkpoint) -> None:
        """Replace the checkpoint atomically (temporary file, fsync, rename)."""
        tmp = self.path / f".{CHECKPOINT_FILE}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(checkpoint.to_json())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.checkpoint_path)

    def discard(self) -> None:
        """Remove the folder: only the files a run writes, so a folder of the same name
        holding anything else is left alone."""
        if not self.path.is_dir():
            return
        _clear(self.path)
        with contextlib.suppress(OSError):  # not empty: someone else's files
            self.path.rmdir()


_OURS = ("part-", "quarantine-", "output", ".", CHECKPOINT_FILE)


def _clear(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_file() and path.name.startswith(_OURS):
            path.unlink()


_WHAT = {
    "input": "the input file changed (path, size or modification time)",
    "chunk_rows": "--chunk-rows differs",
    "features": "the model's input columns differ",
    "passthrough": "the pass-through columns (--id-column, --keep) differ",
    "output_format": "the output format differs",
}


def _check_same(old: dict[str, Any], new: dict[str, Any], folder: Path) -> None:
    if old == new:
        return
    if old.get("model") != new.get("model"):
        raise ConflictError(
            f"{str(folder)!r} holds an interrupted run of {old.get('model')}, but this run "
            f"scores with {new.get('model')}: resuming would mix two versions in one output.",
            hint=f"Resume with {old.get('model')}, or pass --restart to start over.")
    what = [_WHAT.get(k, k) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    raise ConflictError(
        f"{str(folder)!r} holds an interrupted run that cannot be resumed: {'; '.join(what)}.",
        hint="Run again as before to resume it, or pass --restart to start over.")
