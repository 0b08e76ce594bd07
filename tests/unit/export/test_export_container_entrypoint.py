"""The container entrypoint's pieces (verify, install, command line) and image naming."""

from __future__ import annotations

import hashlib
from importlib.metadata import version
from pathlib import Path

import pytest

from modelyard.export.container import dns_name, pinned_requirements
from modelyard.export.container_entrypoint import (
    RegistryCorrupted,
    command,
    install_registry,
    main,
    verify_tree,
)

CONFIG = {"model": "models:/fraud/3", "grpc": False, "port": 8080}


@pytest.mark.parametrize(
    ("config", "args", "environ", "expected"),
    [
        (CONFIG, [], {},
         ["serve", "models:/fraud/3", "--no-grpc", "--host", "0.0.0.0", "--port", "8080"]),
        (CONFIG, ["--no-auth"], {},
         ["serve", "models:/fraud/3", "--no-grpc", "--host", "0.0.0.0", "--port", "8080",
          "--no-auth"]),
        (CONFIG, ["--host", "127.0.0.1", "--port=9000"], {},
         ["serve", "models:/fraud/3", "--no-grpc", "--host", "127.0.0.1", "--port=9000"]),
        (CONFIG, [], {"MODELYARD_SERVING__HOST": "::", "MODELYARD_SERVING__PORT": "9000"},
         ["serve", "models:/fraud/3", "--no-grpc"]),
        ({**CONFIG, "grpc": True}, [], {},
         ["serve", "models:/fraud/3", "--host", "0.0.0.0", "--port", "8080"]),
        (CONFIG, ["--grpc-port", "8081"], {},
         ["serve", "models:/fraud/3", "--host", "0.0.0.0", "--port", "8080", "--grpc-port",
          "8081"]),
        (CONFIG, ["models", "show", "fraud"], {}, ["models", "show", "fraud"]),
    ],
    ids=["defaults", "no-auth-passes-through", "host-and-port-args", "host-and-port-env",
         "built-with-grpc", "grpc-asked-at-run", "another-command"],
)
def test_command(config: dict[str, object], args: list[str], environ: dict[str, str],
                 expected: list[str]) -> None:
    assert command(config, args, environ) == expected


def _registry(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    sums = "".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in sorted(files.items()))
    (root / "SHA256SUMS").write_text(sums)
    return root


FILES = {"modelyard.db": b"db-1", "artifacts/blobs/sha256/ab/abc": b"blob"}


def test_verify_tree_returns_the_registry_identity(tmp_path: Path) -> None:
    root = _registry(tmp_path / "registry", FILES)
    identity = verify_tree(root)
    assert identity == hashlib.sha256((root / "SHA256SUMS").read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda r: (r / "modelyard.db").write_bytes(b"db-2"), "does not match its checksum"),
        (lambda r: (r / "modelyard.db").unlink(), "is listed in SHA256SUMS but missing"),
        (lambda r: (r / "SHA256SUMS").unlink(), "is missing"),
        (lambda r: (r / "SHA256SUMS").write_text("0" * 64 + "  ../../etc/passwd\n"),
         "malformed line"),
    ],
    ids=["changed", "missing", "no-sums", "unsafe-path"],
)
def test_verify_tree_refuses_a_changed_registry(tmp_path: Path, damage: object,
                                                message: str) -> None:
    root = _registry(tmp_path / "registry", FILES)
    damage(root)  # type: ignore[operator]
    with pytest.raises(RegistryCorrupted, match=message):
        verify_tree(root)


def test_install_registry_copies_once_and_replaces_another_images(tmp_path: Path) -> None:
    registry = _registry(tmp_path / "registry", FILES)
    home = tmp_path / "home"
    assert install_registry(registry, home, "one") is True
    assert (home / "modelyard.db").read_bytes() == b"db-1"
    assert (home / "artifacts/blobs/sha256/ab/abc").read_bytes() == b"blob"
    assert not (home / "SHA256SUMS").exists()
    (home / "logs").mkdir()
    (home / "modelyard.db-wal").write_bytes(b"journal")
    assert install_registry(registry, home, "one") is False  # same image: nothing touched
    assert (home / "modelyard.db-wal").exists()
    newer = _registry(tmp_path / "registry2", {**FILES, "modelyard.db": b"db-2"})
    assert install_registry(newer, home, "two") is True
    assert (home / "modelyard.db").read_bytes() == b"db-2"
    assert not (home / "modelyard.db-wal").exists()  # the old database's journal is gone
    assert (home / "logs").is_dir()  # the inference log stays


def test_main_stops_on_a_damaged_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import modelyard.export.container_entrypoint as entrypoint

    app = tmp_path / "app"
    _registry(app / "registry", FILES)
    (app / "registry" / "modelyard.db").write_bytes(b"tampered")
    (app / "model.json").write_text('{"model": "models:/fraud/3"}')
    monkeypatch.setattr(entrypoint, "__file__", str(app / "entrypoint.py"))
    monkeypatch.setenv("MODELYARD_HOME", str(tmp_path / "home"))
    assert main([]) == 2
    assert "modelyard.db in" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize(
    ("text", "name"),
    [("fraud", "fraud"), ("Fraud_Detector.v2", "fraud-detector-v2"), ("--x--", "x"),
     ("___", "model"), ("a" * 80, "a" * 63)],
    ids=["plain", "escaped", "trimmed", "nothing-left", "too-long"],
)
def test_dns_name(text: str, name: str) -> None:
    assert dns_name(text) == name


@pytest.mark.parametrize(
    ("extras", "present", "absent"),
    [((), ["numpy", "onnxruntime", "uvicorn"], ["torch", "xgboost", "pytest"]),
     (("xgboost",), ["numpy", "xgboost"], ["torch", "lightgbm"])],
    ids=["core", "xgboost-extra"],
)
def test_pinned_requirements(extras: tuple[str, ...], present: list[str],
                             absent: list[str]) -> None:
    pins = pinned_requirements(extras)
    names = {p.split("==")[0].lower() for p in pins}
    for name in present:
        assert f"{name}=={version(name)}" in [p.lower() for p in pins]
    assert not names & set(absent)
    assert all("==" in p for p in pins)
