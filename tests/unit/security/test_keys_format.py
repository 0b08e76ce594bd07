"""API keys as pure values: format, entropy, salted hash, constant-time verification, expiry."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelyard.errors import InvalidInputError
from modelyard.security.keys import (
    KEY_PREFIX,
    ApiKey,
    hash_secret,
    issue_key,
    parse_lifetime,
    split_token,
    verify_secret,
)
from modelyard.security.policy import Role


def _issue(**kwargs: object) -> tuple[str, ApiKey]:
    options: dict[str, object] = {"name": "ci", "role": "predictor", "created_by": "ann",
                                  "now": 1000.0, **kwargs}
    issued = issue_key(**options)  # type: ignore[arg-type]
    return issued.token, issued.record


def test_token_format_and_entropy() -> None:
    token, record = _issue()
    prefix, key_id, secret = token.split("_", 2)
    assert prefix == KEY_PREFIX == "my"
    assert key_id == record.key_id
    assert len(key_id) == 16
    int(key_id, 16)  # hex
    raw = base64.urlsafe_b64decode(secret + "=")
    assert len(raw) == 32  # 256 random bits
    assert len(secret) == 43


def test_only_a_salted_hmac_is_kept() -> None:
    token, record = _issue()
    _, secret = split_token(token) or ("", "")
    expected = hmac.new(bytes.fromhex(record.salt), secret.encode(), hashlib.sha256).hexdigest()
    assert record.hash == expected == hash_secret(secret, record.salt)
    assert secret not in repr(record)
    assert record.hash not in repr(record)
    assert len(bytes.fromhex(record.salt)) == 16


def test_every_key_is_different() -> None:
    issued = [_issue() for _ in range(50)]
    assert len({t for t, _ in issued}) == 50
    assert len({r.key_id for _, r in issued}) == 50
    assert len({r.salt for _, r in issued}) == 50


@pytest.mark.parametrize(("tamper", "ok"), [
    (lambda s: s, True),
    (lambda s: s[:-1] + ("A" if s[-1] != "A" else "B"), False),
    (lambda s: s + "x", False),
    (lambda s: s[:-1], False),
    (lambda s: "", False),
], ids=["same", "last-char", "longer", "shorter", "empty"])
def test_verify_secret(tamper: object, ok: bool) -> None:
    token, record = _issue()
    _, secret = split_token(token) or ("", "")
    candidate = tamper(secret)  # type: ignore[operator]
    assert verify_secret(candidate, record.salt, record.hash) is ok
    assert verify_secret(candidate, bytes.fromhex(record.salt), bytes.fromhex(record.hash)) is ok


def test_the_same_secret_under_another_salt_does_not_verify() -> None:
    token, record = _issue()
    _, other = _issue()
    _, secret = split_token(token) or ("", "")
    assert not verify_secret(secret, other.salt, record.hash)


@pytest.mark.parametrize(("token", "expected"), [
    ("my_0123456789abcdef_secret", ("0123456789abcdef", "secret")),
    ("my_0123456789abcdef_se_cr-et", ("0123456789abcdef", "se_cr-et")),
    ("my_0123456789abcdef_", None),
    ("my_0123456789ABCDEF_secret", None),
    ("my_0123456789abcde_secret", None),
    ("xx_0123456789abcdef_secret", None),
    ("my0123456789abcdef", None),
    ("", None),
], ids=["plain", "secret-with-separators", "no-secret", "upper-hex", "short-id", "prefix",
        "no-separators", "empty"])
def test_split_token(token: str, expected: tuple[str, str] | None) -> None:
    assert split_token(token) == expected


@given(st.text())
def test_split_token_never_raises(text: str) -> None:
    parts = split_token(text)
    assert parts is None or f"my_{parts[0]}_{parts[1]}" == text


@pytest.mark.parametrize(("text", "seconds"), [
    ("90d", 90 * 86400.0), ("12h", 43200.0), ("30m", 1800.0), ("2w", 1209600.0),
    ("1y", 31536000.0), ("45s", 45.0), (" 1.5h ", 5400.0),
], ids=["days", "hours", "minutes", "weeks", "year", "seconds", "fraction"])
def test_parse_lifetime(text: str, seconds: float) -> None:
    assert parse_lifetime(text) == seconds


@pytest.mark.parametrize("text", ["", "90", "0d", "-1d", "soon", "3 months"],
                         ids=["empty", "no-unit", "zero", "negative", "word", "unknown-unit"])
def test_parse_lifetime_rejects(text: str) -> None:
    with pytest.raises(InvalidInputError, match="key lifetime must be a positive number"):
        parse_lifetime(text)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": ""}, "key name must be 1-128 printable"),
    ({"name": "   "}, "key name must be 1-128 printable"),
    ({"name": "a\nb"}, "key name must be 1-128 printable"),
    ({"name": "x" * 129}, "key name must be 1-128 printable"),
    ({"role": "root"}, "role must be one of viewer, predictor, deployer, admin"),
    ({"models": []}, "needs at least one model name"),
    ({"models": ["ok", "bad name"]}, "model name must be"),
], ids=["empty-name", "blank-name", "control-char", "long-name", "bad-role", "no-models",
        "bad-model"])
def test_issue_key_rejects(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        _issue(**kwargs)


def test_models_are_deduplicated_in_order() -> None:
    _, record = _issue(models=["fraud", "churn", "fraud"])
    assert record.models == ("fraud", "churn")
    assert record.allows_model("churn")
    assert not record.allows_model("cancer")
    _, everything = _issue()
    assert everything.models is None
    assert everything.allows_model("anything")


@pytest.mark.parametrize(("expires_at", "revoked_at", "now", "state"), [
    (None, None, 5000.0, "active"),
    (2000.0, None, 1999.0, "active"),
    (2000.0, None, 2000.0, "expired"),
    (2000.0, 1500.0, 1600.0, "revoked"),
    (2000.0, 1500.0, 2500.0, "revoked"),
], ids=["no-expiry", "before-expiry", "at-expiry", "revoked", "revoked-and-expired"])
def test_state(expires_at: float | None, revoked_at: float | None, now: float,
               state: str) -> None:
    _, record = _issue(expires_at=expires_at)
    record = ApiKey(**{**{f: getattr(record, f) for f in ApiKey.__slots__},
                       "revoked_at": revoked_at})
    assert record.state(now) == state


def test_public_dict_shows_no_secret_material() -> None:
    token, record = _issue(models=["fraud"], expires_at=1000.0 + 86400)
    shown = record.public_dict(now=1000.0)
    assert shown == {
        "key_id": record.key_id, "name": "ci", "role": "predictor", "models": ["fraud"],
        "created_at": "1970-01-01T00:16:40+00:00", "created_by": "ann",
        "expires_at": "1970-01-02T00:16:40+00:00", "revoked_at": None, "state": "active"}
    text = repr(shown)
    assert record.salt not in text
    assert record.hash not in text
    assert (split_token(token) or ("", ""))[1] not in text
    assert record.role is Role.PREDICTOR
