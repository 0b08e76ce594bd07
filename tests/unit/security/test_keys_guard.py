"""The request-path guard (serving.auth) with fake key sources and clocks: authentication,
roles, model limits, expiry, revocation through the cache, rate limits, and the start-up
decisions of ``security.auth``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from modelyard.errors import ConfigurationError
from modelyard.security.keys import ApiKey, issue_key
from modelyard.serving.auth import (
    ANONYMOUS,
    Denial,
    DenialKind,
    Guard,
    Principal,
    RateLimiter,
    bearer_token,
    build_guard,
    is_loopback,
)
from modelyard.settings import SecuritySettings

NOW = 1_000_000.0


@dataclass
class FakeSource:
    keys: list[ApiKey] = field(default_factory=list)
    fail: bool = False
    calls: int = 0

    def list_keys(self) -> Sequence[ApiKey]:
        self.calls += 1
        if self.fail:
            raise ConnectionError("database down")
        return list(self.keys)


@dataclass
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


def _key(role: str, *, models: list[str] | None = None, expires_at: float | None = None,
         revoked_at: float | None = None) -> tuple[str, ApiKey]:
    issued = issue_key(name=role, role=role, created_by="t", now=NOW - 10, models=models,
                       expires_at=expires_at)
    rec = issued.record
    if revoked_at is not None:
        rec = ApiKey(**{**{f: getattr(rec, f) for f in ApiKey.__slots__},
                        "revoked_at": revoked_at})
    return issued.token, rec


@pytest.fixture
def keys() -> dict[str, tuple[str, ApiKey]]:
    return {
        "viewer": _key("viewer"),
        "predictor": _key("predictor"),
        "deployer": _key("deployer"),
        "admin": _key("admin"),
        "limited": _key("admin", models=["fraud"]),
        "expired": _key("admin", expires_at=NOW - 1),
        "expiring": _key("admin", expires_at=NOW + 5),
        "revoked": _key("admin", revoked_at=NOW - 5),
    }


@pytest.fixture
def guard(keys: dict[str, tuple[str, ApiKey]]) -> tuple[Guard, Clock]:
    clock = Clock()
    return Guard(FakeSource([rec for _, rec in keys.values()]), enabled=True,
                 clock=clock), clock


def _verdict(guard: Guard, token: str | None, operation: str = "model.infer",
             model: str | None = "fraud") -> Principal | Denial:
    return guard.check(token, operation, model, "10.0.0.1")


@pytest.mark.parametrize(("who", "operation", "model", "status", "message"), [
    ("none", "model.infer", "fraud", 401, "requires an API key"),
    ("garbage", "model.infer", "fraud", 401, "API key is not valid"),
    ("unknown", "model.infer", "fraud", 401, "API key is not valid"),
    ("wrong-secret", "model.infer", "fraud", 401, "API key is not valid"),
    ("expired", "model.infer", "fraud", 401, "has expired"),
    ("revoked", "model.infer", "fraud", 401, "was revoked"),
    ("viewer", "model.infer", "fraud", 403, "role 'viewer'; model.infer needs role 'predictor'"),
    ("predictor", "model.feedback", "fraud", 403, "needs role 'deployer'"),
    ("deployer", "keys.manage", None, 403, "needs role 'admin'"),
    ("deployer", "unlisted.operation", None, 403, "needs role 'admin'"),
    ("limited", "model.infer", "churn", 403, "may use the models fraud only, not 'churn'"),
    ("limited", "repository.unload", "churn", 403, "not 'churn'"),
    ("none", "server.live", None, 200, ""),
    ("garbage", "server.ready", None, 200, ""),
    ("viewer", "server.metrics", None, 200, ""),
    ("viewer", "model.metadata", "churn", 200, ""),
    ("predictor", "model.infer", "churn", 200, ""),
    ("deployer", "repository.load", "fraud", 200, ""),
    ("admin", "unlisted.operation", None, 200, ""),
    ("limited", "model.infer", "fraud", 200, ""),
    ("limited", "server.metadata", None, 200, ""),
    ("expiring", "model.infer", "fraud", 200, ""),
], ids=lambda v: v if isinstance(v, str) and v else None)
def test_check(guard: tuple[Guard, Clock], keys: dict[str, tuple[str, ApiKey]], who: str,
               operation: str, model: str | None, status: int, message: str) -> None:
    g, _ = guard
    viewer_token, _viewer = keys["viewer"]
    tokens: dict[str, str | None] = {
        "none": None, "garbage": "let me in",
        "unknown": issue_key(name="x", role="admin", created_by="t", now=NOW).token,
        "wrong-secret": viewer_token[:-4] + ("AAAA" if not viewer_token.endswith("AAAA")
                                             else "BBBB"),
        **{name: token for name, (token, _) in keys.items()},
    }
    verdict = _verdict(g, tokens[who], operation, model)
    if status == 200:
        assert isinstance(verdict, Principal)
        if operation.startswith("server.live") or operation == "server.ready":
            assert verdict is ANONYMOUS
        else:
            assert verdict.key_id == keys[who][1].key_id
    else:
        assert isinstance(verdict, Denial)
        assert verdict.status == status
        assert message in verdict.message
        assert viewer_token not in verdict.message
        assert verdict.retry_after_s is None


def test_expiry_follows_the_clock(guard: tuple[Guard, Clock],
                                  keys: dict[str, tuple[str, ApiKey]]) -> None:
    g, clock = guard
    token = keys["expiring"][0]
    assert isinstance(_verdict(g, token), Principal)
    clock.now = NOW + 5
    verdict = _verdict(g, token)
    assert isinstance(verdict, Denial)
    assert verdict.kind is DenialKind.UNAUTHENTICATED


def test_revocation_and_new_keys_take_effect_on_reload(
        keys: dict[str, tuple[str, ApiKey]]) -> None:
    token, rec = keys["predictor"]
    source = FakeSource([rec])
    g = Guard(source, enabled=True)
    assert isinstance(_verdict(g, token), Principal)
    new_token, new = _key("viewer")
    source.keys = [ApiKey(**{**{f: getattr(rec, f) for f in ApiKey.__slots__},
                             "revoked_at": NOW}), new]
    assert isinstance(_verdict(g, token), Principal)  # the cache, until the next reload
    assert isinstance(_verdict(g, new_token, "server.metadata", None), Denial)
    g.reload()
    assert isinstance(_verdict(g, token), Denial)
    assert isinstance(_verdict(g, new_token, "server.metadata", None), Principal)


def test_verified_keys_are_remembered_until_the_next_refresh(
        keys: dict[str, tuple[str, ApiKey]]) -> None:
    token, rec = keys["predictor"]
    g = Guard(FakeSource([rec, keys["viewer"][1]]), enabled=True)
    assert all(isinstance(_verdict(g, token), Principal) for _ in range(3))
    _, verified = g._cache
    assert list(verified) == [token]
    wrong = [token[:-2] + suffix for suffix in ("AA", "BB", "CC") if not token.endswith(suffix)]
    assert all(isinstance(_verdict(g, w), Denial) for w in wrong)
    assert list(verified) == [token]  # only keys that verified, at most one per key
    g.reload()
    assert g._cache[1] == {}
    assert isinstance(_verdict(g, token), Principal)


def test_a_failed_reload_keeps_the_cache(keys: dict[str, tuple[str, ApiKey]],
                                         caplog: pytest.LogCaptureFixture) -> None:
    token, rec = keys["predictor"]
    source = FakeSource([rec])
    g = Guard(source, enabled=True)
    source.fail = True
    with caplog.at_level(logging.WARNING, "modelyard.serving.auth"):
        g.reload()
        g.reload()
    assert isinstance(_verdict(g, token), Principal)
    warnings = [r for r in caplog.records if "Could not refresh the API keys" in r.message]
    assert len(warnings) == 1  # once, not on every refresh
    assert source.calls == 3


def test_auto_turns_on_when_a_key_appears_and_never_off(
        keys: dict[str, tuple[str, ApiKey]]) -> None:
    source = FakeSource([])
    g = Guard(source, enabled=False, auto=True)
    assert not g.active  # the adapters skip the check
    assert _verdict(g, None) is ANONYMOUS
    token, rec = keys["predictor"]
    source.keys = [rec]
    g.reload()
    assert g.enabled
    assert g.active
    assert isinstance(_verdict(g, None), Denial)
    assert isinstance(_verdict(g, token), Principal)
    source.keys = [ApiKey(**{**{f: getattr(rec, f) for f in ApiKey.__slots__},
                             "revoked_at": NOW})]
    g.reload()
    assert g.enabled  # revoking every key locks the server; it does not open it
    assert isinstance(_verdict(g, token), Denial)


# -- rate limits ----------------------------------------------------------------------------------


def test_token_bucket() -> None:
    clock = Clock(0.0)
    limiter = RateLimiter(2.0, 3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") == 0.0  # buckets are per caller
    clock.now = 0.25
    assert limiter.take("a") == pytest.approx(0.25)  # half a token came back: not enough
    clock.now = 0.5
    assert limiter.take("a") == 0.0
    clock.now = 100.0
    assert [limiter.take("a") for _ in range(4)][-1] == pytest.approx(0.5)  # capped at burst


def test_idle_buckets_are_pruned() -> None:
    clock = Clock(0.0)
    limiter = RateLimiter(1.0, 1, clock=clock)
    limiter._MAX_BUCKETS = 10
    for i in range(10):
        limiter.take(f"c{i}")
    clock.now = 5.0
    limiter.take("new")
    assert set(limiter._buckets) == {"new"}


def test_rate_limit_per_key(keys: dict[str, tuple[str, ApiKey]]) -> None:
    a, rec_a = keys["predictor"]
    b, rec_b = keys["admin"]
    g = Guard(FakeSource([rec_a, rec_b]), enabled=True, rate_limit_per_s=1.0,
              rate_limit_burst=2)
    assert [isinstance(_verdict(g, a), Principal) for _ in range(2)] == [True, True]
    denied = _verdict(g, a)
    assert isinstance(denied, Denial)
    assert denied.status == 429
    assert denied.retry_after_s == 1
    assert f"API key {rec_a.key_id}" in denied.message
    assert "1 requests/s" in denied.message
    assert isinstance(_verdict(g, b), Principal)
    assert _verdict(g, None, "server.live", None) is ANONYMOUS  # probes are never limited
    assert isinstance(_verdict(g, "garbage"), Denial)


def test_rate_limit_per_client_without_keys() -> None:
    g = Guard(None, enabled=False, rate_limit_per_s=0.5, rate_limit_burst=1)
    assert g.active
    assert g.check(None, "model.infer", "m", "10.0.0.1") is ANONYMOUS
    denied = g.check(None, "model.infer", "m", "10.0.0.1")
    assert isinstance(denied, Denial)
    assert denied.retry_after_s == 2
    assert "client 10.0.0.1" in denied.message
    assert g.check(None, "model.infer", "m", "10.0.0.2") is ANONYMOUS


# -- headers and hosts ----------------------------------------------------------------------------


@pytest.mark.parametrize(("authorization", "api_key", "token"), [
    ("Bearer my_a_b", None, "my_a_b"),
    (b"bearer   my_a_b ", None, "my_a_b"),
    (None, "my_a_b", "my_a_b"),
    (None, b" my_a_b ", "my_a_b"),
    ("Bearer my_a_b", "my_c_d", "my_a_b"),
    ("Basic dXNlcjpwdw==", "my_c_d", "my_c_d"),
    ("Basic dXNlcjpwdw==", None, None),
    ("Bearer ", None, None),
    (None, "", None),
    (None, None, None),
], ids=["bearer", "bytes-lowercase", "x-api-key", "x-api-key-bytes", "bearer-wins",
        "basic-then-header", "basic-only", "empty-bearer", "empty-header", "nothing"])
def test_bearer_token(authorization: str | bytes | None, api_key: str | bytes | None,
                      token: str | None) -> None:
    assert bearer_token(authorization, api_key) == token


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("localhost", True), ("::1", True),
    ("[::1]", True), ("0.0.0.0", False), ("::", False), ("10.0.0.5", False),
    ("example.com", False), ("", False),
], ids=lambda v: v if isinstance(v, str) and v else None)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


# -- start-up decisions ---------------------------------------------------------------------------


@pytest.mark.parametrize(("auth", "have", "host", "rate", "outcome"), [
    ("off", "none", "0.0.0.0", None, "no-guard"),
    ("off", "active", "127.0.0.1", None, "no-guard"),
    ("off", "none", "0.0.0.0", 5.0, "open"),
    ("auto", "none", "127.0.0.1", None, "open"),
    ("auto", "revoked", "127.0.0.1", None, "open"),
    ("auto", "active", "127.0.0.1", None, "keys"),
    ("auto", "active", "0.0.0.0", None, "keys"),
    ("on", "active", "0.0.0.0", 5.0, "keys"),
    ("on", "none", "127.0.0.1", None, "no API key exists"),
    ("on", "revoked", "127.0.0.1", None, "no API key exists"),
    ("auto", "none", "0.0.0.0", None, "Refusing to serve on 0.0.0.0 without authentication"),
    ("auto", "revoked", "10.1.2.3", None, "Refusing to serve on 10.1.2.3"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_build_guard(auth: str, have: str, host: str, rate: float | None, outcome: str) -> None:
    keys = {"none": [], "active": [_key("viewer")[1]],
            "revoked": [_key("viewer", revoked_at=NOW)[1]]}[have]
    source = FakeSource(keys)
    security = SecuritySettings(auth=auth, rate_limit_per_s=rate)  # type: ignore[arg-type]
    if outcome not in ("no-guard", "open", "keys"):
        with pytest.raises(ConfigurationError, match=outcome) as info:
            build_guard(security, source, host=host)
        assert "modelyard keys create --name NAME --role predictor" in str(info.value)
        return
    guard = build_guard(security, source, host=host, refresh_s=0.5)
    if outcome == "no-guard":
        assert guard is None
        return
    assert guard is not None
    assert guard.enabled is (outcome == "keys")
    assert (guard.limiter is not None) is (rate is not None)
    if auth != "off":
        assert source.calls == 1  # the keys read to decide seed the cache: one read
        assert guard.refresh_s == 0.5


def test_auth_off_is_logged_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "modelyard.serving.auth"):
        build_guard(SecuritySettings(auth="off"), None, host="0.0.0.0")
    assert any("AUTHENTICATION IS OFF" in r.message and r.levelno == logging.WARNING
               for r in caplog.records)
