"""Notification sinks for alert events: a signed webhook, Python logging, a local command.

Each sink is a :class:`Notifier`; :func:`dispatch` sends every event to the sinks its rule
names, one sink after another per sink but all sinks at once, so that a slow or failing sink
neither delays nor stops the others.

Webhook requests carry the event as JSON (:meth:`AlertEvent.to_dict`) and these headers:

* ``X-Modelyard-Event``: ``alert.firing`` or ``alert.resolved``
* ``X-Modelyard-Delivery``: one id per event and sink, the same on every retry (deduplicate on it)
* ``X-Modelyard-Timestamp``: Unix seconds when the attempt was sent
* ``X-Modelyard-Signature``: ``sha256=`` + hex HMAC-SHA256 of ``timestamp + "." + body``
  with the shared secret (only when a secret is configured). A receiver recomputes it over the
  raw body bytes, compares with :func:`hmac.compare_digest`, and rejects old timestamps.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol

import orjson

from modelyard.errors import ModelyardError
from modelyard.monitoring.alerts import (
    AlertEvent,
    AlertsConfig,
    CommandSinkConfig,
    LogSinkConfig,
    WebhookSinkConfig,
)

if TYPE_CHECKING:
    import httpx

__all__ = [
    "CommandNotifier",
    "LogNotifier",
    "NotificationError",
    "Notifier",
    "WebhookNotifier",
    "build_notifiers",
    "dispatch",
    "event_body",
    "sign",
]

LOGGER_NAME = "modelyard.alerts"
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}
_RETRY_STATUS = 429
_STDERR_TAIL = 500


class NotificationError(ModelyardError):
    """A sink could not deliver an event (after its retries, for a webhook)."""

    def __init__(self, sink: str, message: str, *, hint: str | None = None) -> None:
        self.sink = sink
        super().__init__(f"Sink {sink!r} could not deliver the alert: {message}", hint=hint)


class Notifier(Protocol):
    """Something that delivers an alert event, or raises."""

    def send(self, event: AlertEvent) -> None:
        """Deliver ``event``; raise :class:`NotificationError` when that fails."""
        ...


def event_body(event: AlertEvent) -> bytes:
    """The JSON bytes a webhook posts and a command reads on stdin (sorted keys)."""
    return orjson.dumps(event.to_dict(), option=orjson.OPT_SORT_KEYS)


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Modelyard-Signature`` value: ``sha256=`` + hex HMAC of ``timestamp.body``.

    Example:
        >>> sign("s3cr3t", "1700000000", b"{}")[:7]
        'sha256='
    """
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookNotifier:
    """POST each event as JSON to ``url``; retry with exponential backoff.

    Connection errors, timeouts, 5xx and 429 are retried ``retries`` times, waiting
    ``backoff_s``, then twice as long each time; other answers (4xx, 3xx) fail at once.
    ``transport``, ``sleep`` and ``clock`` exist for tests.

    Example:
        >>> notifier = WebhookNotifier("https://hooks.example.com/ml", secret="s3cr3t")
    """

    def __init__(
        self,
        url: str,
        *,
        secret: str | None = None,
        timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        headers: Mapping[str, str] | None = None,
        name: str = "webhook",
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.name = name
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.headers = dict(headers or {})
        self._secret = secret
        self._transport = transport
        self._sleep = sleep
        self._clock = clock

    @classmethod
    def from_config(cls, name: str, config: WebhookSinkConfig) -> WebhookNotifier:
        """The notifier a ``type: webhook`` sink describes."""
        secret = config.secret.get_secret_value() if config.secret is not None else None
        return cls(config.url, secret=secret, timeout_s=config.timeout_s, retries=config.retries,
                   backoff_s=config.backoff_s, headers=config.headers, name=name)

    def send(self, event: AlertEvent) -> None:
        """POST ``event``; raise :class:`NotificationError` once every attempt has failed."""
        import httpx

        body = event_body(event)
        delivery = uuid.uuid4().hex
        attempts = self.retries + 1
        problem = ""
        with httpx.Client(timeout=self.timeout_s, transport=self._transport) as client:
            for attempt in range(attempts):
                if attempt:
                    self._sleep(self.backoff_s * 2 ** (attempt - 1))
                headers = self._headers(event, body, delivery)
                try:
                    response = client.post(self.url, content=body, headers=headers)
                except httpx.TransportError as exc:
                    problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    continue
                if response.status_code < 300:
                    return
                problem = f"HTTP {response.status_code} from {self.url}"
                if response.status_code < 500 and response.status_code != _RETRY_STATUS:
                    raise NotificationError(
                        self.name, problem,
                        hint="The receiver refused the request; check its URL and secret.",
                    )
        raise NotificationError(
            self.name, f"{problem} (after {attempts} attempts).",
            hint="Check that the receiver is up, or raise 'retries' and 'backoff_s'.",
        )

    def _headers(self, event: AlertEvent, body: bytes, delivery: str) -> dict[str, str]:
        timestamp = str(int(self._clock()))
        headers = {
            **self.headers,
            "Content-Type": "application/json",
            "User-Agent": "modelyard-alerts",
            "X-Modelyard-Event": f"alert.{event.kind}",
            "X-Modelyard-Delivery": delivery,
            "X-Modelyard-Timestamp": timestamp,
        }
        if self._secret is not None:
            headers["X-Modelyard-Signature"] = sign(self._secret, timestamp, body)
        return headers


class LogNotifier:
    """Log each event's message on the ``modelyard.alerts`` logger.

    Without a fixed ``level``, firing events log at their severity (``info`` as INFO,
    ``warning`` as WARNING, ``critical`` as ERROR) and resolved events at INFO. The event is
    attached to the record as ``record.alert`` (its dict) for structured handlers.
    """

    def __init__(self, level: str | int | None = None, *, name: str = "log",
                 logger: logging.Logger | None = None) -> None:
        self.name = name
        self.level = logging.getLevelName(level.upper()) if isinstance(level, str) else level
        self._logger = logger or logging.getLogger(LOGGER_NAME)

    @classmethod
    def from_config(cls, name: str, config: LogSinkConfig) -> LogNotifier:
        """The notifier a ``type: log`` sink describes."""
        return cls(config.level, name=name)

    def send(self, event: AlertEvent) -> None:
        """Log ``event.message``."""
        if self.level is not None:
            level: int = self.level
        elif event.kind == "resolved":
            level = logging.INFO
        else:
            level = _LEVELS.get(event.severity, logging.WARNING)
        self._logger.log(level, event.message, extra={"alert": event.to_dict()})


class CommandNotifier:
    """Run ``argv`` (no shell) with the event JSON on stdin and ``MODELYARD_ALERT_*`` set.

    The variables are ``MODELYARD_ALERT_RULE``, ``_MODEL``, ``_METRIC``, ``_VALUE``, ``_OP``,
    ``_THRESHOLD``, ``_SEVERITY``, ``_KIND``, ``_AT`` and ``_MESSAGE``. A non-zero exit, a
    missing program or a run longer than ``timeout_s`` fails the delivery.

    Example:
        >>> notifier = CommandNotifier(["logger", "-t", "modelyard"])
    """

    def __init__(self, argv: list[str], *, timeout_s: float = 30.0,
                 name: str = "command") -> None:
        self.argv = list(argv)
        self.timeout_s = timeout_s
        self.name = name

    @classmethod
    def from_config(cls, name: str, config: CommandSinkConfig) -> CommandNotifier:
        """The notifier a ``type: command`` sink describes."""
        return cls(config.argv, timeout_s=config.timeout_s, name=name)

    def send(self, event: AlertEvent) -> None:
        """Run the command for ``event``; raise :class:`NotificationError` if it fails."""
        # The child inherits our environment (PATH, HOME...) as any hook would; we only add
        # the event's variables to it. This passes the environment on; it reads no settings.
        env = {**os.environ, **_event_env(event)}
        try:
            done = subprocess.run(
                self.argv, input=event_body(event), env=env, capture_output=True,
                timeout=self.timeout_s, check=False,
            )
        except FileNotFoundError:
            raise NotificationError(
                self.name, f"the program {self.argv[0]!r} does not exist.",
                hint="Give its full path in 'argv'.",
            ) from None
        except subprocess.TimeoutExpired:
            raise NotificationError(
                self.name, f"{self.argv[0]!r} ran longer than {self.timeout_s:g} s and was "
                "killed.", hint="Make the command faster or raise 'timeout_s'.",
            ) from None
        except OSError as exc:
            raise NotificationError(self.name, f"cannot run {self.argv[0]!r}: {exc}") from None
        if done.returncode != 0:
            stderr = done.stderr.decode(errors="replace").strip()[-_STDERR_TAIL:]
            raise NotificationError(
                self.name, f"{self.argv[0]!r} exited with status {done.returncode}"
                + (f": {stderr}" if stderr else "."),
            )


def _event_env(event: AlertEvent) -> dict[str, str]:
    return {
        "MODELYARD_ALERT_RULE": event.rule,
        "MODELYARD_ALERT_MODEL": event.model,
        "MODELYARD_ALERT_METRIC": event.metric,
        "MODELYARD_ALERT_VALUE": "" if event.value is None else repr(event.value),
        "MODELYARD_ALERT_OP": event.op,
        "MODELYARD_ALERT_THRESHOLD": repr(event.threshold),
        "MODELYARD_ALERT_SEVERITY": event.severity,
        "MODELYARD_ALERT_KIND": event.kind,
        "MODELYARD_ALERT_AT": repr(event.at),
        "MODELYARD_ALERT_MESSAGE": event.message,
    }


def build_notifiers(config: AlertsConfig) -> dict[str, Notifier]:
    """One notifier per sink of ``config``, plus the implicit ``log`` sink unless redefined."""
    notifiers: dict[str, Notifier] = {"log": LogNotifier()}
    for name, sink in config.sinks.items():
        if isinstance(sink, WebhookSinkConfig):
            notifiers[name] = WebhookNotifier.from_config(name, sink)
        elif isinstance(sink, LogSinkConfig):
            notifiers[name] = LogNotifier.from_config(name, sink)
        else:
            notifiers[name] = CommandNotifier.from_config(name, sink)
    return notifiers


def dispatch(
    events: Iterable[AlertEvent], notifiers: Mapping[str, Notifier]
) -> list[tuple[AlertEvent, str, Exception | None]]:
    """Send each event to each of its sinks; report ``(event, sink, error or None)``.

    Each sink gets its events in order; different sinks run concurrently, so that one that
    retries or hangs delays no other. A sink that raises (or is not in ``notifiers``) is
    reported and logged on ``modelyard.alerts``; it never stops the others. The result is in
    event order, then in the order of each event's sinks.

    Example:
        >>> dispatch([], {"log": LogNotifier()})
        []
    """
    # A rule that names a sink twice still notifies it once.
    targets = [(event, list(dict.fromkeys(event.sinks))) for event in events]
    jobs: dict[str, list[int]] = {}
    for index, (_, sinks) in enumerate(targets):
        for sink in sinks:
            jobs.setdefault(sink, []).append(index)
    outcomes: dict[tuple[int, str], Exception | None] = {}

    def run(sink: str) -> None:
        notifier = notifiers.get(sink)
        for index in jobs[sink]:
            event = targets[index][0]
            error: Exception | None = None
            if notifier is None:
                error = NotificationError(sink, "no sink has this name.",
                                          hint="Define it under 'sinks:' in the alerts config.")
            else:
                try:
                    notifier.send(event)
                except Exception as exc:  # one sink's failure must not stop the others
                    error = exc
            if error is not None:
                logging.getLogger(LOGGER_NAME).warning(
                    "Alert %r for model %r was not delivered to sink %r: %s",
                    event.rule, event.model, sink, error,
                )
            outcomes[index, sink] = error

    if len(jobs) == 1:
        run(next(iter(jobs)))
    elif jobs:
        with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="alert-sink") as pool:
            for future in [pool.submit(run, sink) for sink in jobs]:
                future.result()
    return [(event, sink, outcomes[index, sink])
            for index, (event, sinks) in enumerate(targets) for sink in sinks]

