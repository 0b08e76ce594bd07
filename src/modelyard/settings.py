"""The one typed settings object.

Built once (by the CLI, an app factory or :class:`modelyard.Client`) and passed down. No other
module reads ``os.environ``. Every field can be set through an environment variable with the
``MODELYARD_`` prefix; nested sections use a double underscore, for example
``MODELYARD_REGISTRY__PROFILE_SAMPLE_ROWS=50000``.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "BatchingSettings",
    "DeploymentSettings",
    "MonitoringSettings",
    "RegistrySettings",
    "SecuritySettings",
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

    log_sample_rate: float | None = Field(default=None, ge=0, le=1)
    """Share of this model's requests written to the inference log; default: the
    monitoring section's."""

    prefer_onnx: bool | None = None
    """Serve through the version's verified ONNX export; default: the server's
    ``prefer_onnx``."""


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

    trusted_proxies: list[str] = Field(default_factory=list)
    """Addresses (or CIDR ranges) of reverse proxies whose ``X-Forwarded-For`` names the
    real client, as the limiter of failed key attempts sees it. Empty (the default): the
    peer's own address, and no forwarding middleware on the request path."""

    gc_young_threshold: int = Field(default=10_000, ge=0)
    """Python's first garbage-collection threshold while serving (Python's default: 700).
    A batch of requests in flight holds a few hundred container objects for a moment, so at
    700 the collector ran ~450 times a second on a busy server, for ~4% of its core; at 10,000
    almost never (measured under wrk at c=64, one core). 0 keeps Python's default."""

    prefer_onnx: bool = False
    """Serve a scikit-learn version through its verified ONNX export when it has one (a
    version ``modelyard export onnx`` registered from it, not quantized or pruned): the server
    then never imports scikit-learn for it (measured: ready in 0.75 s instead of 2.1 s, 147
    instead of 247 MiB, single-row requests 2.3x faster). Answers, logs and metrics still
    name the source version; probabilities may differ by the export's checked tolerance."""

    memory_budget_mb: int = Field(default=2048, ge=1)
    """Explicit versions loaded on demand are evicted least-recently-used past this budget."""

    rollout_check_s: float = Field(default=1.0, gt=0)
    """How often the server judges the rollouts it serves (advance, promote or roll back a
    challenger from the statistics of the traffic it answered)."""

    shadow_max_inflight: int = Field(default=64, ge=1)
    """Shadow mode: copies of requests waiting for the challenger at most; beyond that a copy
    is skipped (and counted), so that a slow challenger never holds the server's memory."""

    batching: BatchingSettings = Field(default_factory=BatchingSettings)


class MonitoringSettings(BaseModel):
    """The inference log and the monitoring loop."""

    log_enabled: bool = True
    """Log every prediction (inputs, outputs, latency) for drift, performance and audits."""

    log_uri: str | None = None
    """Where the inference log and feedback labels go: a folder or fsspec URI for Parquet
    files (default: ``home/logs``), or ``sql`` for tables in the registry database."""

    log_sample_rate: float = Field(default=1.0, ge=0, le=1)
    """Share of requests logged (per model overridable in a deployment)."""

    log_queue_size: int = Field(default=100_000, ge=1)
    """Records held in memory before new ones are dropped (and counted)."""

    log_flush_interval_s: float = Field(default=1.0, gt=0)
    """How often the background writer writes what is queued."""

    config: Path | None = None
    """YAML file with alert rules, notification sinks, objectives and drift/quality settings
    (see docs/monitoring.md)."""

    window: str = "1h"
    """The window a monitoring run looks at: a duration (``1h``, ``1d``) or ``N rows``."""

    every: str | None = None
    """Run monitoring inside ``modelyard serve`` this often (``5m``); None: only on demand."""


class SecuritySettings(BaseModel):
    """Authentication, transport and storage protection, governance (docs/security.md)."""

    auth: Literal["auto", "on", "off"] = "auto"
    """API keys on every route: ``on``; ``off`` (``--no-auth``, loudly); ``auto``: on when any
    key exists, and a server bound to a non-loopback address refuses to start without keys."""

    tls_cert: Path | None = None
    """PEM certificate (chain) for REST and gRPC; with ``tls_key``, the server speaks TLS."""

    tls_key: Path | None = None
    """PEM private key of ``tls_cert``."""

    encryption_key: SecretStr | None = None
    """Base64 of a 32-byte key: artifacts and inference logs are stored AES-256-GCM encrypted."""

    encryption_key_file: Path | None = None
    """File holding the encryption key (instead of ``encryption_key``)."""

    require_signed: bool = False
    """Refuse to serve a version without a valid signature by a trusted key."""

    trusted_keys: list[Path] = Field(default_factory=list)
    """Ed25519 public keys (PEM) whose signatures ``require_signed`` accepts."""

    sensitive: Literal["drop", "hash"] = "hash"
    """Columns marked sensitive in a signature reach the inference log dropped, or as a keyed
    hash (HMAC-SHA256) that still allows joins and distinct counts."""

    log_retention_days: int | None = Field(default=None, ge=1)
    """Inference log partitions older than this are deleted (``modelyard logs prune``, and
    daily inside ``modelyard serve``)."""

    rate_limit_per_s: float | None = Field(default=None, gt=0)
    """Requests per second allowed per API key (or client address without auth); over it: 429
    with Retry-After."""

    rate_limit_burst: int = Field(default=100, ge=1)
    """Requests a key may send at once above its rate."""

    max_json_depth: int = Field(default=32, ge=2)
    """Deepest nesting accepted in a JSON body (400 beyond)."""

    max_json_elements: int = Field(default=5_000_000, ge=1)
    """Most values (numbers, strings) accepted in one JSON body (400 beyond)."""


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

    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)

    security: SecuritySettings = Field(default_factory=SecuritySettings)

    encryption_key: SecretStr | None = Field(default=None, repr=False)
    """Shorthand for ``security.encryption_key`` (``MODELYARD_ENCRYPTION_KEY``)."""

    encryption_key_file: Path | None = None
    """Shorthand for ``security.encryption_key_file`` (``MODELYARD_ENCRYPTION_KEY_FILE``)."""

    @model_validator(mode="after")
    def _encryption_shorthands(self) -> Settings:
        if self.encryption_key is None and self.encryption_key_file is None:
            return self
        updates: dict[str, object] = {}
        if self.encryption_key is not None and self.security.encryption_key is None:
            updates["encryption_key"] = self.encryption_key
        if self.encryption_key_file is not None and self.security.encryption_key_file is None:
            updates["encryption_key_file"] = self.encryption_key_file
        if updates:
            self.security = self.security.model_copy(update=updates)
        return self

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

    def resolved_log_uri(self) -> str:
        """Where the inference log lives, with the local default filled in."""
        if self.monitoring.log_uri:
            return self.monitoring.log_uri
        return str(self.home.expanduser() / "logs")

    def actor(self) -> str:
        """The name recorded for changes made with these settings."""
        if self.user:
            return self.user
        try:
            return getpass.getuser()
        except (KeyError, OSError):  # no passwd entry in some containers
            return "unknown"
