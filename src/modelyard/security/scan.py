"""Inspect model files without loading them: pickles, skops, ONNX, archives, folders.

What each kind of file can do when loaded, and what is checked:

| file | risk when loaded | check |
|---|---|---|
| pickle, joblib, ``torch.save`` (.pkl .pt ...) | runs any code | opcodes and globals |
| compressed joblib (zlib, gzip, bz2, xz) | the same | decompressed as a stream, capped |
| zip (torch archives, .npz) | pickles inside | each pickle and object-dtype ``.npy`` member |
| ``.npy`` with an object dtype | a pickle after the header | the pickle |
| ``.skops`` | types refused unless trusted | ``skops.io.get_untrusted_types`` |
| ``.onnx`` | external data read from any path | every tensor's ``location`` |
| zip or tar archives | paths outside the destination, bombs | :mod:`modelyard.security.archives` |
| a folder | symlinks leaving it | each link's target |

Nothing is unpickled, imported from the file or executed; ONNX weights are not read.

>>> from modelyard.security.scan import scan_path
>>> [f.severity for f in scan_path("model.pkl")]                 # doctest: +SKIP
['critical', 'info']
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import re
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np

from modelyard.errors import NotFoundError
from modelyard.security.archives import (
    ArchiveLimits,
    ArchiveProblem,
    list_members,
    member_problems,
)
from modelyard.security.findings import Finding, sort
from modelyard.security.pickles import analyze_pickle, classify_global, findings_for
from modelyard.security.skops_types import is_trusted_type, skops_io

__all__ = ["PICKLE_SUFFIXES", "ScanLimits", "scan_file", "scan_onnx", "scan_path", "scan_skops"]

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".sav", ".p", ".dill", ".pck", ".cloudpickle")
"""Suffixes read as pickles even when their first bytes do not say so (protocols 0 and 1).
Other files (``.pt``, ``.bin``, ``.ckpt``...) are read as pickles when they start like one."""

_TAR_SUFFIXES = (".tar", ".tgz", ".tbz2", ".txz", ".tar.gz", ".tar.bz2", ".tar.xz")
_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


@dataclass(frozen=True, slots=True)
class ScanLimits:
    """Bounds on the work a scan does for one file."""

    max_decompressed_bytes: int = 4 * 1024**3
    """A compressed pickle is read at most this far once decompressed (a bomb stops here)."""

    archive: ArchiveLimits = field(default_factory=ArchiveLimits)
    """What an archive may unpack to before it is reported as a bomb."""


def scan_path(path: str | Path, limits: ScanLimits | None = None) -> list[Finding]:
    """Findings for a file, or for every file under a folder, worst first.

    Symbolic links inside a folder are not followed; one that points outside the folder is a
    finding of its own (registering the folder would copy what it points to).
    """
    limits = limits or ScanLimits()
    root = Path(path)
    if not root.exists() and not root.is_symlink():
        raise NotFoundError(f"There is nothing to scan at {str(root)!r}.",
                            hint="Pass a model file or folder, or a models:/NAME/VERSION "
                                 "reference.")
    if not root.is_dir():
        return sort(scan_file(root, root.name, limits))
    findings: list[Finding] = []
    real_root = root.resolve()
    for file in _walk(root):
        location = file.relative_to(root).as_posix()
        if file.is_symlink():
            findings += _symlink_findings(file, location, real_root)
        elif file.is_file():
            findings += scan_file(file, location, limits)
    return sort(findings)


def _walk(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root, followlinks=False):
        base = Path(folder)
        # os.walk lists symlinks to folders among dirs, and does not descend into them.
        names = sorted(files) + sorted(d for d in dirs if (base / d).is_symlink())
        dirs.sort()
        for name in names:
            yield base / name


def _symlink_findings(link: Path, location: str, real_root: Path) -> list[Finding]:
    target = link.resolve()
    if target == real_root or real_root in target.parents:
        return []
    return [Finding(
        "medium", "folder.symlink-outside", location,
        f"This symbolic link points outside the folder, to {os.readlink(link)!r}; "
        "registering the folder would copy what it points to.",
        "Replace the link with the file it should hold, or remove it.")]


def scan_file(path: Path, location: str, limits: ScanLimits | None = None) -> list[Finding]:
    """Findings for one file, by what its name and first bytes say it is."""
    limits = limits or ScanLimits()
    suffix = path.suffix.lower()
    name = path.name.lower()
    with open(path, "rb") as fh:
        head = fh.read(8)
    if suffix == ".skops":
        return scan_skops(path, location)
    if suffix == ".onnx":
        return scan_onnx(path, location)
    if head.startswith(b"PK") and zipfile.is_zipfile(path):
        return _scan_zip(path, location, limits)
    if head.startswith(b"\x93NUMPY"):
        with open(path, "rb") as fh:
            return _scan_npy(fh, location)
    if name.endswith(_TAR_SUFFIXES) or _is_tar(path):
        return _scan_tar(path, location, limits)
    opener = _decompressor(head)
    if opener is not None:
        with open(path, "rb") as raw:
            stream = io.BufferedReader(_Capped(opener(raw), limits.max_decompressed_bytes))
            return _scan_stream(stream, location, suffix, path.name)
    if _looks_like_pickle(head) or suffix in PICKLE_SUFFIXES:
        with open(path, "rb") as fh:
            return _pickle_findings(fh, location, named=suffix in PICKLE_SUFFIXES)
    return []


def _pickle_findings(stream: BinaryIO, location: str, *, named: bool) -> list[Finding]:
    """Findings for a pickle; ``named``: its file name says it is one. A file recognised by
    its first two bytes alone that does not parse and names no global is data that happens
    to start like a pickle (raw weights): nothing would run, so nothing is reported."""
    analysis = analyze_pickle(stream)
    if not named and not analysis.complete and not analysis.globals:
        return []
    return findings_for(analysis, location)


def _scan_stream(stream: Any, location: str, suffix: str,
                 filename: str) -> list[Finding]:
    """A decompressed stream: a pickle (compressed joblib) or something else."""
    inner = Path(filename[: -len(suffix)]).suffix.lower() if suffix else ""
    try:
        head = stream.peek(8)[:8]
        if not (_looks_like_pickle(head) or suffix in PICKLE_SUFFIXES
                or inner in PICKLE_SUFFIXES):
            return []
        findings = _pickle_findings(stream, location,
                                    named=suffix in PICKLE_SUFFIXES or inner in PICKLE_SUFFIXES)
    except _TooLarge as exc:
        return [Finding("medium", "file.decompression-limit", location, str(exc),
                        "Scan a smaller file, or raise the limit if the file is legitimate.")]
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        return [Finding("medium", "file.unreadable", location,
                        f"The compressed data could not be read ({exc}); it was not inspected.",
                        "Treat a file that cannot be inspected as unsafe.")]
    return findings


def _looks_like_pickle(head: bytes) -> bool:
    # Protocol 2+ starts with PROTO (0x80) and the protocol number.
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _is_tar(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(257)
        return fh.read(5) == b"ustar"


def _decompressor(head: bytes) -> Callable[[IO[bytes]], Any] | None:
    if head.startswith(b"\x1f\x8b"):
        return lambda raw: gzip.GzipFile(fileobj=raw, mode="rb")
    if head.startswith(b"BZh"):
        return lambda raw: bz2.BZ2File(raw, "rb")
    if head.startswith(b"\xfd7zXZ\x00"):
        return lambda raw: lzma.LZMAFile(raw, "rb")
    if head.startswith(b"\x5d\x00\x00"):
        return lambda raw: lzma.LZMAFile(raw, "rb", format=lzma.FORMAT_ALONE)
    if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        return _ZlibReader  # joblib's default compressor: a bare zlib stream
    return None


class _TooLarge(Exception):
    pass


class _Capped(io.RawIOBase):
    """A readable stream that stops a decompression bomb at ``limit`` bytes."""

    def __init__(self, inner: IO[bytes], limit: int) -> None:
        self.inner = inner
        self.left = limit
        self.limit = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        data = self.inner.read(len(view))
        self.left -= len(data)
        if self.left < 0:
            raise _TooLarge(f"The file decompresses to more than {self.limit} bytes; the rest "
                            "was not inspected.")
        view[: len(data)] = data
        return len(data)


class _ZlibReader(io.RawIOBase):
    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.inflate = zlib.decompressobj()
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        size = len(view)
        while not self.pending:
            if self.inflate.unconsumed_tail:
                self.pending = self.inflate.decompress(self.inflate.unconsumed_tail, size)
            elif self.inflate.eof:
                return 0
            else:
                chunk = self.raw.read(1 << 16)
                if not chunk:
                    return 0
                self.pending = self.inflate.decompress(chunk, size)
        count = min(size, len(self.pending))
        view[:count] = self.pending[:count]
        self.pending = self.pending[count:]
        return count


# -- numpy -------------------------------------------------------------------------------------
def _scan_npy(fh: BinaryIO, location: str) -> list[Finding]:
    """An ``.npy`` array: object arrays are a pickle after the header (``allow_pickle``)."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        _shape, _fortran, dtype = reader(fh)
    except (ValueError, SyntaxError, OSError, EOFError) as exc:
        return [Finding("medium", "numpy.unreadable", location,
                        f"The .npy header could not be read ({exc}); the file was not inspected.",
                        "Treat a file that cannot be inspected as unsafe.")]
    if not dtype.hasobject:
        return []
    return [*_pickle_findings(fh, location, named=True), Finding(
        "info", "numpy.object-array", location,
        "An object-dtype .npy array: its data is a pickle, loaded only with allow_pickle=True.",
        "Store numeric arrays; numpy refuses object arrays unless told otherwise.")]


# -- zip and tar -------------------------------------------------------------------------------
def _archive_findings(problems: list[ArchiveProblem], location: str) -> list[Finding]:
    # A member escaping the destination writes files anywhere: high. A bomb only exhausts
    # memory or disk, and zeros compress that well in ordinary files too: medium.
    return [Finding("high", "archive.unsafe-member", location,
                    f"Unpacking this archive would write outside its folder: {p.message}.",
                    "modelyard refuses to unpack it; re-create it with relative paths inside "
                    "one folder and no links leaving it.") if p.kind == "escape" else
            Finding("medium", "archive.too-large", location,
                    f"Unpacking this archive could exhaust memory or disk: {p.message}.",
                    "modelyard refuses to unpack it past its limits; check what it holds.")
            for p in problems]


def _scan_zip(path: Path, location: str, limits: ScanLimits) -> list[Finding]:
    try:
        members = list_members(path)
    except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
        return [Finding("medium", "archive.unreadable", location,
                        f"The zip archive could not be read ({exc}); it was not inspected.",
                        "Treat a file that cannot be inspected as unsafe.")]
    findings = _archive_findings(
        member_problems(members, limits.archive, path.stat().st_size), location)
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            findings += _scan_zip_member(archive, info, f"{location}:{info.filename}")
    return findings


def _scan_zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo,
                     location: str) -> list[Finding]:
    try:
        with archive.open(info) as fh:
            head = fh.read(8)
        suffix = Path(info.filename).suffix.lower()
        if head.startswith(b"\x93NUMPY"):
            with archive.open(info) as fh:
                return _scan_npy(fh, location)  # type: ignore[arg-type]
        if _looks_like_pickle(head) or suffix in PICKLE_SUFFIXES:
            with archive.open(info) as fh:
                return _pickle_findings(fh, location,  # type: ignore[arg-type]
                                        named=suffix in PICKLE_SUFFIXES)
    except (RuntimeError, zipfile.BadZipFile, NotImplementedError, OSError, EOFError,
            zlib.error) as exc:
        return [Finding("medium", "archive.unreadable", location,
                        f"This archive member could not be read ({exc}); it was not "
                        "inspected.", "Treat a member that cannot be inspected as unsafe.")]
    return []


def _scan_tar(path: Path, location: str, limits: ScanLimits) -> list[Finding]:
    try:
        members = list_members(path)
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        return [Finding("medium", "archive.unreadable", location,
                        f"The tar archive could not be read ({exc}); it was not inspected.",
                        "Treat a file that cannot be inspected as unsafe.")]
    findings = _archive_findings(
        member_problems(members, limits.archive, path.stat().st_size), location)
    findings.append(Finding(
        "info", "archive.contents-not-scanned", location,
        f"A tar archive of {len(members)} member(s); the files inside were not scanned.",
        "Unpack it (modelyard's safe_extract) and scan the folder."))
    return findings


# -- skops -------------------------------------------------------------------------------------
def scan_skops(path: Path, location: str) -> list[Finding]:
    """Findings for a skops file: the types skops would refuse to load without trust.

    A dangerous type (by the pickle denylist) is ``high``: trusting it lets the model call it.
    scikit-learn's own types are ``info`` (modelyard's sklearn runtime trusts them); any other
    untrusted type is ``medium``: skops refuses it until someone trusts it with
    ``--trust-type``.
    """
    try:
        untrusted = skops_io().get_untrusted_types(file=path)
    except Exception as exc:  # skops raises zip, JSON and key errors on a bad file
        return [Finding("medium", "skops.unreadable", location,
                        f"The skops file could not be read ({type(exc).__name__}: {exc}); it "
                        "was not inspected.", "Treat a file that cannot be inspected as unsafe.")]
    findings = []
    for qualified in sorted(untrusted):
        module, _, name = qualified.rpartition(".")
        verdict, reason = classify_global(module, name)
        if verdict == "dangerous":
            findings.append(Finding(
                "high", "skops.dangerous-type", location,
                f"The file holds {qualified}, which {reason}; skops refuses it unless trusted.",
                "Never pass it to --trust-type; re-create the model without it."))
        elif is_trusted_type(qualified):
            kind = "a scikit-learn type" if qualified.startswith("sklearn.") else "a ufunc"
            findings.append(Finding(
                "info", "skops.sklearn-type", location,
                f"The file holds {qualified}, {kind} modelyard trusts.", ""))
        else:
            findings.append(Finding(
                "medium", "skops.untrusted-type", location,
                f"The file holds {qualified}, which skops does not trust by default; loading "
                "it imports and may call that code.",
                f"Trust it (--trust-type {qualified}) only if you trust its package."))
    return findings


# -- ONNX --------------------------------------------------------------------------------------
def scan_onnx(path: Path, location: str) -> list[Finding]:
    """Findings for an ONNX model: tensors whose external data lies outside its folder.

    The graph is read without its external data, so no weight is loaded. A ``location`` that
    is absolute, climbs with ``..``, or resolves (through links) outside the model's folder
    would make the runtime read that file into the model: ``high``.
    """
    import onnx

    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and onnx's own errors
        return [Finding("medium", "onnx.unreadable", location,
                        f"The ONNX file could not be parsed ({type(exc).__name__}: {exc}); it "
                        "was not inspected.", "Treat a file that cannot be inspected as unsafe.")]
    folder = path.parent.resolve()
    findings = []
    external = 0
    for tensor, where in _onnx_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        external += 1
        entries = {e.key: e.value for e in tensor.external_data}
        target = entries.get("location", "")
        problem = _external_problem(target, folder)
        if problem is not None:
            findings.append(Finding(
                "high", "onnx.external-data-outside", location,
                f"Tensor {tensor.name!r} ({where}) reads its data from {target!r}, {problem}; "
                "loading the model would read that file into its weights.",
                "Keep external data files next to the model and name them relatively "
                "(onnx.save_model(..., location='weights.bin')).",
            ))
    if external:
        findings.append(Finding(
            "info", "onnx.external-data", location,
            f"{external} tensor(s) keep their data in external files.", ""))
    return findings


def _external_problem(target: str, folder: Path) -> str | None:
    if not target:
        return "an empty location"
    if "\x00" in target:
        return "a location with a NUL byte"
    text = target.replace("\\", "/")
    if text.startswith("/") or _DRIVE.match(target) or target.startswith("\\\\"):
        return "an absolute path"
    if ".." in text.split("/"):
        return "a path that climbs out of the model's folder"
    resolved = (folder / text).resolve()
    if resolved != folder and folder not in resolved.parents:
        return "a path that resolves outside the model's folder (through a link)"
    return None


def _onnx_tensors(model: Any) -> Iterator[tuple[Any, str]]:
    yield from _graph_tensors(model.graph, "graph")
    for function in model.functions:
        for node in function.node:
            yield from _attribute_tensors(node, f"function {function.name!r}")
    for index, info in enumerate(model.training_info):
        yield from _graph_tensors(info.initialization, f"training_info[{index}]")
        yield from _graph_tensors(info.algorithm, f"training_info[{index}]")


def _graph_tensors(graph: Any, where: str) -> Iterator[tuple[Any, str]]:
    for tensor in graph.initializer:
        yield tensor, f"initializer of {where}"
    for sparse in graph.sparse_initializer:
        yield sparse.values, f"sparse initializer of {where}"
        yield sparse.indices, f"sparse initializer of {where}"
    for node in graph.node:
        yield from _attribute_tensors(node, where)


def _attribute_tensors(node: Any, where: str) -> Iterator[tuple[Any, str]]:
    label = f"attribute of node {node.name or node.op_type!r} in {where}"
    for attr in node.attribute:
        if attr.HasField("t"):
            yield attr.t, label
        for tensor in attr.tensors:
            yield tensor, label
        if attr.HasField("sparse_tensor"):
            yield attr.sparse_tensor.values, label
        for sparse in attr.sparse_tensors:
            yield sparse.values, label
        if attr.HasField("g"):
            yield from _graph_tensors(attr.g, f"subgraph of {node.op_type}")
        for sub in attr.graphs:
            yield from _graph_tensors(sub, f"subgraph of {node.op_type}")
