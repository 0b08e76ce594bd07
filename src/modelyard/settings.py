"""The one typed settings object.

Built once (by the CLI, an app factory or :class:`modelyard.Client`) and passed down. No other
module reads ``os.environ``. Every field can be set through an environment variable with the
``MODELYARD_`` prefix; nested sections use a double underscore, for example
``MODELYARD_REGISTRY__PROFILE_SAMPLE_ROWS=50000``.
"""

from __future__ import annotations

import getpass
from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "BatchingSettings",
    "DeploymentSettings",
    "RegistrySettings",
    "ServingSettings",
    "Settings",
]


class RegistrySettings(BaseModel):
    """How versions are registered and their reference profiles computed."""

    profile_sample_rows: int = Field(default=100_000, ge=0)
    """Rows of the registration data kept as a seeded sample, so drift tests can be exact."""

    profile_bins: int = Field(default=20, ge=2, le=1000)
    """Histogram bins per numeric column in the reference profile."""

    profile_top_categories: int = Field(default=100, ge=1)
    """Most frequent categories kept per categorical column (the rest count as 'other')."""

    profile_seed: int = 0
    """Seed of the reference sample, so that the same data gives the same profile."""

    busy_timeout_s: float = Field(default=60.0, gt=0)
    """How long a writer waits for the SQLite write lock before giving up."""


class BatchingSettings(BaseModel):
    """Adaptive batching of concurrent requests to one model."""

    max_batch_size: int = Field(default=64, ge=1)
    """Most rows merged into one predict call; a larger request runs alone."""

    max_batch_delay_ms: float = Field(default=2.0, ge=0)
    """Longest a request waits for others to join its batch."""


class DeploymentSettings(BaseModel):
    """One model a server serves, with its own limits."""

    model: str
    """Reference to serve: ``models:/NAME@ALIAS`` (followed as it moves), ``models:/NAME/3``."""

    name: str | None = None
    """Name clients use; default: the registered model's name."""

    batching: BatchingSettings | None = None
    """Per-model batching; default: the server's."""

    replicas: int = Field(default=1, ge=1)
    """Runtime replicas (threads) predicting batches of this model concurrently."""

    timeout_s: float | None = Field(default=None, gt=0)
    """Per-request timeout for this model; default: the server's."""


class ServingSettings(BaseModel):
    """The inference server."""

    deployments: list[DeploymentSettings] = Field(default_factory=list)
    """The models to serve (the CLI fills this from its arguments or a YAML file)."""

    null_route: bool = False
    """Expose POST /v2/null, a fixed answer on the same HTTP stack (the benchmark ceiling)."""

    host: str = "127.0.0.1"
    """Interface to bind; loopback by default, set 0.0.0.0 to serve the network."""

    port: int = Field(default=8080, ge=0, le=65535)
    """REST port."""

    grpc_port: int | None = Field(default=8081, ge=0, le=65535)
    """gRPC port; None disables gRPC."""

    workers: int = Field(default=1, ge=1)
    """Server processes (each loads its own copy of the models)."""

    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    """Largest request body accepted; larger ones get 413."""

    request_timeout_s: float = Field(default=30.0, gt=0)
    """A request not answered in this time gets 504."""

    max_queue: int = Field(default=1024, ge=1)
    """Requests waiting per model before new ones get 503 with Retry-After."""

    alias_poll_s: float = Field(default=2.0, gt=0)
    """How often the server checks whether the aliases it serves have moved."""

    inline_predict_ms: float = Field(default=1.0, ge=0)
    """A model whose predict calls typically take less than this runs on the event loop:
    handing a batch to a thread and back costs ~0.1 ms on one core, more than such a model
    takes. Slower models (and any model whose calls turn slow) run in their threads; 0 keeps
    every model in threads."""

    memory_budget_mb: int = Field(default=2048, ge=1)
    """Explicit versions loaded on demand are evicted least-recently-used past this budget."""

    batching: BatchingSettings = Field(default_factory=BatchingSettings)


class Settings(BaseSettings):
    """All of modelyard's configuration.

    Example:
        >>> from modelyard.settings import Settings
        >>> s = Settings(home="/tmp/yard")
        >>> s.resolved_database_url()
        'sqlite:////tmp/yard/modelyard.db'
    """

    model_config = SettingsConfigDict(
        env_prefix="MODELYARD_", env_nested_delimiter="__", extra="ignore"
    )

    home: Path = Field(default_factory=lambda: Path.home() / ".modelyard")
    """Where the embedded defaults live: the SQLite database, artifacts, caches."""

    database_url: str | None = None
    """SQLAlchemy URL of the registry database; default: a SQLite file in ``home``.
    PostgreSQL: ``postgresql://user@host:5432/db`` (needs ``modelyard[postgres]``)."""

    artifact_uri: str | None = None
    """Where artifacts are stored: a local path or any fsspec URI (``file://``, ``memory://``,
    ``s3://bucket/prefix``); default: ``home/artifacts``."""

    user: str | None = None
    """Who is recorded as the actor of registrations and alias moves; default: the OS user."""

    registry: RegistrySettings = Field(default_factory=RegistrySettings)

    serving: ServingSettings = Field(default_factory=ServingSettings)

    def resolved_database_url(self) -> str:
        """The database URL to use, with the embedded SQLite default filled in."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home.expanduser() / 'modelyard.db'}"

    def resolved_artifact_uri(self) -> str:
        """The artifact location to use, with the local default filled in."""
        if self.artifact_uri:
            return self.artifact_uri
        return str(self.home.expanduser() / "artifacts")

    def actor(self) -> str:
        """The name recorded for changes made with these settings."""
        if self.user:
            return self.user
        try:
            return getpass.getuser()
        except (KeyError, OSError):  # no passwd entry in some containers
            return "unknown"
