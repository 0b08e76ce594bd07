"""API keys: their format, generation, salted hashing and verification. Pure: no I/O.

A key is ``my_<key_id>_<secret>``: ``key_id`` is 16 hex characters that name the key in
listings, logs and the audit log (not secret); ``secret`` is 32 random bytes in base64url
(43 characters, which may contain ``_`` and ``-``). Only a salted hash of the secret is
stored; the whole key is shown once, when it is created.

Why HMAC-SHA256 and not scrypt or argon2: slow hashes exist to make guessing *low-entropy*
passwords expensive. A 256-bit random secret cannot be guessed at any hash speed (2^255 tries
on average), so a slow hash adds no protection, while the server has to check keys on the
request path: scrypt at its usual cost (~50 ms of CPU) would cap a core at ~20 new or wrong
keys per second, so a stream of made-up keys would be a cheap denial of service. One
HMAC-SHA256 costs about a microsecond. The per-key random salt keeps equal secrets (there are
none in practice) from having equal hashes, and the comparison is constant-time.

>>> issued = issue_key(name="ci", role=Role.PREDICTOR, created_by="ann", now=0.0)
>>> key_id, secret = split_token(issued.token)
>>> key_id == issued.record.key_id
True
>>> verify_secret(secret, issued.record.salt, issued.record.hash)
True
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from modelyard.core.names import validate_model_name
from modelyard.errors import InvalidInputError
from modelyard.security.policy import Role, parse_role

__all__ = [
    "KEY_PREFIX",
    "ApiKey",
    "IssuedKey",
    "KeyState",
    "SecretCheck",
    "hash_secret",
    "issue_key",
    "parse_lifetime",
    "split_token",
    "verify_secret",
]

KEY_PREFIX = "my"
"""The first part of every key, so that secret scanners and people recognise one."""

_KEY_ID_BYTES = 8  # 16 hex characters
_SECRET_BYTES = 32  # 256 bits
_SALT_BYTES = 16
_HEX = "0123456789abcdef"
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,128}")
_LIFETIME = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdwy])\s*")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31_536_000.0}

KeyState = Literal["active", "expired", "revoked"]


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key: everything but the secret (of which only ``hash`` is kept)."""

    key_id: str
    name: str
    role: Role
    models: tuple[str, ...] | None  # None: every model
    salt: str = field(repr=False)
    hash: str = field(repr=False)
    created_at: float
    created_by: str
    expires_at: float | None = None
    revoked_at: float | None = None

    def state(self, now: float) -> KeyState:
        """``revoked`` wins over ``expired``, which wins over ``active``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"

    def allows_model(self, name: str) -> bool:
        """Whether this key may use model ``name``."""
        return self.models is None or name in self.models

    def public_dict(self, now: float) -> dict[str, Any]:
        """What ``keys list`` shows: never the salt, the hash or the secret."""
        return {
            "key_id": self.key_id, "name": self.name, "role": self.role.label,
            "models": list(self.models) if self.models is not None else None,
            "created_at": _iso(self.created_at), "created_by": self.created_by,
            "expires_at": _iso(self.expires_at), "revoked_at": _iso(self.revoked_at),
            "state": self.state(now),
        }


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key just created: the full ``token`` (shown once, never stored) and its record."""

    token: str = field(repr=False)
    record: ApiKey


def issue_key(*, name: str, role: Role | str, created_by: str, now: float,
              models: Iterable[str] | None = None,
              expires_at: float | None = None) -> IssuedKey:
    """Generate a new key with a fresh id, secret and salt.

    ``models`` limits the key to those model names (None: every model).
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or not name.strip():
        raise InvalidInputError(
            f"The key name must be 1-128 printable characters. Got {name!r} instead.",
            hint="Name a key for who or what uses it: --name ci-deploy.")
    limited = None
    if models is not None:
        limited = tuple(dict.fromkeys(validate_model_name(m) for m in models))
        if not limited:
            raise InvalidInputError(
                "A key limited to models needs at least one model name.",
                hint="Pass --models fraud,churn, or leave --models out for every model.")
    key_id = secrets.token_hex(_KEY_ID_BYTES)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(_SECRET_BYTES)).rstrip(b"=").decode()
    salt = secrets.token_hex(_SALT_BYTES)
    record = ApiKey(
        key_id=key_id, name=name.strip(), role=parse_role(role), models=limited, salt=salt,
        hash=hash_secret(secret, salt), created_at=now, created_by=created_by,
        expires_at=expires_at)
    return IssuedKey(token=f"{KEY_PREFIX}_{key_id}_{secret}", record=record)


def split_token(token: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed key, else None (never raises: it runs on every
    request, and the caller answers 401 for any malformed key).

    >>> split_token("my_0123456789abcdef_s3cr_et")
    ('0123456789abcdef', 's3cr_et')
    >>> split_token("Bearer nonsense") is None
    True
    """
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[2]:
        return None
    key_id = parts[1]
    if len(key_id) != 2 * _KEY_ID_BYTES or key_id.strip(_HEX):  # cheaper than a regex
        return None
    return key_id, parts[2]


def hash_secret(secret: str, salt: str) -> str:
    """Hex HMAC-SHA256 of ``secret`` keyed by ``salt`` (hex): what the database stores."""
    return hmac.digest(bytes.fromhex(salt), secret.encode("utf-8", "surrogateescape"),
                       hashlib.sha256).hex()


def verify_secret(secret: str, salt: str | bytes, expected: str | bytes) -> bool:
    """Whether ``secret`` hashes to ``expected`` under ``salt``, compared in constant time.

    ``salt`` and ``expected`` may be given as hex text, or as bytes already decoded (the
    server's key cache does that once per refresh rather than once per request).
    """
    salt_b = bytes.fromhex(salt) if isinstance(salt, str) else salt
    expected_b = bytes.fromhex(expected) if isinstance(expected, str) else expected
    actual = hmac.digest(salt_b, secret.encode("utf-8", "surrogateescape"), hashlib.sha256)
    return hmac.compare_digest(actual, expected_b)


class SecretCheck:
    """Checks secrets against one stored hash, for the server's key cache: the HMAC key
    schedule is computed once per key, so a request pays only for hashing its secret.

    >>> issued = issue_key(name="ci", role="viewer", created_by="ann", now=0.0)
    >>> check = SecretCheck(issued.record.salt, issued.record.hash)
    >>> check(split_token(issued.token)[1]), check("guess")
    (True, False)
    """

    __slots__ = ("_expected", "_mac")

    def __init__(self, salt: str, expected: str) -> None:
        self._mac = hmac.new(bytes.fromhex(salt), digestmod=hashlib.sha256)
        self._expected = bytes.fromhex(expected)

    def __call__(self, secret: str) -> bool:
        mac = self._mac.copy()
        mac.update(secret.encode("utf-8", "surrogateescape"))
        return hmac.compare_digest(mac.digest(), self._expected)


def parse_lifetime(text: str) -> float:
    """Seconds in a key lifetime such as ``90d``, ``12h``, ``2w`` or ``1y`` (positive).

    >>> parse_lifetime("90d")
    7776000.0
    """
    match = _LIFETIME.fullmatch(text) if isinstance(text, str) else None
    seconds = float(match.group(1)) * _UNITS[match.group(2)] if match else 0.0
    if seconds <= 0:
        raise InvalidInputError(
            f"The key lifetime must be a positive number and a unit (s, m, h, d, w, y). "
            f"Got {text!r} instead.",
            hint="Example: --expires 90d")
    return seconds


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
