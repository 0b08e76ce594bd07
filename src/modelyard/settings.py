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

__all__ = ["RegistrySettings", "Settings"]


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
