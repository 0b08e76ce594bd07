"""Shared fixtures: every test runs with its own MODELYARD_HOME and no stray MODELYARD_* env."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests explore new examples on every local run; under CI=true they replay the same
# ones (derandomized), so a run is decided by the change being tested, not by the draw. A
# failure found locally prints the blob that reproduces it (@reproduce_failure).
# No deadlines: a first call that imports a library, or a busy 2-core machine, is not a
# failure (speed is measured in bench/, not in tests).
settings.register_profile("ci", derandomize=True, print_blob=True, deadline=None)
settings.register_profile("dev", print_blob=True, deadline=None)
settings.load_profile("ci" if os.environ.get("CI", "").lower() == "true" else "dev")


@pytest.fixture(autouse=True)
def _isolate_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("MODELYARD_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("MODELYARD_HOME", str(tmp_path / "home"))
    return


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


# -- PostgreSQL ---------------------------------------------------------------------------------
# The real server on this machine; tests that need it skip with a reason when it is absent,
# except under CI=true, where they must run.
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_admin():  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)


@pytest.fixture(scope="session")
def _pg_available() -> bool:
    try:
        with _pg_admin():
            return True
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL must be reachable under CI at {PG_ADMIN_URL}: {exc}")
        return False


@pytest.fixture
def postgres_url(_pg_available: bool) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    if not _pg_available:
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL} (set TEST_POSTGRES_URL)")
    import uuid

    name = f"modelyard_test_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The registry database under test: the embedded SQLite file, then real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return str(request.getfixturevalue("postgres_url"))
