"""Unpack zip and tar archives without letting them write outside their destination.

An archive is data from someone else, and its member names are paths it chooses: ``../x``,
``/etc/cron.d/x``, a symlink to ``/`` followed by a file written through it, a hard link to a
file outside, a device node, or a few kilobytes that inflate to terabytes. :func:`safe_extract`
checks every member first and refuses the whole archive, with every reason, before writing
anything:

* absolute names (``/x``, ``C:\\x``, ``\\\\host\\x``), names with a ``..`` component, empty
  names and names with NUL bytes;
* symbolic and hard links whose target is absolute or resolves outside the destination;
* anything that is not a regular file, a folder or a link (devices, FIFOs);
* more than ``max_members`` members, more than ``max_total_bytes`` unpacked, or a member (or
  the whole archive) that inflates more than ``max_ratio`` times (a zip bomb).

While writing it checks again: every file is opened without following a final symlink, and
its folder must resolve inside the destination, so an archive cannot write through a link it
created. Files get mode 0644 (0755 when executable); set-uid bits are never restored. Extract
into a fresh, empty folder.

>>> safe_extract("model.zip", "unpacked/")                      # doctest: +SKIP
[PosixPath('unpacked/model.onnx')]
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from modelyard.errors import InvalidInputError, NotFoundError, UnsafeModelError

__all__ = ["ArchiveLimits", "ArchiveMember", "ArchiveProblem", "archive_problems", "list_members",
           "member_problems", "safe_extract"]

_CHUNK = 1 << 20
_RATIO_FLOOR = 1 << 20  # members smaller than this may compress as well as they like
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """How much an archive may unpack to."""

    max_total_bytes: int = 8 * 1024**3
    """Most bytes all members may unpack to together."""

    max_members: int = 100_000
    """Most members (files, folders, links)."""

    max_ratio: float = 250.0
    """Most a member larger than 1 MiB (or the whole archive) may inflate: unpacked size over
    compressed size. Ordinary model files compress less than 10 times."""


MemberKind = Literal["file", "dir", "symlink", "hardlink", "other"]


@dataclass(frozen=True, slots=True)
class ArchiveMember:
    """One entry of a zip or tar archive, the same way for both."""

    name: str
    kind: MemberKind
    size: int
    compressed: int | None = None
    link: str | None = None
    mode: int = 0o644


@dataclass(frozen=True, slots=True)
class ArchiveProblem:
    """Why an archive cannot be unpacked: ``escape`` (a path or link leaving the destination,
    a special file) or ``size`` (too many members, too many bytes, a bomb)."""

    kind: Literal["escape", "size"]
    message: str

    def __str__(self) -> str:
        return self.message


def _name_problem(name: str) -> str | None:
    if not name or name in (".", "./"):
        return "has an empty name"
    if "\x00" in name:
        return "has a NUL byte in its name"
    text = name.replace("\\", "/")
    if text.startswith("/") or _DRIVE.match(text):
        return "has an absolute path"
    if ".." in text.split("/"):
        return "climbs out of the destination with '..'"
    return None


def _link_problem(member: ArchiveMember) -> str | None:
    target = (member.link or "").replace("\\", "/")
    if not target:
        return "is a link with an empty target"
    if target.startswith("/") or _DRIVE.match(target):
        return f"is a link to the absolute path {member.link!r}"
    # A symlink's target is relative to its own folder; a tar hard link's to the archive root.
    base = posixpath.dirname(member.name.replace("\\", "/")) if member.kind == "symlink" else ""
    resolved = posixpath.normpath(posixpath.join(base, target))
    if resolved == ".." or resolved.startswith("../"):
        return f"is a link to {member.link!r}, outside the destination"
    return None


def member_problems(members: list[ArchiveMember], limits: ArchiveLimits,
                    archive_bytes: int | None = None) -> list[ArchiveProblem]:
    """Every reason the members cannot be unpacked safely (empty: they can)."""
    problems: list[ArchiveProblem] = []
    if len(members) > limits.max_members:
        problems.append(ArchiveProblem(
            "size", f"it has {len(members)} members; the limit is {limits.max_members}"))
    total = 0
    for m in members:
        reason = _name_problem(m.name)
        if reason is None and m.kind in ("symlink", "hardlink"):
            reason = _link_problem(m)
        if reason is None and m.kind == "other":
            reason = "is a device, FIFO or other special file"
        if reason is not None:
            problems.append(ArchiveProblem("escape", f"member {m.name!r} {reason}"))
        elif m.compressed is not None and m.size > _RATIO_FLOOR and (
                m.size > limits.max_ratio * max(m.compressed, 1)):
            problems.append(ArchiveProblem(
                "size", f"member {m.name!r} inflates {m.size / max(m.compressed, 1):.0f} times "
                        f"({m.size} bytes from {m.compressed}); the limit is "
                        f"{limits.max_ratio:g} (a zip bomb?)"))
        total += max(m.size, 0)
    if total > limits.max_total_bytes:
        problems.append(ArchiveProblem(
            "size", f"it unpacks to {total} bytes; the limit is {limits.max_total_bytes}"))
    if archive_bytes and total > _RATIO_FLOOR and total > limits.max_ratio * archive_bytes:
        problems.append(ArchiveProblem(
            "size", f"it inflates {total / archive_bytes:.0f} times ({total} bytes from "
                    f"{archive_bytes}); the limit is {limits.max_ratio:g} (a bomb?)"))
    return problems


def _zip_kind(info: zipfile.ZipInfo) -> MemberKind:
    mode = info.external_attr >> 16
    if info.is_dir():
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if mode and not stat.S_ISREG(mode) and stat.S_IFMT(mode):
        return "other"
    return "file"


def _zip_members(archive: zipfile.ZipFile) -> list[ArchiveMember]:
    members = []
    for info in archive.infolist():
        kind = _zip_kind(info)
        link = None
        if kind == "symlink":  # a zip symlink's content is its target
            link = archive.read(info)[:4096].decode("utf-8", "replace")
        mode = (info.external_attr >> 16) & 0o777 or 0o644
        members.append(ArchiveMember(info.filename, kind, info.file_size, info.compress_size,
                                     link, mode))
    return members


def _tar_kind(info: tarfile.TarInfo) -> MemberKind:
    if info.isreg():
        return "file"
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    return "other"


def _tar_members(archive: tarfile.TarFile) -> list[ArchiveMember]:
    return [ArchiveMember(i.name, _tar_kind(i), i.size if i.isreg() else 0, None,
                          i.linkname or None, i.mode) for i in archive.getmembers()]


@contextmanager
def _open(path: Path) -> Iterator[tuple[zipfile.ZipFile | tarfile.TarFile, list[ArchiveMember]]]:
    if not path.is_file():
        raise NotFoundError(f"There is no archive at {str(path)!r}.",
                            hint="Check the path.")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            yield archive, _zip_members(archive)
        return
    try:
        tar = tarfile.open(path, "r:*")  # noqa: SIM115  # closed by the with below
    except tarfile.TarError:
        raise InvalidInputError(f"{str(path)!r} is neither a zip nor a tar archive.",
                                hint="Pass a .zip, .tar, .tar.gz, .tar.bz2 or .tar.xz file.",
                                ) from None
    with tar:
        yield tar, _tar_members(tar)


def list_members(archive: str | Path) -> list[ArchiveMember]:
    """The members of a zip or tar archive, without unpacking anything."""
    with _open(Path(archive)) as (_handle, members):
        return members


def archive_problems(archive: str | Path,
                     limits: ArchiveLimits | None = None) -> list[ArchiveProblem]:
    """Every reason :func:`safe_extract` would refuse ``archive`` (empty: it would unpack it).

    >>> archive_problems("evil.zip")                               # doctest: +SKIP
    ["member '../evil' climbs out of the destination with '..'"]
    """
    path = Path(archive)
    with _open(path) as (_handle, members):
        return member_problems(members, limits or ArchiveLimits(), path.stat().st_size)


def safe_extract(archive: str | Path, dest: str | Path,
                 limits: ArchiveLimits | None = None) -> list[Path]:
    """Unpack a zip or tar archive (gzip, bzip2 or xz compressed) under ``dest``; return the
    files written. Refuses the whole archive, before writing anything, when any member could
    land outside ``dest`` or the archive is a bomb (see the module docstring)."""
    limits = limits or ArchiveLimits()
    path, root = Path(archive), Path(dest)
    with _open(path) as (handle, members):
        problems = member_problems(members, limits, path.stat().st_size)
        if problems:
            shown = "; ".join(p.message for p in problems[:5]) + (
                f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            raise UnsafeModelError(
                f"The archive {str(path)!r} cannot be unpacked safely: {shown}.",
                hint="Re-create the archive with relative paths inside one folder and no links "
                "leaving it; modelyard refuses archives that could write outside their "
                "destination.")
        root.mkdir(parents=True, exist_ok=True)
        writer = _Writer(root.resolve(), limits.max_total_bytes, str(path))
        if isinstance(handle, zipfile.ZipFile):
            for info, member in zip(handle.infolist(), members, strict=True):
                if member.kind != "file":
                    writer.write(member, None)
                    continue
                with handle.open(info) as source:
                    writer.write(member, source)
        else:
            for tinfo, member in zip(handle.getmembers(), members, strict=True):
                _extract_tar_member(handle, tinfo, member, writer)
        return writer.written


def _extract_tar_member(handle: tarfile.TarFile, tinfo: tarfile.TarInfo, member: ArchiveMember,
                        writer: _Writer) -> None:
    if member.kind == "hardlink":
        # A copy of the linked member's bytes: never a link to a file outside.
        try:
            linked = handle.getmember(member.link or "")
        except KeyError:
            linked = None
        if linked is None or not linked.isreg():
            raise writer.refuse(member, f"is a hard link to {member.link!r}, which is not a "
                                        "regular file earlier in the archive")
        member = ArchiveMember(member.name, "file", linked.size, mode=linked.mode)
        tinfo = linked
    if member.kind != "file":
        writer.write(member, None)
        return
    source = handle.extractfile(tinfo)
    if source is None:
        raise writer.refuse(member, "has no readable content")
    with source:
        writer.write(member, source)


class _Writer:
    def __init__(self, root: Path, budget: int, archive: str) -> None:
        self.root = root
        self.budget = budget
        self.archive = archive
        self.written: list[Path] = []

    def refuse(self, member: ArchiveMember, reason: str) -> UnsafeModelError:
        return UnsafeModelError(
            f"The archive {self.archive!r} cannot be unpacked safely: member {member.name!r} "
            f"{reason}. Files written before it stay in {str(self.root)!r}.",
            hint="Delete that folder, and re-create the archive with plain files.")

    def _target(self, member: ArchiveMember) -> Path:
        parts = [p for p in member.name.replace("\\", "/").split("/") if p not in ("", ".")]
        target = self.root.joinpath(*parts)
        parent = target.parent.resolve()
        if parent != self.root and self.root not in parent.parents:
            raise self.refuse(member, "would be written through a link that leaves the "
                                       "destination")
        return target

    def write(self, member: ArchiveMember, source: IO[bytes] | None) -> None:
        target = self._target(member)
        if member.kind == "dir":
            if target.is_symlink():
                raise self.refuse(member, "is a folder where the archive made a link")
            target.mkdir(parents=True, exist_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        if member.kind == "symlink":
            if target.is_symlink() or target.exists():
                raise self.refuse(member, "replaces an existing file with a link")
            os.symlink(member.link or "", target)
            # Checked by name before; now by what it points to on disk, through the links
            # made so far (a -> . then a/b -> ../x escapes although 'a/../x' does not).
            resolved = target.resolve()
            if resolved != self.root and self.root not in resolved.parents:
                target.unlink()
                raise self.refuse(member, f"is a link to {member.link!r}, which resolves "
                                          "outside the destination")
            return
        mode = 0o755 if member.mode & 0o100 else 0o644
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(target, flags, mode)
        except OSError as exc:
            raise self.refuse(member, f"cannot be written ({exc.strerror}; a link?)") from None
        with os.fdopen(fd, "wb") as out:
            while source is not None and (chunk := source.read(_CHUNK)):
                self.budget -= len(chunk)
                if self.budget < 0:
                    raise self.refuse(member, "unpacks to more bytes than the archive declared")
                out.write(chunk)
        self.written.append(target)
