from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from modelyard.errors import ConfigurationError
from modelyard.monitoring.sql_tables import metadata as monitoring_metadata
from modelyard.registry.sql.engine import ensure_schema, make_engine, upgrade
from modelyard.registry.sql.loop_tables import metadata as loop_metadata
from modelyard.registry.sql.schema import HEAD_REVISION, metadata
from modelyard.registry.sql.security_tables import metadata as security_metadata

ALL_TABLES = {**metadata.tables, **monitoring_metadata.tables, **security_metadata.tables,
              **loop_metadata.tables}


def test_head_revision_constant_matches_the_scripts() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(files("modelyard.registry.sql") / "migrations"))
    assert ScriptDirectory.from_config(cfg).get_current_head() == HEAD_REVISION


def test_migrations_create_the_declared_tables(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    assert upgrade(engine) == HEAD_REVISION
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names()) - {"alembic_version"}
        assert tables == set(ALL_TABLES)
        for name, table in ALL_TABLES.items():
            cols = {c["name"] for c in inspect(conn).get_columns(name)}
            assert cols == {c.name for c in table.columns}, name
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    engine.dispose()


def test_foreign_database_is_not_touched(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE customers (id INTEGER)")
    with pytest.raises(ConfigurationError, match="already holds tables"):
        ensure_schema(engine)
    engine.dispose()


def test_outdated_schema_asks_for_upgrade(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0000'")
    with pytest.raises(ConfigurationError, match="modelyard db upgrade"):
        ensure_schema(engine)
    engine.dispose()


@pytest.mark.parametrize("url", ["mysql://x@y/z", "not a url"], ids=["unsupported", "garbage"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(ConfigurationError):
        make_engine(url)


def test_upgrade_from_the_first_revision_keeps_the_registry(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'up.db'}")
    assert upgrade(engine, "0001") == "0001"
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO registered_models (name, description, tags, status, last_version, "
            "created_at, updated_at) VALUES ('m', '', '{}', 'active', 0, "
            "'2026-01-01', '2026-01-01')")
    with pytest.raises(ConfigurationError, match="modelyard db upgrade"):
        ensure_schema(engine)
    assert upgrade(engine) == HEAD_REVISION
    ensure_schema(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT name FROM registered_models").scalar() == "m"
        assert "metric_values" in inspect(conn).get_table_names()
    engine.dispose()
