"""scan_path on files and folders: pickles inside zips (torch, joblib), skops files with untrusted
types, ONNX models whose external data escapes their folder, object .npy arrays, symlinks and
archives, each hand-crafted."""

from __future__ import annotations

import io
import os
import pickle
import random
import re
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import skops.io as sio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from modelyard.errors import NotFoundError
from modelyard.security.findings import Finding
from modelyard.security.scan import ScanLimits, scan_path


class _Evil:
    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, ("echo pwned",))


class Scaler:
    """A user-defined transformer: skops does not trust it."""

    def fit(self, X: object, y: object = None) -> Scaler:
        return self

    def transform(self, X: object) -> object:
        return X


def _severe(findings: list[Finding]) -> list[tuple[str, str, str]]:
    return [(f.severity, f.rule, f.location) for f in findings if f.severity != "info"]


# -- pickles inside zips -------------------------------------------------------------------------
def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize(
    ("name", "member"),
    [("model.pt", "archive/data.pkl"), ("model.pth", "model/constants.pkl"),
     ("bundle.zip", "nested/model.joblib")],
    ids=["torch-archive", "torchscript-constants", "joblib-in-zip"])
def test_pickles_inside_zips(tmp_path: Path, name: str, member: str) -> None:
    path = _zip(tmp_path / name, {member: pickle.dumps(_Evil(), protocol=2),
                                  "archive/data/0": b"\x00" * 64, "archive/version": b"3\n"})
    severe = _severe(scan_path(path))
    assert severe == [("critical", "pickle.dangerous-global", f"{name}:{member}")]


def test_a_real_torch_checkpoint_is_info_only(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "weights.pt"
    torch.save({"linear": torch.nn.Linear(3, 2).state_dict()}, path)
    findings = scan_path(path)
    assert _severe(findings) == []
    assert any(f.rule == "pickle.format" and "persistent id" in f.message for f in findings)


def test_a_string_with_an_invalid_escape_is_read_without_a_warning(tmp_path: Path) -> None:
    """Found by the random-bytes test below in CI: pickletools warns (here: fails) on escapes
    like backslash + 0xf2 in a STRING argument."""
    data = b"\x80\x02S'\\\xf2'\n."
    (tmp_path / "escape.pkl").write_bytes(data)
    # A file named as a pickle: its undecodable string is reported, not raised.
    assert [f.rule for f in scan_path(tmp_path / "escape.pkl")][:1] == ["pickle.incomplete"]
    (tmp_path / "escape.bin").write_bytes(data)  # raw data that starts like a pickle
    assert scan_path(tmp_path / "escape.bin") == []


def test_raw_data_that_starts_like_a_pickle_is_not_reported(tmp_path: Path) -> None:
    # Seeded: about 1 in 2,000 random byte strings after PROTO 2 is itself a valid little
    # pickle (say PROTO, DUP, STOP), which the scanner rightly reports (found in CI).
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\x80\x02" + random.Random(7).randbytes(256))
    assert scan_path(path) == []


def test_a_huge_declared_length_is_not_allocated(tmp_path: Path) -> None:
    """BYTEARRAY8 declaring 2**62 bytes in a 30-byte file: read up to what is there, then
    report the pickle as cut short (a file object allocates the size it is asked for: this
    was a MemoryError, found by random data in CI)."""
    data = b"\x80\x05\x96" + (2**62).to_bytes(8, "little") + b"tail of the file"
    (tmp_path / "huge.pkl").write_bytes(data)
    assert [f.rule for f in scan_path(tmp_path / "huge.pkl")][:1] == ["pickle.incomplete"]
    (tmp_path / "huge.bin").write_bytes(data)
    assert scan_path(tmp_path / "huge.bin") == []


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tail=st.binary(max_size=300), protocol=st.sampled_from([b"\x80\x02", b"\x80\x04",
                                                              b"\x80\x05"]))
def test_any_bytes_after_a_pickle_header_are_scanned_without_raising(
        tmp_path: Path, tail: bytes, protocol: bytes) -> None:
    for name in ("any.pkl", "any.bin"):
        path = tmp_path / name
        path.write_bytes(protocol + tail)
        for finding in scan_path(path):
            assert finding.rule.startswith("pickle.")
            assert finding.message


# -- numpy ---------------------------------------------------------------------------------------
def test_object_npy_is_a_pickle(tmp_path: Path) -> None:
    path = tmp_path / "objects.npy"
    np.save(path, np.array([_Evil(), 1], dtype=object), allow_pickle=True)
    assert ("critical", "pickle.dangerous-global", "objects.npy") in _severe(scan_path(path))


def test_numeric_npz_is_clean(tmp_path: Path) -> None:
    path = tmp_path / "arrays.npz"
    np.savez(path, a=np.arange(10), b=np.ones((2, 3)))
    assert scan_path(path) == []


# -- skops ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    return load_iris(return_X_y=True)


SKOPS = [
    ("plain", lambda: LogisticRegression(max_iter=300), []),
    ("custom-type", lambda: make_pipeline(Scaler(), LogisticRegression(max_iter=300)),
     [("medium", "skops.untrusted-type", rf"{__name__}\.Scaler")]),
    ("os-system", lambda: make_pipeline(FunctionTransformer(os.system)),
     [("high", "skops.dangerous-type", r"\.system")]),
]


@pytest.mark.parametrize(("label", "build", "expected"), SKOPS, ids=[s[0] for s in SKOPS])
def test_skops_untrusted_types(tmp_path: Path, iris: tuple[np.ndarray, np.ndarray], label: str,
                               build: object, expected: list[tuple[str, str, str]]) -> None:
    X, y = iris
    model = build()  # type: ignore[operator]
    if label != "os-system":
        model.fit(X, y)
    path = tmp_path / "model.skops"
    sio.dump(model, path)
    severe = [f for f in scan_path(path) if f.severity != "info"]
    assert [(f.severity, f.rule) for f in severe] == [(s, r) for s, r, _ in expected]
    for finding, (_, _, pattern) in zip(severe, expected, strict=True):
        assert re.search(pattern, finding.message)


def test_a_broken_skops_file_is_medium(tmp_path: Path) -> None:
    path = tmp_path / "broken.skops"
    path.write_bytes(b"not a zip")
    assert _severe(scan_path(path)) == [("medium", "skops.unreadable", "broken.skops")]


# -- ONNX ----------------------------------------------------------------------------------------
def _onnx_with_external(path: Path, location: str) -> Path:
    weight = TensorProto()
    weight.name = "W"
    weight.data_type = TensorProto.FLOAT
    weight.dims.extend([4])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "W"], ["Y"])], "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [4])], initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())  # as is: onnx.save would touch the data file
    return path


@pytest.mark.parametrize(
    ("location", "reason"),
    [("../../etc/passwd", "climbs out"), ("/etc/passwd", "absolute"),
     ("..\\..\\secret.bin", "climbs out"), ("C:\\weights.bin", "absolute"),
     ("link/passwd", "through a link")],
    ids=["dotdot", "absolute", "windows-dotdot", "windows-drive", "symlink"])
def test_onnx_external_data_outside_the_folder_is_high(tmp_path: Path, location: str,
                                                       reason: str) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "link").symlink_to("/etc")
    path = _onnx_with_external(folder / "model.onnx", location)
    findings = scan_path(path)
    high = [f for f in findings if f.severity == "high"]
    assert [f.rule for f in high] == ["onnx.external-data-outside"]
    assert reason in high[0].message
    assert "'W'" in high[0].message


def test_onnx_external_data_beside_the_model_is_fine(tmp_path: Path) -> None:
    path = _onnx_with_external(tmp_path / "model.onnx", "weights/W.bin")
    findings = scan_path(path)
    assert [(f.severity, f.rule) for f in findings] == [("info", "onnx.external-data")]
    onnx.load_model(str(path), load_external_data=False)  # the crafted file is valid ONNX


def test_a_corrupt_onnx_file_is_medium(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\xff" * 64)
    assert _severe(scan_path(path)) == [("medium", "onnx.unreadable", "model.onnx")]


# -- folders, archives, limits -------------------------------------------------------------------
def test_folder_scan_reports_relative_locations_and_escaping_links(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "evil.pkl").write_bytes(pickle.dumps(_Evil()))
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "passwd").symlink_to("/etc/passwd")
    (tmp_path / "inside").symlink_to(tmp_path / "notes.txt")
    assert _severe(scan_path(tmp_path)) == [
        ("critical", "pickle.dangerous-global", "sub/evil.pkl"),
        ("medium", "folder.symlink-outside", "passwd")]


def test_an_archive_with_traversal_is_high(tmp_path: Path) -> None:
    path = _zip(tmp_path / "bundle.zip", {"../evil.txt": b"x", "ok.txt": b"y"})
    severe = _severe(scan_path(path))
    assert severe == [("high", "archive.unsafe-member", "bundle.zip")]


def test_a_zip_bomb_is_medium(tmp_path: Path) -> None:
    path = _zip(tmp_path / "bomb.zip", {"zeros.bin": b"\x00" * 4_000_000})
    # The member and the archive as a whole both inflate past the ratio.
    assert set(_severe(scan_path(path))) == {("medium", "archive.too-large", "bomb.zip")}


def test_a_decompression_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "bomb.joblib"
    payload = pickle.dumps(b"\x00" * 2_000_000, protocol=4)
    path.write_bytes(gzip.compress(payload))
    findings = scan_path(path, ScanLimits(max_decompressed_bytes=100_000))
    assert _severe(findings) == [("medium", "file.decompression-limit", "bomb.joblib")]


def test_nothing_to_scan_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"nothing to scan at .*missing"):
        scan_path(tmp_path / "missing")


def test_scan_pickle_streams_from_memory() -> None:
    from modelyard.security.pickles import scan_pickle

    findings = scan_pickle(io.BytesIO(pickle.dumps(_Evil())), "memory")
    assert findings[0].location == "memory"
    assert findings[0].severity == "critical"
