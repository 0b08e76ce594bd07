"""The request-path guard: who is calling, may they, and are they within their rate.

One :class:`Guard` per server, shared by the REST and gRPC adapters. It answers each request
from memory: the keys are read from the registry at start-up and again every ``refresh_s``
seconds by a background task (a revoked key stops working within that interval), never by a
query per request. Per request it costs a dictionary lookup and a few comparisons; the
HMAC-SHA256 of a key runs on its first use after each refresh (see docs/security-auth.md for
the measurements).

The verdict is a value, not an exception: a :class:`Principal` (allowed) or a :class:`Denial`,
which the adapters turn into 401/403/429 (REST) or UNAUTHENTICATED / PERMISSION_DENIED /
RESOURCE_EXHAUSTED (gRPC).

>>> guard = build_guard(settings.security, SqlKeyStore(engine), host="127.0.0.1",
...                     refresh_s=2.0)                                      # doctest: +SKIP
>>> guard.check("my_...", "model.infer", "fraud", "10.0.0.7")             # doctest: +SKIP
Principal(key_id='4f0c...', name='ci', role=<Role.PREDICTOR: 2>, models=None)
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from modelyard.errors import ConfigurationError
from modelyard.security.keys import ApiKey, SecretCheck, split_token
from modelyard.security.policy import OPERATIONS, Permission, Role, allows
from modelyard.settings import SecuritySettings

__all__ = [
    "ANONYMOUS",
    "Denial",
    "DenialKind",
    "Guard",
    "KeySource",
    "Principal",
    "RateLimiter",
    "bearer_token",
    "build_guard",
    "is_loopback",
]

log = logging.getLogger("modelyard.serving.auth")

CREATE_HINT = ("Create a key with: modelyard keys create --name NAME --role predictor "
               "(it prints the key once).")
SEND_HINT = "Send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'."


class KeySource(Protocol):
    """Where the guard reads keys: :class:`modelyard.registry.sql.key_store.SqlKeyStore`."""

    def list_keys(self) -> Sequence[ApiKey]: ...


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as. ``key_id`` is None when authentication is off."""

    key_id: str | None
    name: str
    role: Role
    models: frozenset[str] | None = None

    @property
    def actor(self) -> str:
        """How audit entries name this caller."""
        return f"key:{self.key_id}" if self.key_id else "anonymous"


ANONYMOUS = Principal(key_id=None, name="anonymous", role=Role.ADMIN)
"""The caller when authentication is off (or for public routes): allowed everything."""


class DenialKind(Enum):
    UNAUTHENTICATED = 401
    FORBIDDEN = 403
    RATE_LIMITED = 429


@dataclass(frozen=True, slots=True)
class Denial:
    """A refused request: the kind (mapped to a status by each adapter) and the message."""

    kind: DenialKind
    message: str
    retry_after_s: int | None = None

    @property
    def status(self) -> int:
        return self.kind.value


class RateLimiter:
    """A token bucket per caller: ``rate`` requests/s on average, bursts up to ``burst``.

    >>> clock = iter([0.0, 0.0, 0.0]).__next__
    >>> limiter = RateLimiter(1.0, 2, clock=clock)
    >>> [limiter.take("k") for _ in range(3)]
    [0.0, 0.0, 1.0]
    """

    _MAX_BUCKETS = 10_000  # past this many callers, full (idle) buckets are dropped

    def __init__(self, rate: float, burst: int, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}  # caller -> [tokens, last refill time]

    def take(self, caller: str) -> float:
        """Spend one token of ``caller``'s bucket: 0.0 if there was one, else the seconds
        until there will be."""
        now = self._clock()
        bucket = self._buckets.get(caller)
        if bucket is None:
            if len(self._buckets) >= self._MAX_BUCKETS:
                self._prune(now)
            self._buckets[caller] = [self.burst - 1.0, now]
            return 0.0
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket: forget it. (With keys the
        # callers are the keys, a handful; without, they are client addresses.)
        full = [caller for caller, (tokens, last) in self._buckets.items()
                if tokens + (now - last) * self.rate >= self.burst]
        for caller in full:
            del self._buckets[caller]


@dataclass(frozen=True, slots=True)
class _Entry:
    """A cached key, its hash check prepared."""

    verify: SecretCheck
    principal: Principal
    expires_at: float | None
    revoked_at: float | None


def bearer_token(authorization: str | bytes | None, api_key: str | bytes | None) -> str | None:
    """The key a request carries: ``Authorization: Bearer <key>``, else ``X-API-Key``.

    >>> bearer_token(b"Bearer my_x_y", None), bearer_token(None, "my_x_y")
    ('my_x_y', 'my_x_y')
    >>> bearer_token("Basic dXNlcjpwdw==", None) is None
    True
    """
    if authorization:
        text = (authorization.decode("latin-1") if isinstance(authorization, bytes)
                else authorization)
        scheme, _, value = text.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if api_key:
        text = api_key.decode("latin-1") if isinstance(api_key, bytes) else api_key
        return text.strip() or None
    return None


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


class Guard:
    """Authenticates, rate-limits and authorizes requests from an in-memory key cache.

    ``enabled``: keys are required (``security.auth`` on, or ``auto`` with a key). With
    ``auto``, a server that started without keys turns authentication on by itself once a key
    appears (never off again: revoking every key locks the server rather than opening it).
    ``rate_limit_per_s`` limits each key, or each client address when keys are off.
    """

    def __init__(self, source: KeySource | None, *, enabled: bool, auto: bool = False,
                 refresh_s: float = 2.0, rate_limit_per_s: float | None = None,
                 rate_limit_burst: int = 100, keys: Sequence[ApiKey] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.source = source
        self.enabled = enabled
        self.auto = auto
        self.refresh_s = refresh_s
        self.limiter = (RateLimiter(rate_limit_per_s, rate_limit_burst)
                        if rate_limit_per_s is not None else None)
        self._clock = clock
        # (key id -> entry, key -> entry of keys verified since the last refresh), replaced
        # as one value so that a request sees one generation of both.
        self._cache: tuple[dict[str, _Entry], dict[str, _Entry]] = ({}, {})
        self._task: asyncio.Task[None] | None = None
        self._refresh_failed = False
        if keys is not None:
            self._install(keys)
        elif source is not None:
            self.reload()

    # -- the key cache -----------------------------------------------------------------------
    def reload(self) -> None:
        """Read every key from the source and swap the cache (blocking: call it in a thread
        from the event loop). On failure the previous cache stays and the error is logged."""
        if self.source is None:
            return
        try:
            keys = self.source.list_keys()
        except Exception as exc:  # the registry may be briefly unreachable: keep the cache
            if not self._refresh_failed:
                log.warning("Could not refresh the API keys (keeping the %d cached): %s",
                            len(self._cache[0]), exc)
            self._refresh_failed = True
            return
        if self._refresh_failed:
            log.info("API keys refreshed again (%d keys)", len(keys))
        self._refresh_failed = False
        self._install(keys)

    def _install(self, keys: Sequence[ApiKey]) -> None:
        cache = {
            k.key_id: _Entry(
                verify=SecretCheck(k.salt, k.hash),
                principal=Principal(k.key_id, k.name, k.role,
                                    frozenset(k.models) if k.models is not None else None),
                expires_at=k.expires_at, revoked_at=k.revoked_at)
            for k in keys
        }
        self._cache = (cache, {})  # one assignment: a request sees the old cache or the new
        if self.auto and not self.enabled and any(k.revoked_at is None for k in keys):
            self.enabled = True
            log.warning("An API key exists now: this server requires keys from here on "
                        "(security.auth=auto).")

    async def start(self) -> None:
        """Start refreshing the cache every ``refresh_s`` seconds."""
        if self.source is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def stop(self) -> None:
        """Stop refreshing."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            await asyncio.to_thread(self.reload)

    # -- the request path ----------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """Whether :meth:`check` can refuse anything now (False: keys off and no rate limit,
        so adapters may skip it)."""
        return self.enabled or self.limiter is not None

    def check(self, token: str | None, operation: str, model: str | None,
              client: str | None) -> Principal | Denial:
        """Decide one request: ``operation`` (see :data:`~modelyard.security.policy.OPERATIONS`),
        the ``model`` it touches (None for server-wide ones), the ``client`` address (the rate
        limit's caller when keys are off)."""
        permission = OPERATIONS.get(operation, Permission.ADMIN)
        if permission is Permission.PUBLIC:
            return ANONYMOUS  # probes are neither authenticated nor rate-limited
        if not self.enabled:
            if self.limiter is not None:
                wait = self.limiter.take(client or "?")
                if wait:
                    return _rate_limited(wait, self.limiter, f"client {client or '?'}")
            return ANONYMOUS
        who = self._authenticate(token)
        if isinstance(who, Denial):
            return who
        if self.limiter is not None:
            wait = self.limiter.take(who.key_id or "")
            if wait:
                return _rate_limited(wait, self.limiter, f"API key {who.key_id}")
        if not allows(who.role, permission):
            least = permission.least_role
            return Denial(DenialKind.FORBIDDEN, (
                f"The API key {who.key_id} has role '{who.role.label}'; {operation} needs "
                f"role '{least.label if least else 'admin'}' or above. Ask an admin for a "
                f"key with that role."))
        if model is not None and who.models is not None and model not in who.models:
            allowed = ", ".join(sorted(who.models))
            return Denial(DenialKind.FORBIDDEN, (
                f"The API key {who.key_id} may use the models {allowed} only, not "
                f"{model!r}."))
        return who

    def _authenticate(self, token: str | None) -> Principal | Denial:
        if not token:
            return Denial(DenialKind.UNAUTHENTICATED,
                          f"This server requires an API key. {SEND_HINT} {CREATE_HINT}")
        keys, verified = self._cache
        # A key that verified since the last refresh is found by a dictionary lookup: the
        # HMAC is ~1.5 us, the lookup ~0.05 us. It is not a timing oracle: a dict compares a
        # stored key with the probe only once their full 64-bit hashes (SipHash with this
        # process's random key) are equal, which a guess cannot arrange. At most one entry
        # per key (each key has one secret); emptied at each refresh, so revocation applies.
        entry = verified.get(token)
        if entry is None:
            parts = split_token(token)
            entry = keys.get(parts[0]) if parts is not None else None
            if parts is None or entry is None or not entry.verify(parts[1]):
                # One answer for malformed, unknown and wrong keys: no oracle for key ids.
                return Denial(DenialKind.UNAUTHENTICATED,
                              f"The API key is not valid. {SEND_HINT} {CREATE_HINT}")
            if len(verified) < len(keys):
                verified[token] = entry
        key_id = entry.principal.key_id
        if entry.revoked_at is not None:
            return Denial(DenialKind.UNAUTHENTICATED,
                          f"The API key {key_id} was revoked. {CREATE_HINT}")
        if entry.expires_at is not None and self._clock() >= entry.expires_at:
            return Denial(DenialKind.UNAUTHENTICATED,
                          f"The API key {key_id} has expired. {CREATE_HINT}")
        return entry.principal


def _rate_limited(wait: float, limiter: RateLimiter, who: str) -> Denial:
    seconds = max(1, math.ceil(wait))
    return Denial(DenialKind.RATE_LIMITED, (
        f"Too many requests from {who}: the limit is {limiter.rate:g} requests/s (bursts of "
        f"{limiter.burst:g}). Retry in {seconds} s."), retry_after_s=seconds)


def build_guard(security: SecuritySettings, source: KeySource | None, *, host: str,
                refresh_s: float = 2.0) -> Guard | None:
    """The guard ``security`` asks for, or None when there is nothing to guard (auth off and
    no rate limit). Decides ``security.auth``:

    * ``off``: no keys checked; a loud warning is logged.
    * ``on``: keys required; refuses (ConfigurationError) when no unrevoked key exists.
    * ``auto``: on when an unrevoked key exists; otherwise off, and refused when ``host`` is
      not a loopback address.
    """
    rate = security.rate_limit_per_s
    burst = security.rate_limit_burst
    if security.auth == "off":
        log.warning("AUTHENTICATION IS OFF (security.auth=off / --no-auth): anyone who can "
                    "reach %s may predict, read metadata and load or unload models.", host)
        if rate is None:
            return None
        return Guard(None, enabled=False, rate_limit_per_s=rate, rate_limit_burst=burst)
    if source is None:
        raise ConfigurationError(
            f"security.auth is {security.auth!r} but the server has no key store.",
            hint="Pass the registry's key store, or run with --no-auth.")
    keys = list(source.list_keys())
    unrevoked = any(k.revoked_at is None for k in keys)
    if not unrevoked and security.auth == "on":
        raise ConfigurationError(
            "security.auth is 'on' but no API key exists, so no client could call this "
            "server.", hint=CREATE_HINT)
    if not unrevoked and not is_loopback(host):
        raise ConfigurationError(
            f"Refusing to serve on {host} without authentication: no API key exists, and "
            "anyone who can reach this address could predict and change what is served.",
            hint=f"{CREATE_HINT} Or pass --no-auth to serve without keys on purpose.")
    if not unrevoked:
        log.info("No API key exists: serving %s without authentication. Creating a key "
                 "turns authentication on (within %g s).", host, refresh_s)
    return Guard(source, enabled=unrevoked, auto=security.auth == "auto",
                 refresh_s=refresh_s, rate_limit_per_s=rate, rate_limit_burst=burst,
                 keys=keys)
