"""safe_extract with malicious zips and tars: traversal, absolute names, links out, hard links,
device nodes and bombs are refused before anything is written; ordinary archives unpack."""

from __future__ import annotations

import io
import re
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from modelyard.errors import InvalidInputError, NotFoundError, UnsafeModelError
from modelyard.security.archives import ArchiveLimits, archive_problems, safe_extract


def _zip(path: Path, members: list[tuple[str, bytes, int | None]]) -> Path:
    """Members: (name, data, unix mode or None)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if mode is not None:
                info.external_attr = mode << 16
            archive.writestr(info, data)
    return path


def _tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]],
         mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as archive:  # type: ignore[call-overload]
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                archive.addfile(member)
            else:
                name, data = member
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return path


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _special(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.devmajor, info.devminor = 1, 3
    return info


SYMLINK = stat.S_IFLNK | 0o777
ZEROS = b"\x00" * 2_000_000

MALICIOUS = [
    ("zip-dotdot", "evil.zip", [("../evil.txt", b"x", None)], r"'\.\./evil\.txt' climbs out"),
    ("zip-absolute", "evil.zip", [("/tmp/evil.txt", b"x", None)], r"absolute path"),
    ("zip-windows-drive", "evil.zip", [("C:\\evil.txt", b"x", None)], r"absolute path"),
    ("zip-backslash-dotdot", "evil.zip", [("a\\..\\..\\evil", b"x", None)], r"climbs out"),
    ("zip-symlink-to-etc", "evil.zip", [("etc", b"/etc", SYMLINK)], r"link to the absolute"),
    ("zip-symlink-up", "evil.zip", [("a/up", b"../../x", SYMLINK)], r"outside the destination"),
    ("zip-bomb", "bomb.zip", [("zeros.bin", ZEROS, None)], r"inflates \d+ times"),
    ("tar-dotdot", "evil.tar.gz", [("../evil.txt", b"x")], r"climbs out"),
    ("tar-absolute", "evil.tar.gz", [("/etc/cron.d/evil", b"x")], r"absolute path"),
    ("tar-symlink-to-etc", "evil.tar.gz", [_link("etc", "/etc")], r"link to the absolute"),
    ("tar-symlink-up", "evil.tar.gz", [_link("d/up", "../../outside")], r"outside the dest"),
    ("tar-hardlink-escape", "evil.tar.gz",
     [_link("passwd", "../../../etc/passwd", tarfile.LNKTYPE)], r"outside the destination"),
    ("tar-hardlink-absolute", "evil.tar.gz", [_link("passwd", "/etc/passwd", tarfile.LNKTYPE)],
     r"link to the absolute"),
    ("tar-char-device", "evil.tar.gz", [_special("null", tarfile.CHRTYPE)], r"device, FIFO"),
    ("tar-fifo", "evil.tar.gz", [_special("pipe", tarfile.FIFOTYPE)], r"device, FIFO"),
    ("tar-bomb", "bomb.tar.gz", [("zeros.bin", ZEROS)], r"inflates \d+ times"),
]


@pytest.mark.parametrize(("label", "name", "members", "match"), MALICIOUS,
                         ids=[m[0] for m in MALICIOUS])
def test_malicious_archives_are_refused_before_writing(tmp_path: Path, label: str, name: str,
                                                       members: list[object],
                                                       match: str) -> None:
    if name.endswith(".zip"):
        path = _zip(tmp_path / name, [*members, ("ok.txt", b"fine", None)])  # type: ignore[list-item]
    else:
        path = _tar(tmp_path / name, [*members, ("ok.txt", b"fine")])  # type: ignore[list-item]
    dest = tmp_path / "out"
    limits = ArchiveLimits(max_ratio=50.0)
    with pytest.raises(UnsafeModelError, match=match):
        safe_extract(path, dest, limits)
    assert not dest.exists()  # refused as a whole: not even the harmless member
    problems = archive_problems(path, limits)
    assert any(re.search(match, p.message) for p in problems)
    assert {p.kind for p in problems} == {"size" if "bomb" in label else "escape"}


def test_limits_on_members_and_total_size(tmp_path: Path) -> None:
    path = _zip(tmp_path / "many.zip", [(f"f{i}.txt", b"0123456789", None) for i in range(20)])
    with pytest.raises(UnsafeModelError, match=r"20 members; the limit is 10"):
        safe_extract(path, tmp_path / "a", ArchiveLimits(max_members=10))
    with pytest.raises(UnsafeModelError, match=r"unpacks to 200 bytes; the limit is 100"):
        safe_extract(path, tmp_path / "b", ArchiveLimits(max_total_bytes=100))


def test_a_link_chain_that_escapes_on_disk_is_refused(tmp_path: Path) -> None:
    # 'a -> .' and 'a/b -> ../x' each look inside by name; on disk a/b is ./b -> ../x: outside.
    path = _tar(tmp_path / "chain.tar", [_link("a", "."), _link("a/b", "../x")], mode="w")
    with pytest.raises(UnsafeModelError, match=r"'a/b' is a link to '\.\./x', which resolves "
                                               r"outside"):
        safe_extract(path, tmp_path / "out")
    assert not (tmp_path / "out" / "b").is_symlink()


def test_writing_through_an_existing_link_is_refused(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (dest / "cache").symlink_to(tmp_path / "elsewhere")
    path = _tar(tmp_path / "t.tar", [("cache/x.txt", b"x")], mode="w")
    with pytest.raises(UnsafeModelError, match=r"through a link that leaves the destination"):
        safe_extract(path, dest)
    assert not (tmp_path / "elsewhere" / "x.txt").exists()


def test_a_file_over_a_link_it_made_is_refused(tmp_path: Path) -> None:
    path = _tar(tmp_path / "t.tar", [("real.txt", b"r"), _link("alias", "real.txt"),
                                     ("alias", b"overwrite")], mode="w")
    with pytest.raises(UnsafeModelError, match=r"'alias' cannot be written"):
        safe_extract(path, tmp_path / "out")
    assert (tmp_path / "out" / "real.txt").read_bytes() == b"r"


@pytest.mark.parametrize("kind", ["zip", "tar.gz", "tar.bz2", "tar.xz"])
def test_ordinary_archives_unpack(tmp_path: Path, kind: str) -> None:
    files = [("model/model.onnx", b"onnx bytes"), ("model/weights/W.bin", b"\x01" * 1000),
             ("README", b"hello")]
    if kind == "zip":
        path = _zip(tmp_path / "m.zip", [(n, d, None) for n, d in files]
                    + [("model/latest", b"model.onnx", SYMLINK)])
    else:
        setuid = tarfile.TarInfo("run.sh")
        setuid.size, setuid.mode = 4, 0o4755
        path = tmp_path / f"m.{kind}"
        with tarfile.open(path, f"w:{kind.split('.')[1]}") as archive:
            for name, data in files:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            archive.addfile(_link("model/latest", "model.onnx"))
            archive.addfile(_link("copy.onnx", "model/model.onnx", tarfile.LNKTYPE))
            archive.addfile(setuid, io.BytesIO(b"echo"))
    dest = tmp_path / "out"
    written = safe_extract(path, dest)
    assert (dest / "model" / "weights" / "W.bin").read_bytes() == b"\x01" * 1000
    assert (dest / "model" / "latest").read_bytes() == b"onnx bytes"  # a link inside: kept
    assert dest / "README" in written
    if kind != "zip":
        assert (dest / "copy.onnx").read_bytes() == b"onnx bytes"
        assert not (dest / "copy.onnx").is_symlink()  # hard links become copies
        assert stat.S_IMODE((dest / "run.sh").stat().st_mode) == 0o755  # no set-uid bit


@pytest.mark.parametrize(
    ("content", "error", "match"),
    [(None, NotFoundError, r"no archive at"),
     (b"just some text", InvalidInputError, r"neither a zip nor a tar")],
    ids=["missing", "not-an-archive"])
def test_not_an_archive(tmp_path: Path, content: bytes | None, error: type[Exception],
                        match: str) -> None:
    path = tmp_path / "x.bin"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=match):
        safe_extract(path, tmp_path / "out")
