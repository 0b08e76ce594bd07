"""Edge bundles from a real registry, run where modelyard is not installed.

The slow test unpacks a bundle into a fresh virtual environment holding only numpy and
onnxruntime (and what they depend on), pinned to the versions installed here, and runs the
bundled predict.py there as a command and as a module: its predictions must equal modelyard's.
The environment is made once per test session.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
import zipfile
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelyard import Client
from modelyard.cli.main import main
from modelyard.export import export_onnx
from modelyard.settings import Settings


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, np.ndarray]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, np.asarray(load_iris().target_names)[y]  # text labels


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             iris: tuple[pd.DataFrame, np.ndarray]) -> Client:
    home = tmp_path / "home"
    monkeypatch.setenv("MODELYARD_HOME", str(home))
    client = Client(Settings(home=home, user="tester"))
    X, y = iris
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    client.register(model, "iris", data=X, alias="production")
    client.register(LogisticRegression(max_iter=1000).fit(X, y), "bare")  # no reference sample
    return client


def _unzip(path: Path, folder: Path) -> Path:
    with zipfile.ZipFile(path) as archive:
        archive.extractall(folder)
    return folder


def test_cli_bundles_an_onnx_version_as_registered(
        registry: Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    done = export_onnx(registry.load("models:/iris/1"),
                       registry.get_reference_sample("models:/iris/1"), registry.register)
    out = tmp_path / "iris.zip"
    assert main(["export", "bundle", done.version.uri, "-o", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["equivalence"] is None  # nothing converted: the registered graph, verified
    assert doc["model"] == done.version.uri
    folder = _unzip(out, tmp_path / "bundle")
    info = json.loads((folder / "model.json").read_text())
    assert (info["format"], info["onnx"], info["parent_version"]) == ("onnx", "as registered", 1)
    onnx_path = folder / "model.onnx"
    assert onnx_path.read_bytes() == _registered_onnx(registry, done.version.uri)


def _registered_onnx(client: Client, uri: str) -> bytes:
    import tempfile

    v = client.resolve(uri)
    with tempfile.TemporaryDirectory() as tmp:
        client.artifacts.fetch_tree(v.artifact_digest, tmp)
        return (Path(tmp) / "model.onnx").read_bytes()


def test_cli_converts_other_formats_for_the_bundle(
        registry: Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "iris.zip"
    assert main(["export", "bundle", "models:/iris@production", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Checked on 150 reference rows" in printed
    assert f"Wrote {out}" in " ".join(printed.split())
    info = json.loads(_unzip(out, tmp_path / "b").joinpath("model.json").read_text())
    assert (info["format"], info["onnx"]) == ("sklearn", "converted for this bundle")
    assert [v.version for v in registry.list_versions("iris")] == [1]  # nothing registered


def test_cli_bundle_without_a_sample_to_check(
        registry: Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "bundle", "models:/bare/1", "-o", str(tmp_path / "b.zip")]) == 2
    assert "has no reference sample" in capsys.readouterr().err
    assert not (tmp_path / "b.zip").exists()


# -- the bundle in a fresh environment -----------------------------------------------------------
@pytest.fixture(scope="session")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with numpy and onnxruntime only (same versions as here)."""
    root = tmp_path_factory.mktemp("bundle-venv")
    venv.create(root, with_pip=False, symlinks=True)
    python = root / "bin" / "python"
    wanted = [f"numpy=={version('numpy')}", f"onnxruntime=={version('onnxruntime')}"]
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--disable-pip-version-check", *wanted],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"pip could not install {wanted}: {done.stderr[-2000:]}"
    return python


@pytest.mark.slow
def test_bundle_predicts_like_modelyard_with_only_numpy_and_onnxruntime(
        registry: Client, tmp_path: Path, bare_python: Path,
        iris: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, _ = iris
    done = export_onnx(registry.load("models:/iris/1"),
                       registry.get_reference_sample("models:/iris/1"), registry.register)
    assert main(["export", "bundle", done.version.uri, "-o", str(tmp_path / "iris.zip")]) == 0
    folder = _unzip(tmp_path / "iris.zip", tmp_path / "bundle")
    served = registry.load(done.version.uri)
    labels = np.asarray(served.predict(X))
    proba = np.asarray(served.predict_proba(X))

    # Nothing of modelyard's stack is importable there.
    probe = subprocess.run(
        [str(bare_python), "-c", "import importlib.util as u; print([m for m in ('modelyard',"
         " 'sklearn', 'pandas', 'pyarrow') if u.find_spec(m)])"],
        capture_output=True, text=True, check=True, cwd=tmp_path)
    assert probe.stdout.strip() == "[]"

    # As a command: CSV in (with an id passed through), JSON lines out.
    X.assign(id=[f"row-{i}" for i in range(len(X))]).to_csv(tmp_path / "in.csv", index=False)
    subprocess.run([str(bare_python), "predict.py", str(tmp_path / "in.csv"), "-o",
                    str(tmp_path / "out.jsonl")], cwd=folder, check=True, timeout=60)
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == [f"row-{i}" for i in range(len(X))]
    assert [r["prediction"] for r in records] == labels.tolist()
    np.testing.assert_allclose([r["probabilities"] for r in records], proba, rtol=1e-6)

    # As a module, from JSON rows on standard input.
    script = ("import json, sys, predict\n"
              "m = predict.Model()\n"
              "rows = json.load(sys.stdin)\n"
              "print(json.dumps({'labels': m.predict(rows).tolist(),"
              " 'proba': m.predict_proba(rows).tolist()}))\n")
    done_module = subprocess.run(
        [str(bare_python), "-c", script], cwd=folder, check=True, timeout=60,
        input=json.dumps(X.to_dict(orient="records")), capture_output=True, text=True)
    result = json.loads(done_module.stdout)
    assert result["labels"] == labels.tolist()
    np.testing.assert_allclose(result["proba"], proba, rtol=1e-6)

    # A changed byte stops it before anything is predicted.
    model = folder / "model.onnx"
    model.write_bytes(model.read_bytes()[:-1] + bytes([model.read_bytes()[-1] ^ 1]))
    broken = subprocess.run([str(bare_python), "predict.py", str(tmp_path / "in.csv")],
                            cwd=folder, capture_output=True, text=True, timeout=60, check=False)
    assert broken.returncode == 2
    assert "model.onnx does not match its checksum" in broken.stderr
