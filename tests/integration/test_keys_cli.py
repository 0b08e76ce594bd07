"""``modelyard keys create|list|revoke`` and the start-up rules of ``modelyard serve`` about
keys, driven through ``main(argv)`` on the registry MODELYARD_HOME points at."""

from __future__ import annotations

import json

import pytest
from tests.integration.cli_runner import Result, Run, run_cli

from modelyard.registry.sql.audit import SqlAuditLog
from modelyard.registry.sql.key_store import SqlKeyStore
from modelyard.registry.sql.store import SqlRegistryStore
from modelyard.security.keys import split_token, verify_secret
from modelyard.settings import Settings


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setenv("MODELYARD_USER", "alice")

    def _run(*args: str) -> Result:
        return run_cli(capsys, *args)

    return _run


def _keys() -> SqlKeyStore:
    store = SqlRegistryStore(Settings().resolved_database_url())
    return SqlKeyStore(store.engine)


def test_create_prints_the_key_once_and_stores_a_hash(run: Run) -> None:
    created = run("keys", "create", "--name", "ci", "--role", "predictor",
                  "--models", "fraud, churn", "--expires", "90d")
    assert created.code == 0, created.err
    token = created.out.strip()
    parts = split_token(token)
    assert parts is not None
    key_id, secret = parts
    assert created.err.startswith(f"Created API key {key_id} 'ci' (role predictor, models "
                                  "fraud, churn, expires ")
    assert "Store it now: it is not shown again." in created.err
    (record,) = _keys().list_keys()
    assert (record.key_id, record.role.label, record.models) == (key_id, "predictor",
                                                                ("fraud", "churn"))
    assert record.created_by == "alice"
    assert record.expires_at is not None
    assert record.expires_at - record.created_at == pytest.approx(90 * 86400)
    assert verify_secret(secret, record.salt, record.hash)
    assert secret not in record.hash

    listed = run("keys", "list")
    assert listed.code == 0
    assert key_id in listed.out
    for text in (listed.out, listed.err):
        assert secret not in text
        assert record.hash not in text
        assert record.salt not in text


def test_list_json_and_revoke(run: Run) -> None:
    tokens = [run("keys", "create", "--name", n, "--role", r).out.strip()
              for n, r in (("a", "viewer"), ("b", "admin"))]
    ids = [(split_token(t) or ("", ""))[0] for t in tokens]
    revoked = run("keys", "revoke", ids[0])
    assert revoked.code == 0, revoked.err
    assert revoked.out.strip() == f"Revoked API key {ids[0]} 'a'. Servers refuse it within 2 s."
    shown = json.loads(run("keys", "list", "--json").out)
    assert [(k["key_id"], k["role"], k["state"]) for k in shown] == [
        (ids[0], "viewer", "revoked"), (ids[1], "admin", "active")]
    assert all(set(k) == {"key_id", "name", "role", "models", "created_at", "created_by",
                          "expires_at", "revoked_at", "state"} for k in shown)

    again = run("keys", "revoke", ids[0])
    assert again.code == 4
    assert f"The API key '{ids[0]}' (a) is already revoked." in again.err
    by_token = run("keys", "revoke", tokens[1])  # a whole key pasted: its id is revoked
    assert by_token.code == 0
    assert tokens[1] not in by_token.out


def test_create_and_revoke_are_audited_without_secrets(run: Run) -> None:
    token = run("keys", "create", "--name", "ci", "--role", "deployer").out.strip()
    key_id, secret = split_token(token) or ("", "")
    assert run("keys", "revoke", key_id).code == 0
    store = SqlRegistryStore(Settings().resolved_database_url())
    log = SqlAuditLog(store.engine)
    entries = log.entries(action="key.")
    assert [(e.action, e.actor, e.target) for e in entries] == [
        ("key.create", "alice", f"key:{key_id}"), ("key.revoke", "alice", f"key:{key_id}")]
    assert entries[0].after == {"key_id": key_id, "name": "ci", "role": "deployer",
                                "models": None, "expires_at": None}
    assert entries[1].before == {"revoked_at": None}
    (record,) = SqlKeyStore(store.engine).list_keys()
    assert entries[1].after == {"revoked_at": record.revoked_at}
    dumped = repr(entries)
    assert secret not in dumped
    assert record.hash not in dumped
    assert log.verify().ok


def test_create_json(run: Run) -> None:
    result = run("keys", "create", "--name", "bot", "--role", "viewer", "--json")
    doc = json.loads(result.out)
    assert split_token(doc["key"]) is not None
    assert doc["key_id"] == (split_token(doc["key"]) or ("", ""))[0]
    assert (doc["role"], doc["state"], doc["models"], doc["expires_at"]) == (
        "viewer", "active", None, None)


@pytest.mark.parametrize(("args", "code", "message"), [
    (("--name", "x", "--role", "root"), 2,
     "The role must be one of viewer, predictor, deployer, admin. Got 'root' instead."),
    (("--name", "x", "--role", "viewer", "--expires", "soon"), 2,
     "The key lifetime must be a positive number and a unit"),
    (("--name", "x", "--role", "viewer", "--models", " , "), 2,
     "--models needs comma-separated model names"),
    (("--name", "x", "--role", "viewer", "--models", "a/b"), 2, "The model name must be"),
], ids=["role", "expires", "empty-models", "bad-model"])
def test_create_rejects(run: Run, args: tuple[str, ...], code: int, message: str) -> None:
    result = run("keys", "create", *args)
    assert result.code == code
    assert message in " ".join(result.err.split())
    assert "Traceback" not in result.err
    assert result.out == ""


def test_revoke_unknown(run: Run) -> None:
    result = run("keys", "revoke", "0123456789abcdef")
    assert result.code == 3
    assert "There is no API key '0123456789abcdef'." in result.err
    assert "modelyard keys list" in result.err


# -- modelyard serve -------------------------------------------------------------------------------


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """Stand in for the server itself: record the settings it would run with."""
    calls: list[Settings] = []
    monkeypatch.setattr("modelyard.cli.serve._run", calls.append)
    return calls


@pytest.mark.parametrize(("env", "args", "with_key", "code", "message"), [
    ({}, ("--host", "0.0.0.0"), False, 6,
     "Refusing to serve on 0.0.0.0 without authentication"),
    ({"MODELYARD_SECURITY__AUTH": "on"}, (), False, 6, "security.auth is 'on' but no API key"),
    ({}, ("--host", "0.0.0.0", "--no-auth"), False, 0, "WARNING: authentication is OFF."),
    ({}, ("--host", "0.0.0.0"), True, 0, ""),
    ({}, (), False, 0, "No API key exists: serving 127.0.0.1 without authentication."),
    ({"MODELYARD_SECURITY__AUTH": "on"}, ("--host", "0.0.0.0"), True, 0, ""),
], ids=["public-no-key", "on-no-key", "no-auth", "public-with-key", "loopback-no-key",
        "on-with-key"])
def test_serve_start_rules(run: Run, started: list[Settings], monkeypatch: pytest.MonkeyPatch,
                           env: dict[str, str], args: tuple[str, ...], with_key: bool,
                           code: int, message: str) -> None:
    if with_key:
        assert run("keys", "create", "--name", "ci", "--role", "predictor").code == 0
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = run("serve", "models:/iris@production", *args)
    assert result.code == code, result.err
    flat = " ".join(result.err.split())
    assert message in flat
    if code:
        assert started == []
        assert "modelyard keys create --name NAME --role predictor" in flat
        assert "Traceback" not in result.err
    else:
        (settings,) = started
        assert settings.security.auth == ("off" if "--no-auth" in args else
                                          env.get("MODELYARD_SECURITY__AUTH", "auto"))


def test_serve_help_mentions_no_auth(run: Run) -> None:
    result = run("serve", "--help")
    assert "--no-auth" in result.out
    assert result.code == 0
