"""The audit log in the registry database: every change leaves an entry in the same
transaction, tampering is found, concurrent writers keep one chain (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, update
from tests.integration.cli_runner import Result, run_cli

from modelyard import Client
from modelyard.cli.audit import parse_since
from modelyard.core.entities import Lineage
from modelyard.errors import ConflictError, InvalidInputError
from modelyard.registry.sql import NewVersion, SqlRegistryStore
from modelyard.registry.sql.audit import SqlAuditLog, append_audit
from modelyard.registry.sql.engine import write_connection
from modelyard.registry.sql.security_tables import audit_log
from modelyard.settings import Settings


def _new(name: str, digest: str = "d" * 64, actor: str = "tester") -> NewVersion:
    return NewVersion(name=name, format="sklearn", artifact_digest=digest, size_bytes=10,
                      created_by=actor, lineage=Lineage(), tags={"team": "risk"})


def _changes(log: SqlAuditLog) -> list[tuple[str, str, Any, Any]]:
    return [(e.action, e.target, e.before, e.after) for e in log.entries()]


def test_every_change_leaves_an_entry_with_before_and_after(client: Client) -> None:
    store = client.store
    log = SqlAuditLog(store.engine)
    store.create_version(_new("fraud"))
    store.create_version(_new("fraud", "e" * 64))
    client.set_alias("fraud", "production", 1)
    client.set_alias("fraud", "production", 2, reason="better recall")
    client.set_alias("fraud", "staging", 1)
    client.rollback("fraud", "production")
    client.delete_alias("fraud", "staging")
    client.update_model("fraud", description="card fraud", tags={"owner": "ann"})
    client.update_version("fraud", 2, description="v2")
    client.archive_version("fraud", 2)
    client.archive_version("fraud", 2, restore=True)
    client.delete_version("fraud", 2)
    client.archive_model("fraud")
    client.archive_model("fraud", restore=True)
    client.delete_model("fraud")

    register_1 = {"version": 1, "format": "sklearn", "artifact_digest": "d" * 64,
                  "size_bytes": 10, "parent_version": None, "description": "",
                  "tags": {"team": "risk"}}
    register_2 = {**register_1, "version": 2, "artifact_digest": "e" * 64, "parent_version": 1}
    assert _changes(log) == [
        ("version.register", "models:/fraud/1", None, register_1),
        ("version.register", "models:/fraud/2", None, register_2),
        ("alias.set", "models:/fraud@production", None, 1),
        ("alias.set", "models:/fraud@production", 1, 2),
        ("alias.set", "models:/fraud@staging", None, 1),
        ("alias.rollback", "models:/fraud@production", 2, 1),
        ("alias.delete", "models:/fraud@staging", 1, None),
        ("model.update", "models:/fraud", {"description": "", "tags": {}},
         {"description": "card fraud", "tags": {"owner": "ann"}}),
        ("version.update", "models:/fraud/2", {"description": ""}, {"description": "v2"}),
        ("version.archive", "models:/fraud/2", {"status": "ready"}, {"status": "archived"}),
        ("version.restore", "models:/fraud/2", {"status": "archived"}, {"status": "ready"}),
        ("version.delete", "models:/fraud/2", {"status": "ready"}, {"status": "deleted"}),
        ("model.archive", "models:/fraud", {"status": "ready"}, {"status": "archived"}),
        ("model.restore", "models:/fraud", {"status": "archived"}, {"status": "ready"}),
        ("model.delete", "models:/fraud", {"status": "ready", "aliases": {"production": 1}},
         {"status": "deleted"}),
    ]
    entries = log.entries()
    assert {e.actor for e in entries} == {"tester"}
    assert {e.model for e in entries} == {"fraud"}
    assert [e.seq for e in entries] == list(range(1, 16))
    assert log.verify().ok


def test_a_refused_change_leaves_no_entry(client: Client) -> None:
    client.store.create_version(_new("fraud"))
    client.archive_version("fraud", 1)
    log = SqlAuditLog(client.store.engine)
    before = len(log.entries())
    with pytest.raises(ConflictError, match="is archived"):
        client.set_alias("fraud", "production", 1)
    assert len(log.entries()) == before  # rolled back with the change


def test_an_entry_rolls_back_with_its_transaction(client: Client) -> None:
    log = SqlAuditLog(client.store.engine)

    def change_that_fails() -> None:
        with write_connection(client.store.engine) as conn:
            append_audit(conn, actor="x", action="key.create", target="key:1")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        change_that_fails()
    assert log.entries() == []
    assert log.append(actor="x", action="key.create", target="key:1").seq == 1


def test_filters_select_by_model_action_time_and_limit(client: Client) -> None:
    log = SqlAuditLog(client.store.engine)
    log.append(actor="a", action="key.create", target="key:k1", at=100.0)
    log.append(actor="a", action="alias.set", target="models:/x@p", model="x", at=200.0)
    log.append(actor="a", action="alias.delete", target="models:/x@p", model="x", at=300.0)
    log.append(actor="a", action="alias.set", target="models:/y@p", model="y", at=400.0)
    assert [e.seq for e in log.entries(model="x")] == [2, 3]
    assert [e.seq for e in log.entries(action="alias.set")] == [2, 4]
    assert [e.seq for e in log.entries(action="alias.*")] == [2, 3, 4]
    assert [e.seq for e in log.entries(action="alias.")] == [2, 3, 4]
    assert [e.seq for e in log.entries(since=250.0)] == [3, 4]
    assert [e.seq for e in log.entries(limit=2)] == [3, 4]
    head = log.head()
    assert head is not None
    assert head.seq == 4


# -- concurrency ---------------------------------------------------------------------------------
@pytest.mark.parametrize("writers", [6], ids=["6-threads"])
def test_concurrent_writers_keep_one_unbroken_chain(database_url: str, writers: int) -> None:
    stores = [SqlRegistryStore(database_url) for _ in range(writers)]  # own pools: own sessions
    stores[0].create_version(_new("race"))
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            start.wait()
            log = SqlAuditLog(stores[i].engine)
            for j in range(8):
                if j % 2:
                    stores[i].set_alias("race", f"w{i}", 1, actor=f"writer-{i}")
                else:
                    log.append(actor=f"writer-{i}", action="key.create", target=f"key:{i}-{j}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == []
        log = SqlAuditLog(stores[0].engine)
        verdict = log.verify()
        assert verdict.ok, verdict.reason
        assert verdict.count == 1 + writers * 8
        assert len({e.prev_hash for e in log.entries()}) == verdict.count  # no fork
    finally:
        for s in stores:
            s.close()


# -- the CLI: listing, verification, tampering ----------------------------------------------------
@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    # The CLI and the verification are the same on both databases (the chain is checked in
    # Python); the tests above cover PostgreSQL's storage and locking.
    return f"sqlite:///{tmp_path / 'audit.db'}"


@pytest.fixture
def audit_cli(capsys: pytest.CaptureFixture[str], sqlite_url: str,
              monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    monkeypatch.setenv("MODELYARD_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("MODELYARD_USER", "alice")

    def run(*args: str) -> Result:
        return run_cli(capsys, *args)

    return run


def _seed(database_url: str, n: int = 5) -> SqlRegistryStore:
    store = SqlRegistryStore(database_url)
    store.create_version(_new("fraud"))  # entry 1
    for i in range(n - 1):  # entries 2..n: the alias moves back and forth
        store.set_alias("fraud", "production", 1, actor="bob", reason=str(i))
    return store


def test_cli_lists_filters_and_prints_json(audit_cli: Callable[..., Result],
                                           sqlite_url: str) -> None:
    _seed(sqlite_url).close()
    table = audit_cli("audit", "--model", "fraud", "--action", "alias.set")
    assert table.code == 0, table.err
    assert table.out.count("alias.set") == 4
    assert "version.register" not in table.out
    rows = json.loads(audit_cli("audit", "--json", "--since", "1h", "--limit", "2").out)
    assert [r["seq"] for r in rows] == [4, 5]
    assert rows[0]["actor"] == "bob"
    assert len(rows[0]["hash"]) == 64
    assert json.loads(audit_cli("audit", "--json", "--since", "2999-01-01").out) == []
    bad = audit_cli("audit", "--since", "last tuesday")
    assert bad.code == 2
    assert "neither a duration nor an ISO date" in bad.err


def test_cli_verify_and_head(audit_cli: Callable[..., Result], sqlite_url: str) -> None:
    _seed(sqlite_url).close()
    ok = audit_cli("audit", "verify")
    assert (ok.code, ok.out.strip()) == (0, "chain intact, 5 entries")
    head = audit_cli("audit", "head").out.strip()
    assert head.startswith("5:")
    assert len(head) == 2 + 64
    assert audit_cli("audit", "verify", "--expect-head", head).code == 0
    verdict = json.loads(audit_cli("audit", "verify", "--json").out)
    assert verdict["ok"]
    assert verdict["head_seq"] == 5


TAMPER: list[tuple[str, Callable[[Any], Any], str]] = [
    ("edit-after", lambda t: update(t).where(t.c.seq == 3).values(after="7"),
     "chain broken at entry 3: entry 3 was edited"),
    ("edit-actor", lambda t: update(t).where(t.c.seq == 2).values(actor="mallory"),
     "chain broken at entry 2: entry 2 was edited"),
    ("delete-middle", lambda t: delete(t).where(t.c.seq == 3),
     "chain broken at entry 3: entry 3 is missing (deleted) before entry 4"),
    ("delete-first", lambda t: delete(t).where(t.c.seq == 1),
     "chain broken at entry 1: entry 1 is missing"),
]


@pytest.mark.parametrize(("statement", "message"), [t[1:] for t in TAMPER],
                         ids=[t[0] for t in TAMPER])
def test_cli_verify_names_the_first_tampered_entry(
        audit_cli: Callable[..., Result], sqlite_url: str,
        statement: Callable[[Any], Any], message: str) -> None:
    store = _seed(sqlite_url)
    with store.engine.begin() as conn:
        conn.execute(statement(audit_log))
    store.close()
    result = audit_cli("audit", "verify")
    assert result.code == 1
    assert message in " ".join(result.err.split())


def test_deleting_the_newest_entries_needs_the_anchor(
        audit_cli: Callable[..., Result], sqlite_url: str) -> None:
    store = _seed(sqlite_url)
    anchor = audit_cli("audit", "head").out.strip()
    with store.engine.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.seq >= 4))
    store.close()
    assert audit_cli("audit", "verify").code == 0  # what a chain alone cannot see
    result = audit_cli("audit", "verify", "--expect-head", anchor)
    assert result.code == 1
    assert "entries 4-5 were deleted" in " ".join(result.err.split())
    bad = audit_cli("audit", "verify", "--expect-head", "5:nothex")
    assert bad.code == 2
    assert "SEQ:HASH" in bad.err


def test_head_of_an_empty_log_is_an_error(audit_cli: Callable[..., Result]) -> None:
    result = audit_cli("audit", "head")
    assert result.code == 2
    assert "The audit log is empty" in result.err


@pytest.mark.parametrize(("text", "expected"), [
    ("1h", 1000.0 - 3600.0),
    ("90s", 910.0),
    ("1970-01-02", 86400.0),
    ("1970-01-01T01:00:00+01:00", 0.0),
], ids=["hours", "seconds", "date-utc", "with-zone"])
def test_parse_since(text: str, expected: float) -> None:
    assert parse_since(text, now=1000.0) == pytest.approx(expected)


def test_parse_since_refuses_nonsense() -> None:
    with pytest.raises(InvalidInputError, match="neither a duration nor an ISO date"):
        parse_since("yesterday-ish")


def test_register_with_sensitive_columns_is_audited() -> None:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    X = pd.DataFrame({"ssn": [1.0, 2.0, 3.0, 4.0], "age": [30.0, 40.0, 50.0, 60.0]})
    model = LogisticRegression().fit(X, [0, 0, 1, 1])
    settings = Settings(user="carol")
    with Client(settings) as client:
        mv = client.register(model, "people", data=X, sensitive=["ssn"])
        assert mv.signature is not None
        assert mv.signature.sensitive_columns == {"ssn"}
        with pytest.raises(InvalidInputError, match=r"Cannot mark \['nope'\] sensitive"):
            client.register(model, "people", data=X, sensitive=["nope"])
        entries = SqlAuditLog(client.store.engine).entries(action="version.register")
    assert [(e.actor, e.target) for e in entries] == [("carol", "models:/people/1")]
    started = time.time()
    assert entries[0].ts == pytest.approx(started, abs=60)
