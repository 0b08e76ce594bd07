"""Container build contexts from a real registry, and their entrypoint serving for real.

No Docker engine runs here. The slow test does what the image does, minus the image: it builds
the context (with a freshly built modelyard wheel), installs that wheel into a fresh virtual
environment, runs the context's entrypoint there on 127.0.0.1, waits for /v2/health/ready and
compares a prediction with modelyard's. The environment reuses this checkout's installed
dependencies through a path file (installing scikit-learn, torch and the rest again would take
minutes); modelyard itself comes only from the wheel, which the test checks.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import venv
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from modelyard import Client
from modelyard.cli.main import main
from modelyard.errors import IntegrityError, InvalidInputError
from modelyard.export.container import export_registry, write_container_context
from modelyard.export.container_entrypoint import verify_tree
from modelyard.registry.sql.key_store import SqlKeyStore
from modelyard.settings import Settings


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    X, _ = load_breast_cancer(return_X_y=True, as_frame=True)
    return X.iloc[:, :6]


def _registry(home: Path, cancer: pd.DataFrame) -> Client:
    client = Client(Settings(home=home, user="tester"))
    y = (cancer.iloc[:, 0] > cancer.iloc[:, 0].median()).to_numpy()
    client.register(LogisticRegression(max_iter=1000).fit(cancer, y), "cancer", data=cancer)
    client.register(LogisticRegression(max_iter=1000).fit(cancer, ~y), "cancer", data=cancer,
                    alias="production", metrics={"auc": 0.97})
    return client


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, cancer: pd.DataFrame) -> Iterator[Client]:
    client = _registry(tmp_path_factory.mktemp("container-registry"), cancer)
    yield client
    client.close()


@pytest.fixture
def registry(shared: Client, monkeypatch: pytest.MonkeyPatch) -> Client:
    """The module's registry (tests only read it), as the CLI's home for one test."""
    monkeypatch.setenv("MODELYARD_HOME", str(shared.settings.home))
    return shared


def _fake_wheel(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "modelyard-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip is enough to copy
    return wheel


def test_the_baked_registry_holds_exactly_the_version(registry: Client, tmp_path: Path,
                                                      cancer: pd.DataFrame) -> None:
    SqlKeyStore(registry.store.engine).create(name="ci", role="predictor", actor="tester",
                                              now=time.time())
    version = registry.resolve("models:/cancer@production")
    home = tmp_path / "baked"
    digest = export_registry(registry, version, home, with_keys=True)
    assert verify_tree(home) == digest
    assert not list(home.glob("modelyard.db-*"))  # the WAL was checkpointed into the file
    with Client(Settings(home=home, user="reader")) as baked:
        copy = baked.resolve("models:/cancer@production")
        assert copy.to_dict() | {"aliases": []} == version.to_dict() | {"aliases": []}
        assert copy.aliases == ("production",)
        assert [v.version for v in baked.list_versions("cancer")] == [2]
        assert baked.get_profile(copy.uri).to_dict() == registry.get_profile(
            version.uri).to_dict()
        np.testing.assert_array_equal(baked.load(copy.uri).predict(cancer),
                                      registry.load(version.uri).predict(cancer))
        assert [k.name for k in SqlKeyStore(baked.store.engine).list_keys()] == ["ci"]


def test_the_profile_can_stay_out_of_the_image(registry: Client, tmp_path: Path,
                                               cancer: pd.DataFrame) -> None:
    version = registry.resolve("models:/cancer/1")
    export_registry(registry, version, tmp_path / "baked", with_profile=False)
    with Client(Settings(home=tmp_path / "baked", user="reader")) as baked:
        copy = baked.resolve(version.uri)
        assert copy.profile_digest is None
        assert copy.artifact_digest == version.artifact_digest
        blobs = {p.name for p in (tmp_path / "baked" / "artifacts").rglob("*") if p.is_file()}
        assert version.profile_digest not in blobs
        with pytest.raises(InvalidInputError, match="has no reference profile"):
            baked.get_reference_sample(copy.uri)
        assert len(baked.load(copy.uri).predict(cancer)) == len(cancer)


def test_context_files(registry: Client, tmp_path: Path) -> None:
    version = registry.resolve("models:/cancer@production")
    ctx = write_container_context(registry, version, tmp_path / "build",
                                  wheel=_fake_wheel(tmp_path / "dist"))
    assert ctx.image == "modelyard-cancer:2"
    assert ctx.model == "models:/cancer/2"
    for name in ("Dockerfile", ".dockerignore", "README.md", "requirements.txt",
                 "wheels/modelyard-0.1.0-py3-none-any.whl", "app/entrypoint.py",
                 "app/model.json", "app/registry/SHA256SUMS", "app/registry/modelyard.db"):
        assert name in ctx.files
    dockerfile = (ctx.directory / "Dockerfile").read_text()
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert f"FROM python:{minor}-slim" in dockerfile
    assert "USER 10001:10001" in dockerfile
    assert "/v2/health/ready" in dockerfile
    assert "curl" not in dockerfile
    assert "wget" not in dockerfile
    assert "COPY wheels/modelyard-0.1.0-py3-none-any.whl" in dockerfile
    assert 'ENTRYPOINT ["python", "/opt/modelyard/entrypoint.py"]' in dockerfile
    assert f'io.modelyard.artifact-digest="sha256:{version.artifact_digest}"' in dockerfile
    healthcheck = dockerfile.split("HEALTHCHECK", 1)[1].split('CMD ["python", "-c", "', 1)[1]
    compile(healthcheck.split('"]', 1)[0], "healthcheck", "exec")  # a valid Python one-liner
    requirements = (ctx.directory / "requirements.txt").read_text().splitlines()
    assert "numpy==" + np.__version__ in requirements
    config = json.loads((ctx.directory / "app" / "model.json").read_text())
    assert config == {"model": "models:/cancer/2", "grpc": False, "port": 8080,
                      "artifact_digest": version.artifact_digest,
                      "registry_digest": ctx.registry_digest}
    readme = (ctx.directory / "README.md").read_text()
    assert "--no-auth" in readme
    assert "--with-keys" in readme


@pytest.mark.parametrize(
    ("prepare", "error", "message"),
    [
        (lambda p: (p / "build").mkdir() or (p / "build" / "stale").write_text("x"),
         InvalidInputError, "is not empty"),
        (lambda p: None, InvalidInputError, "is not a modelyard wheel"),
    ],
    ids=["non-empty-folder", "not-a-wheel"],
)
def test_context_refusals(registry: Client, tmp_path: Path, prepare: object,
                          error: type[Exception], message: str) -> None:
    prepare(tmp_path)  # type: ignore[operator]
    other = tmp_path / "other.txt"
    other.write_text("x")
    wheel = _fake_wheel(tmp_path / "dist") if "empty" in message else other
    with pytest.raises(error, match=message):
        write_container_context(registry, registry.resolve("models:/cancer/1"),
                                tmp_path / "build", wheel=wheel)


def test_a_changed_artifact_is_not_baked(tmp_path: Path, cancer: pd.DataFrame) -> None:
    registry = _registry(tmp_path / "own", cancer)
    version = registry.resolve("models:/cancer/1")
    manifest = registry.artifacts.get_manifest(version.artifact_digest)
    blob = Path(registry.artifacts._blob_path(manifest.entries[0].sha256))
    blob.write_bytes(blob.read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match="changed"):
        export_registry(registry, version, tmp_path / "baked")
    registry.close()


def test_cli_reports_the_next_steps(registry: Client, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    wheel = _fake_wheel(tmp_path / "dist")
    assert main(["export", "container", "models:/cancer@production", "-o",
                 str(tmp_path / "build"), "--wheel", str(wheel)]) == 0
    out = capsys.readouterr()
    assert "docker build -t modelyard-cancer:2" in out.out
    assert "--no-auth" in out.err


# -- the entrypoint, serving for real ------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"The entrypoint exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"Not ready within {timeout} s:\n{log.read_text()}")


@pytest.mark.slow
def test_the_entrypoint_serves_the_baked_model(registry: Client, tmp_path: Path,
                                               cancer: pd.DataFrame) -> None:
    context = tmp_path / "build"
    assert main(["export", "container", "models:/cancer@production", "-o", str(context)]) == 0
    (wheel,) = (context / "wheels").glob("modelyard-*.whl")

    # A fresh environment with the context's wheel; the dependencies through a path file.
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False, symlinks=True)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.check_output(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        text=True).strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                    "--no-deps", "--disable-pip-version-check", str(wheel)],
                   check=True, timeout=120, capture_output=True)
    where = subprocess.check_output([str(python), "-c",
                                     "import modelyard; print(modelyard.__file__)"], text=True)
    assert where.strip().startswith(str(site))  # modelyard comes from the wheel

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["MODELYARD_HOME"] = str(tmp_path / "container-home")
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(python), str(context / "app" / "entrypoint.py"), "--host", "127.0.0.1",
             "--port", str(port), "--no-log"], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log, timeout=60)
        rows = cancer.head(5)
        body = {"inputs": [{"name": c, "shape": [len(rows)], "datatype": "FP64",
                            "data": rows[c].tolist()} for c in rows.columns]}
        r = httpx.post(f"{url}/v2/models/cancer/infer", json=body, timeout=30)
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["model_version"] == "2"
        outputs = {o["name"]: o["data"] for o in answer["outputs"]}
        expected = registry.load("models:/cancer/2")
        assert outputs["predict"] == expected.predict(rows).tolist()
        np.testing.assert_allclose(outputs["predict_proba"],
                                   np.ravel(expected.predict_proba(rows)))
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    assert code == 0, log.read_text()
    assert (tmp_path / "container-home" / "modelyard.db").is_file()


# -- manifests for the image -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "files"),
    [([], ["deployment.yaml", "hpa.yaml", "pdb.yaml", "service.yaml"]),
     (["--kserve"], ["inferenceservice.yaml"])],
    ids=["plain", "kserve"],
)
def test_cli_writes_manifests_for_the_resolved_version(
        registry: Client, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
        files: list[str]) -> None:
    import yaml

    out = tmp_path / "k8s"
    assert main(["export", "k8s", "models:/cancer@production", "-o", str(out), "--image",
                 "ghcr.io/acme/cancer:2", "--port", "9000", "--no-auth", *args]) == 0
    assert sorted(p.name for p in out.iterdir()) == files
    assert "kubectl apply -f" in capsys.readouterr().out
    docs = [yaml.safe_load((out / name).read_text()) for name in files]
    first = docs[0]
    assert first["metadata"]["annotations"]["modelyard.io/model"] == "models:/cancer/2"
    pod = (first["spec"]["predictor"] if args else first["spec"]["template"]["spec"])
    container = pod["containers"][0]
    assert container["image"] == "ghcr.io/acme/cancer:2"
    assert container["args"][-1] == "--no-auth"
    assert container["args"][container["args"].index("--port") + 1] == "9000"
    assert container["ports"][0]["containerPort"] == 9000
    assert container["readinessProbe"]["httpGet"]["port"] in (9000, "http")


def test_cli_refuses_grpc_with_kserve(registry: Client, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "k8s", "models:/cancer/2", "-o", str(tmp_path / "k"), "--kserve",
                 "--grpc"]) == 2
    assert "--grpc does not apply with --kserve" in capsys.readouterr().err
    assert not (tmp_path / "k").exists()
