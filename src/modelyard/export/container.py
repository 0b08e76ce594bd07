"""Docker build contexts that serve one registered version, with the model baked in.

``write_container_context`` writes::

    Dockerfile          slim Python base, pinned dependencies, non-root user (uid 10001),
                        HEALTHCHECK on /v2/health/ready (a Python one-liner: no curl needed)
    .dockerignore
    README.md           build, run, authentication
    requirements.txt    modelyard's dependencies pinned to the versions installed here
    wheels/             the modelyard wheel itself (built with ``pip wheel --no-deps``)
    app/entrypoint.py   verifies the registry, copies it to MODELYARD_HOME, execs the server
    app/model.json      the reference served, the port, gRPC on or off
    app/registry/       a registry holding just this version: SQLite database, artifacts
                        (model and reference profile, content-addressed), SHA256SUMS

The reference profile holds a seeded sample of the registration data (monitoring in the
container compares traffic with it); ``with_profile=False`` leaves it out of the image.

The baked registry keeps the version's number, lineage, signature, aliases that point to it
and its signatures, so what serves in the container is byte for byte what was registered: its
artifact digest is checked when the model loads, and every file of the registry when the
container starts.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from modelyard.core.entities import ModelVersion
from modelyard.errors import ConfigurationError, IntegrityError, InvalidInputError

if TYPE_CHECKING:  # SQLAlchemy loads only when a context is written
    from modelyard.registry.artifacts import ArtifactStore
    from modelyard.registry.sql import SqlRegistryStore

__all__ = [
    "ContainerContext",
    "RegistrySource",
    "build_wheel",
    "dns_name",
    "export_registry",
    "image_name",
    "pinned_requirements",
    "write_container_context",
]

UID = 10001
"""The unprivileged user (and group) id the image runs as; manifests refer to it."""

HOME = "/var/lib/modelyard"
"""MODELYARD_HOME inside the image: must be writable (an emptyDir under Kubernetes)."""

_EXTRAS = {"torch": "torch", "xgboost": "xgboost", "lightgbm": "lightgbm"}
_ACTOR = "modelyard-export"


class RegistrySource(Protocol):
    """Where the version comes from: ``modelyard.Client`` fits."""

    @property
    def store(self) -> SqlRegistryStore: ...

    @property
    def artifacts(self) -> ArtifactStore: ...


@dataclass(frozen=True, slots=True)
class ContainerContext:
    """A written build context."""

    directory: Path
    image: str
    """Suggested tag: ``modelyard-NAME:VERSION``."""

    model: str
    """What the image serves: ``models:/NAME/VERSION``."""

    wheel: Path
    registry_digest: str
    """SHA-256 of the registry's SHA256SUMS: identifies everything baked in."""

    files: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "image": self.image, "model": self.model,
                "wheel": str(self.wheel), "registry_digest": self.registry_digest,
                "files": list(self.files)}


def write_container_context(
    source: RegistrySource,
    version: ModelVersion,
    output: str | Path,
    *,
    wheel: str | Path | None = None,
    grpc: bool = False,
    port: int = 8080,
    with_keys: bool = False,
    with_profile: bool = True,
    base_image: str | None = None,
) -> ContainerContext:
    """Write a Docker build context serving ``version`` into the empty folder ``output``.

    ``wheel`` is a modelyard wheel to install; by default one is built from the source
    checkout this modelyard runs from (``pip wheel --no-deps``). ``with_keys`` copies the
    registry's unrevoked API keys (salted hashes only) so the container can require them.
    ``with_profile=False`` leaves out the reference profile, which holds a sample of the
    registration data (monitoring inside the container then has no reference).

    >>> ctx = write_container_context(client, client.resolve("models:/fraud@production"),
    ...                               "build/")                             # doctest: +SKIP
    >>> ctx.image                                                            # doctest: +SKIP
    'modelyard-fraud:3'
    """
    out = Path(output)
    if out.exists() and any(out.iterdir()):
        raise InvalidInputError(
            f"The folder {str(out)!r} is not empty; a build context is written into an empty "
            "folder so that nothing stale ends up in the image.",
            hint="Pick a new folder, or empty this one.")
    if not 0 < port < 65536:
        raise InvalidInputError(f"The port must be 1-65535. Got {port} instead.")
    (out / "wheels").mkdir(parents=True, exist_ok=True)
    if wheel is None:
        wheel_path = build_wheel(out / "wheels")
    else:
        given = Path(wheel)
        if not given.is_file() or not given.name.startswith("modelyard-") or (
                given.suffix != ".whl"):
            raise InvalidInputError(f"{str(given)!r} is not a modelyard wheel file.",
                                    hint="Build one with: pip wheel --no-deps . -w dist/")
        wheel_path = out / "wheels" / given.name
        shutil.copyfile(given, wheel_path)
    app = out / "app"
    app.mkdir()
    digest = export_registry(source, version, app / "registry", with_keys=with_keys,
                             with_profile=with_profile)
    model = version.uri
    (app / "model.json").write_text(json.dumps(
        {"model": model, "grpc": grpc, "port": port,
         "artifact_digest": version.artifact_digest, "registry_digest": digest},
        indent=2) + "\n")
    (app / "entrypoint.py").write_bytes(
        resources.files("modelyard.export").joinpath("container_entrypoint.py").read_bytes())
    extras = [_EXTRAS[version.format]] if version.format in _EXTRAS else []
    requirements = pinned_requirements(extras)
    (out / "requirements.txt").write_text(_requirements_text(requirements, extras))
    image = image_name(version)
    base = base_image or f"python:{sys.version_info.major}.{sys.version_info.minor}-slim"
    (out / "Dockerfile").write_text(_dockerfile(base, wheel_path.name, version, digest, port,
                                                grpc))
    (out / ".dockerignore").write_text("**/__pycache__\n**/*.pyc\n")
    (out / "README.md").write_text(_readme(image, version, port, grpc))
    files = tuple(sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()))
    return ContainerContext(directory=out, image=image, model=model, wheel=wheel_path,
                            registry_digest=digest, files=files)


# -- the registry ----------------------------------------------------------------------------
def export_registry(source: RegistrySource, version: ModelVersion, home: str | Path, *,
                    with_keys: bool = False, with_profile: bool = True) -> str:
    """Write a registry holding only ``version`` (same number, lineage, signature and
    artifacts) into the new folder ``home``; return the digest of its SHA256SUMS listing."""
    from sqlalchemy import insert, select

    from modelyard.core.entities import Status
    from modelyard.registry.artifacts import ArtifactStore
    from modelyard.registry.sql import SqlRegistryStore
    from modelyard.registry.sql.engine import write_connection
    from modelyard.registry.sql.schema import model_versions, registered_models
    from modelyard.registry.sql.security_tables import api_keys, version_signatures

    root = Path(home)
    if root.exists() and any(root.iterdir()):
        raise InvalidInputError(f"{str(root)!r} is not empty.")
    root.mkdir(parents=True, exist_ok=True)
    artifacts = ArtifactStore(str(root / "artifacts"))
    profile = version.profile_digest if with_profile else None
    for digest in filter(None, (version.artifact_digest, profile)):
        _copy_tree(source.artifacts, artifacts, digest)
    store = SqlRegistryStore(f"sqlite:///{root / 'modelyard.db'}")
    try:
        with write_connection(store.engine) as conn:
            model_id = conn.execute(insert(registered_models).values(
                name=version.name, description="", tags={}, status=Status.READY.value,
                last_version=version.version, created_at=version.created_at,
                updated_at=version.created_at).returning(registered_models.c.id)).scalar_one()
            conn.execute(insert(model_versions).values(
                model_id=model_id, version=version.version, format=version.format,
                status=Status.READY.value, description=version.description,
                tags=dict(version.tags), created_at=version.created_at,
                created_by=version.created_by, artifact_digest=version.artifact_digest,
                size_bytes=version.size_bytes,
                signature=version.signature.to_dict() if version.signature else None,
                lineage=version.lineage.to_dict(), runtime_meta=dict(version.runtime_meta),
                profile_digest=profile))
            with source.store.engine.connect() as src:
                signatures = src.execute(select(version_signatures).where(
                    version_signatures.c.model == version.name,
                    version_signatures.c.version == version.version)).mappings().all()
                keys = src.execute(select(api_keys).where(
                    api_keys.c.revoked_at.is_(None))).mappings().all() if with_keys else []
            for row in signatures:
                conn.execute(insert(version_signatures).values(**dict(row)))
            for row in keys:
                conn.execute(insert(api_keys).values(**dict(row)))
        for alias in _aliases_of(source, version):
            store.set_alias(version.name, alias, version.version, _ACTOR,
                            "baked into a container image")
    finally:
        store.close()  # the last connection checkpoints SQLite's WAL into the database file
    for leftover in root.glob("modelyard.db-*"):
        leftover.unlink()
    for lock in root.glob("*.lock"):
        lock.unlink()
    return _write_sums(root)


def _aliases_of(source: RegistrySource, version: ModelVersion) -> list[str]:
    aliases = source.store.get_model(version.name).aliases
    return sorted(alias for alias, number in aliases.items() if number == version.version)


def _copy_tree(source: ArtifactStore, target: ArtifactStore, digest: str) -> None:
    with tempfile.TemporaryDirectory(prefix="modelyard-bake-") as tmp:
        source.fetch_tree(digest, tmp)  # verifies every file on the way
        copied, _ = target.put_tree(tmp)
    if copied != digest:
        raise IntegrityError(
            f"The artifact tree {digest[:12]} copied to the image registry as {copied[:12]}; "
            "its manifest could not be reproduced.",
            hint="Run 'modelyard security verify' on the registry and report this.")


def _write_sums(root: Path) -> str:
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest}  {path.relative_to(root).as_posix()}\n")
    text = "".join(lines).encode()
    (root / "SHA256SUMS").write_bytes(text)
    return hashlib.sha256(text).hexdigest()


# -- the wheel and dependencies --------------------------------------------------------------
def build_wheel(output: str | Path, *, project: str | Path | None = None,
                timeout_s: float = 300) -> Path:
    """Build the modelyard wheel from its source checkout into ``output``; return its path.

    modelyard is not on a package index, so the image installs this wheel. ``project``
    defaults to the checkout this module was loaded from."""
    root = Path(project) if project is not None else Path(__file__).resolve().parents[3]
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file() or 'name = "modelyard"' not in pyproject.read_text():
        raise ConfigurationError(
            f"modelyard is not running from a source checkout ({str(root)!r} has no modelyard "
            "pyproject.toml), so there is nothing to build a wheel from.",
            hint="Pass a wheel you built: --wheel modelyard-X.Y.Z-py3-none-any.whl.")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.glob("modelyard-*.whl"))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
             "--disable-pip-version-check", str(root), "-w", str(out)],
            capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigurationError(f"Building the modelyard wheel failed: {exc}.",
                                 hint="Build it yourself and pass --wheel PATH.") from exc
    wheels = sorted(set(out.glob("modelyard-*.whl")) | before, key=lambda p: p.stat().st_mtime)
    if done.returncode != 0 or not wheels:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ConfigurationError(
            f"'pip wheel --no-deps {root}' failed (exit {done.returncode}): {' '.join(tail)}",
            hint="Build the wheel yourself and pass --wheel PATH.")
    return wheels[-1]


def pinned_requirements(extras: Sequence[str] = ()) -> list[str]:
    """modelyard's direct dependencies (and those of ``extras``) pinned to the versions
    installed here, for a Linux image: what was tested is what the image gets."""
    from importlib.metadata import PackageNotFoundError, requires, version

    from packaging.requirements import Requirement

    linux = {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix"}
    pinned: dict[str, str] = {}
    for spec in requires("modelyard") or []:
        req = Requirement(spec)
        wanted = req.marker is None or any(
            req.marker.evaluate({**linux, "extra": extra}) for extra in ("", *extras))
        if not wanted or req.name == "modelyard":
            continue
        try:
            pinned[req.name.lower()] = f"{req.name}=={version(req.name)}"
        except PackageNotFoundError:
            raise ConfigurationError(
                f"The dependency {req.name!r} is not installed here, so its version cannot be "
                "pinned.", hint=f"Install modelyard[{','.join(extras) or 'export'}] first.",
            ) from None
    return [pinned[name] for name in sorted(pinned)]


def _requirements_text(requirements: list[str], extras: list[str]) -> str:
    head = ["# modelyard's dependencies, pinned to the versions it was exported with."]
    if any(r.lower().startswith("torch==") and "+cpu" in r for r in requirements):
        head.append("--extra-index-url https://download.pytorch.org/whl/cpu")
    if extras:
        head.append(f"# extras: {', '.join(extras)}")
    return "\n".join([*head, *requirements]) + "\n"


# -- names -----------------------------------------------------------------------------------
def dns_name(text: str, *, limit: int = 63) -> str:
    """``text`` as a DNS-1123 label (lowercase letters, digits and '-'): Kubernetes names,
    image repositories.

    >>> dns_name("Fraud_Detector.v2")
    'fraud-detector-v2'
    """
    out = "".join(c if c.isascii() and c.isalnum() else "-" for c in text.lower())
    out = "-".join(part for part in out.split("-") if part)[:limit].strip("-")
    return out or "model"


def image_name(version: ModelVersion) -> str:
    """The tag suggested for ``version``'s image: ``modelyard-NAME:VERSION``."""
    return f"modelyard-{dns_name(version.name, limit=100)}:{version.version}"


# -- text ------------------------------------------------------------------------------------
def _dockerfile(base: str, wheel: str, version: ModelVersion, digest: str, port: int,
                grpc: bool) -> str:
    probe = ("import os,sys,urllib.request as u; "
             "r=u.urlopen('http://127.0.0.1:%s/v2/health/ready' % "
             f"os.environ.get('MODELYARD_SERVING__PORT','{port}'), timeout=4); "
             "sys.exit(0 if r.status == 200 else 1)")
    expose = f"{port} 8081" if grpc else str(port)
    return f"""\
# modelyard serving {version.uri} ({version.format}), written by 'modelyard export container'.
#   docker build -t {image_name(version)} .
#   docker run --rm -p {port}:{port} {image_name(version)} --no-auth    # see README.md
FROM {base}

ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PIP_NO_CACHE_DIR=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1 \\
    MODELYARD_HOME={HOME}

# A fixed unprivileged user, so that Kubernetes' runAsNonRoot can check the numeric id.
RUN groupadd --system --gid {UID} modelyard \\
 && useradd --system --uid {UID} --gid {UID} --no-create-home --home-dir {HOME} \\
      --shell /usr/sbin/nologin modelyard

COPY requirements.txt /tmp/build/requirements.txt
COPY wheels/{wheel} /tmp/build/{wheel}
RUN pip install --no-cache-dir -r /tmp/build/requirements.txt /tmp/build/{wheel} \\
 && rm -rf /tmp/build

# The model, baked in: a registry holding just this version, checked at every start.
COPY app/ /opt/modelyard/
RUN mkdir -p {HOME} && chown {UID}:{UID} {HOME}

LABEL org.opencontainers.image.title="modelyard-{dns_name(version.name)}" \\
      io.modelyard.model="{version.uri}" \\
      io.modelyard.format="{version.format}" \\
      io.modelyard.artifact-digest="sha256:{version.artifact_digest}" \\
      io.modelyard.registry-digest="sha256:{digest}"

USER {UID}:{UID}
WORKDIR {HOME}
EXPOSE {expose}
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \\
  CMD ["python", "-c", "{probe}"]
ENTRYPOINT ["python", "/opt/modelyard/entrypoint.py"]
CMD []
"""


def _readme(image: str, version: ModelVersion, port: int, grpc: bool) -> str:
    grpc_line = ("gRPC listens on 8081 too." if grpc
                 else "gRPC is off; pass --grpc-port 8081 to turn it on.")
    return f"""# {version.uri} in a container

    docker build -t {image} .
    docker run --rm -p {port}:{port} {image} --no-auth

The image serves {version.uri} (format {version.format}) over the Open Inference Protocol v2
on port {port}; {grpc_line} Health: /v2/health/live and /v2/health/ready (the HEALTHCHECK).

## Authentication: choose one

modelyard refuses to serve a non-loopback address without API keys. Arguments after the
image name go to `modelyard serve`:

* `--no-auth` (or `-e MODELYARD_SECURITY__AUTH=off`): no keys, for a server behind a gateway
  or mesh that authenticates. The server logs a warning.
* Keys baked in: build the context with `modelyard export container ... --with-keys`; the
  registry's unrevoked keys (salted hashes, never secrets) are copied, and clients send the
  keys `modelyard keys create` printed.

## Files and writable paths

`MODELYARD_HOME` ({HOME}) must be writable: at start the entrypoint verifies the baked
registry (`app/registry/SHA256SUMS`) and copies it there; the inference log is written there
too. With a read-only root filesystem mount an emptyDir (or a volume) at {HOME} and at /tmp.

The baked registry includes the version's reference profile, a sample of its registration
data, so monitoring works in the container; export with `--no-profile` to leave it out.

Run as uid {UID}. Rebuild the context to change the model: it is pinned to version
{version.version}, artifact sha256:{version.artifact_digest[:16]}...
"""
