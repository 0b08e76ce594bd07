"""The entrypoint of a modelyard container image (``/opt/modelyard/entrypoint.py``).

Written into every build context by ``modelyard export container``; standard library only.
On start it

1. verifies every file of the baked-in registry against ``registry/SHA256SUMS`` (a changed
   byte stops the container before anything is served);
2. copies that registry into ``MODELYARD_HOME`` (default ``/var/lib/modelyard``), a writable
   folder (an ``emptyDir`` under a read-only root filesystem), unless it already holds this
   exact registry: the inference log, SQLite's journal and temporary files go there;
3. replaces itself (``exec``) with ``modelyard serve models:/NAME/VERSION``, so the server is
   the container's main process and receives SIGTERM directly.

Extra arguments are passed through to ``modelyard serve``; operators choose, for example
``--no-auth`` (or ``MODELYARD_SECURITY__AUTH=off``) behind an authenticating gateway, or
``--workers 2``. The server binds ``0.0.0.0`` unless ``--host`` or ``MODELYARD_SERVING__HOST``
says otherwise, and speaks gRPC only if the image was built with it (or ``--grpc-port`` is
given). Arguments that start with a command instead of an option run that command:
``docker run IMAGE models show NAME``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = ["command", "install_registry", "main", "verify_tree"]

SUMS = "SHA256SUMS"
_MARKER = ".modelyard-image-registry"
_DEFAULT_HOME = "/var/lib/modelyard"


class RegistryCorrupted(RuntimeError):
    """A baked-in registry file is missing or changed since the image was built."""


def verify_tree(root: Path) -> str:
    """Check every file listed in ``root/SHA256SUMS``; return the SHA-256 of that listing
    (which identifies the whole registry)."""
    listing = root / SUMS
    if not listing.is_file():
        raise RegistryCorrupted(f"{listing} is missing: the image's registry cannot be checked.")
    text = listing.read_bytes()
    for line in text.decode("utf-8").splitlines():
        digest, sep, name = line.partition("  ")
        rel = PurePosixPath(name)
        if not sep or rel.is_absolute() or ".." in rel.parts:
            raise RegistryCorrupted(f"{listing} holds a malformed line: {line!r}.")
        path = root.joinpath(*rel.parts)
        if not path.is_file():
            raise RegistryCorrupted(f"{rel} is listed in {SUMS} but missing from {root}.")
        if _sha256(path) != digest:
            raise RegistryCorrupted(
                f"{rel} in {root} does not match its checksum: the image was changed after it "
                "was built. Rebuild it from 'modelyard export container'.")
    return hashlib.sha256(text).hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def install_registry(registry: Path, home: Path, identity: str) -> bool:
    """Copy the baked registry into ``home`` unless it is already there; True if copied.

    Blobs are content-addressed, so existing ones are kept; the database is replaced when
    ``home`` holds another image's registry (the marker file says which)."""
    marker = home / _MARKER
    if marker.is_file() and marker.read_text().strip() == identity:
        return False
    home.mkdir(parents=True, exist_ok=True)
    for source in sorted(registry.rglob("*")):
        if not source.is_file() or source.name == SUMS:
            continue
        target = home / source.relative_to(registry)
        if target.exists() and "blobs" in target.parts:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    for stale in ("modelyard.db-wal", "modelyard.db-shm"):  # another database's journal
        (home / stale).unlink(missing_ok=True)
    marker.write_text(identity + "\n")
    return True


def command(config: Mapping[str, Any], args: Sequence[str],
            environ: Mapping[str, str]) -> list[str]:
    """The ``modelyard`` arguments to run: ``serve`` with the baked model, plus ``args``."""
    extra = list(args)
    if extra and not extra[0].startswith("-"):
        return extra  # a command of its own: models show, keys create...
    argv = ["serve", str(config["model"])]
    if not config.get("grpc", False) and not _has(extra, "--grpc-port"):
        argv.append("--no-grpc")
    if not _has(extra, "--host") and "MODELYARD_SERVING__HOST" not in environ:
        argv += ["--host", "0.0.0.0"]  # a container serves its network
    if not _has(extra, "--port") and "MODELYARD_SERVING__PORT" not in environ:
        argv += ["--port", str(config.get("port", 8080))]
    return argv + extra


def _has(args: Sequence[str], option: str) -> bool:
    return any(a == option or a.startswith(option + "=") for a in args)


def main(argv: Sequence[str] | None = None) -> int:
    """Verify, install, then exec ``python -m modelyard ...`` (returns only on failure)."""
    here = Path(__file__).resolve().parent
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        config = json.loads((here / "model.json").read_text(encoding="utf-8"))
        identity = verify_tree(here / "registry")
        home = Path(os.environ.get("MODELYARD_HOME") or _DEFAULT_HOME)
        install_registry(here / "registry", home, identity)
    except (RegistryCorrupted, OSError, ValueError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    os.environ["MODELYARD_HOME"] = str(home)
    argv_out = [sys.executable, "-m", "modelyard", *command(config, args, os.environ)]
    sys.stdout.flush()
    os.execv(sys.executable, argv_out)
    return 0  # pragma: no cover - execv does not return


if __name__ == "__main__":
    sys.exit(main())
