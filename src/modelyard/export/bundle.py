"""Edge bundles: one zip that predicts offline with nothing but numpy and onnxruntime.

A bundle holds ``model.onnx``, ``signature.json`` (the version's signature, which the bundled
``predict.py`` enforces), ``model.json`` (where the model came from), ``predict.py`` (a CLI and
an importable module, :mod:`modelyard.export.bundle_predict`), a ``README.md`` and
``checksums.sha256`` (``sha256sum -c`` format) over all of them. ``predict.py`` verifies the
checksums before it loads anything.

The zip is reproducible (the same version gives the same bytes: fixed timestamps, sorted
entries) and written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from modelyard.core.entities import ModelVersion
from modelyard.core.signature import Signature
from modelyard.errors import InvalidInputError

__all__ = ["BUNDLE_FILES", "Bundle", "bundle_files", "write_bundle"]

BUNDLE_FILES = ("README.md", "model.json", "model.onnx", "predict.py", "signature.json")
"""The files a bundle holds besides ``checksums.sha256``."""

_CHECKSUMS = "checksums.sha256"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class Bundle:
    """A written bundle: where it is and the SHA-256 of each file inside."""

    path: Path
    checksums: dict[str, str]
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "checksums": dict(self.checksums),
                "size_bytes": self.size_bytes}


def bundle_files(onnx_model: bytes, version: ModelVersion, *,
                 signature: Signature | None = None,
                 converted: bool = False) -> dict[str, bytes]:
    """The files of a bundle (name -> bytes), checksums included.

    ``version`` is the version the bundle was made from: an ONNX version as registered, or
    (``converted``) a version of another format converted (and checked) for the bundle.
    """
    sig = signature or version.signature
    if sig is None:
        raise InvalidInputError(
            f"{version.uri} has no signature, so the bundle could not check its inputs.",
            hint="Register the model with data=... so that its inputs are known.")
    info = {
        "name": version.name,
        "version": version.version,
        "uri": version.uri,
        "format": version.format,
        "onnx": "converted for this bundle" if converted else "as registered",
        "parent_version": version.lineage.parent_version,
        "registered_at": version.created_at.isoformat(),
        "modelyard_version": _modelyard_version(),
    }
    files = {
        "model.onnx": onnx_model,
        "signature.json": _json(sig.to_dict()),
        "model.json": _json(info),
        "predict.py": resources.files("modelyard.export").joinpath(
            "bundle_predict.py").read_bytes(),
        "README.md": _readme(version, sig).encode(),
    }
    listing = "".join(f"{hashlib.sha256(files[name]).hexdigest()}  {name}\n"
                      for name in sorted(files))
    files[_CHECKSUMS] = listing.encode()
    return files


def write_bundle(output: str | Path, onnx_model: bytes, version: ModelVersion, *,
                 signature: Signature | None = None, converted: bool = False) -> Bundle:
    """Write the bundle zip to ``output`` (atomically) and return what it holds.

    >>> write_bundle("fraud.zip", onnx_bytes, client.resolve("models:/fraud/4"))  # doctest: +SKIP
    """
    path = Path(output)
    if path.suffix.lower() != ".zip":
        raise InvalidInputError(f"The bundle path must end in .zip. Got {str(path)!r} instead.",
                                hint="For example: -o fraud.zip")
    files = bundle_files(onnx_model, version, signature=signature, converted=converted)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(files):
                entry = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                entry.compress_type = zipfile.ZIP_DEFLATED
                entry.external_attr = 0o644 << 16
                archive.writestr(entry, files[name])
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    checksums = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()
                 if name != _CHECKSUMS}
    return Bundle(path=path, checksums=checksums, size_bytes=path.stat().st_size)


def _json(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def _modelyard_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("modelyard")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def _readme(version: ModelVersion, signature: Signature) -> str:
    names = ", ".join(signature.inputs.names[:8])
    more = "" if len(signature.inputs.names) <= 8 else f", ... ({len(signature.inputs.names)})"
    return f"""# {version.name} version {version.version} (edge bundle)

Runs offline with Python 3.10+ and two packages:

    pip install numpy onnxruntime

Inputs ({signature.inputs.kind}): {names}{more}. See signature.json.

    python predict.py input.csv -o predictions.jsonl     # CSV or JSON lines in
    python -c "import predict; print(predict.Model().predict({{...}}))"

predict.py checks every file against checksums.sha256 before loading the model; you can
check them yourself with: sha256sum -c checksums.sha256
"""
