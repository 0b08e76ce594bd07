"""Edge bundles: what the zip holds, and the bundled predict.py run in this process.

The graphs are built by hand so that expected outputs are known exactly. The same predict.py
runs in a fresh virtual environment with only numpy and onnxruntime in
tests/integration/test_export_bundle.py.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelyard.core.entities import Lineage, ModelVersion, Status
from modelyard.core.signature import ColumnSpec, Schema, Signature, TensorSpec
from modelyard.errors import InvalidInputError
from modelyard.export.bundle import BUNDLE_FILES, bundle_files, write_bundle
from modelyard.export.bundle_predict import ChecksumError, Model, main, verify

W = np.array([[2.0, -1.0], [0.5, 0.5], [-1.0, 2.0]], dtype=np.float32)
COLUMNS = Signature(Schema("columns", columns=(
    ColumnSpec("a", "float64"), ColumnSpec("b", "int64"), ColumnSpec("c", "float64", True))))
TENSOR = Signature(Schema("tensors", tensors=(TensorSpec("input", "float32", (-1, 3)),)))


def _classifier() -> bytes:
    """input [N, 3] -> softmax(input @ W) as probabilities, argmax as label."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "w"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
         helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0)],
        "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(W, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _expected(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logits = rows.astype(np.float32) @ W
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return logits.argmax(axis=1), e / e.sum(axis=1, keepdims=True)


def _version(signature: Signature | None = COLUMNS) -> ModelVersion:
    return ModelVersion(
        name="fraud", version=4, format="onnx", status=Status.READY,
        created_at=datetime(2026, 1, 1, tzinfo=UTC), created_by="tester",
        artifact_digest="ab" * 32, size_bytes=10, signature=signature,
        lineage=Lineage(parent_version=3))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    written = write_bundle(tmp_path / "fraud.zip", _classifier(), _version())
    out = tmp_path / "bundle"
    with zipfile.ZipFile(written.path) as archive:
        archive.extractall(out)
    return out


ROWS = np.array([[1.0, 2, 0.5], [-1.0, 0, 3.0], [0.0, 1, np.nan]])


# -- the zip ------------------------------------------------------------------------------------
def test_bundle_files_and_checksums() -> None:
    files = bundle_files(_classifier(), _version())
    assert sorted(files) == sorted([*BUNDLE_FILES, "checksums.sha256"])
    listing = files["checksums.sha256"].decode().splitlines()
    assert [line.split("  ")[1] for line in listing] == sorted(BUNDLE_FILES)
    for line in listing:
        digest, name = line.split("  ")
        assert hashlib.sha256(files[name]).hexdigest() == digest
    assert json.loads(files["signature.json"]) == COLUMNS.to_dict()
    info = json.loads(files["model.json"])
    assert (info["uri"], info["format"], info["parent_version"]) == ("models:/fraud/4", "onnx", 3)
    assert info["onnx"] == "as registered"
    assert b"import modelyard" not in files["predict.py"]


def test_the_zip_is_reproducible(tmp_path: Path) -> None:
    first = write_bundle(tmp_path / "a.zip", _classifier(), _version())
    second = write_bundle(tmp_path / "b.zip", _classifier(), _version())
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.checksums == second.checksums
    with zipfile.ZipFile(first.path) as archive:
        assert archive.namelist() == sorted(archive.namelist())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip", "b.zip"]  # no temp file


@pytest.mark.parametrize(
    ("output", "version", "message"),
    [("fraud.tar", _version(), "must end in .zip"),
     ("fraud.zip", _version(signature=None), "has no signature")],
    ids=["not-zip", "no-signature"],
)
def test_write_bundle_refusals(tmp_path: Path, output: str, version: ModelVersion,
                               message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        write_bundle(tmp_path / output, _classifier(), version)


# -- predict.py as a module ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "data",
    [
        {"a": ROWS[:, 0], "b": ROWS[:, 1].astype(int), "c": ROWS[:, 2]},
        [{"a": r[0], "b": int(r[1]), "c": None if np.isnan(r[2]) else r[2]} for r in ROWS],
        ROWS,
        {"c": ROWS[:, 2].tolist(), "b": ROWS[:, 1].astype(int).tolist(),
         "a": ROWS[:, 0].tolist(), "id": ["x", "y", "z"]},
    ],
    ids=["columns", "records", "matrix", "other-order-and-extra-column"],
)
def test_model_predicts_from_every_input_form(folder: Path, data: Any) -> None:
    model = Model(folder)
    labels, proba = _expected(np.nan_to_num(ROWS))
    # NaN reaches the graph as NaN (c is nullable): compare the rows without it exactly.
    np.testing.assert_array_equal(model.predict(data)[:2], labels[:2])
    np.testing.assert_allclose(model.predict_proba(data)[:2], proba[:2], rtol=1e-6)
    assert model.is_classifier
    assert model.input_names == ["a", "b", "c"]


def test_one_row_as_a_dict(folder: Path) -> None:
    model = Model(folder)
    labels, _ = _expected(ROWS[:1])
    assert model.predict({"a": 1.0, "b": 2, "c": 0.5}).tolist() == labels.tolist()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"a": [1.0], "b": [2]}, r"Missing input column\(s\) \['c'\]"),
        ({"a": [np.nan], "b": [2], "c": [1.0]}, "'a' holds missing values"),
        ({"a": ["high"], "b": [2], "c": [1.0]}, "'a' must hold float64 numbers"),
        ({"a": [1.0], "b": [2.5], "c": [1.0]}, "'b' must hold whole numbers"),
        (np.ones((2, 4)), "must have 3 columns"),
        ("text", "Pass a dict of columns"),
    ],
    ids=["missing-column", "nan-not-nullable", "text-in-number", "fraction-in-int",
         "wrong-width", "not-a-table"],
)
def test_inputs_are_checked_against_the_signature(folder: Path, data: Any,
                                                  message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Model(folder).predict(data)


def test_tensor_signature(tmp_path: Path) -> None:
    written = write_bundle(tmp_path / "t.zip", _classifier(), _version(TENSOR))
    with zipfile.ZipFile(written.path) as archive:
        archive.extractall(tmp_path / "t")
    model = Model(tmp_path / "t")
    rows = np.nan_to_num(ROWS)
    np.testing.assert_array_equal(model.predict(rows), _expected(rows)[0])
    np.testing.assert_array_equal(model.predict(rows[0]), _expected(rows[:1])[0])
    with pytest.raises(ValueError, match=r"must have shape \[-1, 3\]"):
        model.predict(np.ones((2, 5)))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / "model.onnx").write_bytes((f / "model.onnx").read_bytes() + b"\0"),
         "model.onnx does not match its checksum"),
        (lambda f: (f / "signature.json").unlink(), "signature.json is listed"),
        (lambda f: (f / "checksums.sha256").unlink(), "is missing"),
        (lambda f: (f / "checksums.sha256").write_text(
            "\n".join(line for line in (f / "checksums.sha256").read_text().splitlines()
                      if "model.onnx" not in line)), r"does not cover \['model.onnx'\]"),
        (lambda f: (f / "checksums.sha256").write_text("0" * 64 + "  ../etc/passwd\n"),
         "is not '<sha256>  <file>'"),
    ],
    ids=["changed-model", "missing-file", "no-checksums", "model-not-covered", "unsafe-path"],
)
def test_a_damaged_bundle_does_not_load(folder: Path, damage: Any, message: str) -> None:
    damage(folder)
    with pytest.raises(ChecksumError, match=message):
        Model(folder)


def test_verify_returns_the_digests(folder: Path) -> None:
    digests = verify(folder)
    assert sorted(digests) == sorted(BUNDLE_FILES)


def test_imported_as_predict_from_the_bundle_folder(folder: Path) -> None:
    spec = importlib.util.spec_from_file_location("predict", folder / "predict.py")
    assert spec is not None
    assert spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.Model()  # the folder predict.py lives in
    assert model.folder == folder.resolve()
    assert model.predict({"a": 1.0, "b": 2, "c": 0.5}).tolist() == _expected(ROWS[:1])[0].tolist()


# -- predict.py as a command --------------------------------------------------------------------
def test_cli_csv_to_jsonl_with_passthrough(folder: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id,a,b,c\nr1,1.0,2,0.5\nr2,-1.0,0,3.0\nr3,0.0,1,\n")
    target = tmp_path / "out.jsonl"
    assert main([str(source), "-o", str(target), "--model", str(folder)]) == 0
    records = [json.loads(line) for line in target.read_text().splitlines()]
    labels, proba = _expected(np.nan_to_num(ROWS))
    assert [r["id"] for r in records] == ["r1", "r2", "r3"]
    assert [r["prediction"] for r in records[:2]] == labels[:2].tolist()
    np.testing.assert_allclose([r["probabilities"] for r in records[:2]], proba[:2], rtol=1e-6)


def test_cli_jsonl_to_stdout(folder: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"a": 1.0, "b": 2, "c": 0.5}\n\n{"a": -1.0, "b": 0, "c": 3.0}\n')
    assert main([str(source), "--model", str(folder)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["prediction"] for r in records] == _expected(ROWS[:2])[0].tolist()


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [('{"a": 1.0, "b": 2}\n', "in.jsonl", "Missing input column"),
     ("not json\n", "in.jsonl", "Line 1 is not valid JSON"),
     (None, "absent.csv", "No such file")],
    ids=["missing-column", "bad-json", "no-file"],
)
def test_cli_errors_are_one_line(folder: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str], content: str | None,
                                 name: str, message: str) -> None:
    source = tmp_path / name
    if content is not None:
        source.write_text(content)
    assert main([str(source), "--model", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: ")
    assert message in err
