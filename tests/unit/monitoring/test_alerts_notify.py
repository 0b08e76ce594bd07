"""Notifiers without a network: webhook retries over a mock transport, log, command, dispatch."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import httpx
import pytest

from modelyard.monitoring.alerts import AlertEvent, load_alerts
from modelyard.monitoring.notify import (
    CommandNotifier,
    LogNotifier,
    NotificationError,
    WebhookNotifier,
    build_notifiers,
    dispatch,
    event_body,
    sign,
)

EVENT = AlertEvent(rule="drift", model="fraud", metric="drift.share", value=0.42, op=">",
                   threshold=0.3, severity="critical", kind="firing", at=1_700_000_000.0,
                   message="[critical] Alert 'drift' is firing.", sinks=("log",))


def _webhook(statuses: list[int | type[Exception]], **kwargs: object
             ) -> tuple[WebhookNotifier, list[httpx.Request], list[float]]:
    """A notifier whose transport answers with ``statuses`` in turn (or raises)."""
    requests: list[httpx.Request] = []
    sleeps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        outcome = statuses[min(len(requests), len(statuses)) - 1]
        if isinstance(outcome, int):
            return httpx.Response(outcome)
        raise outcome("refused", request=request)

    notifier = WebhookNotifier("http://hooks.test/ml", transport=httpx.MockTransport(handler),
                               sleep=sleeps.append, clock=lambda: 1_700_000_123.9,
                               name="hook", **kwargs)  # type: ignore[arg-type]
    return notifier, requests, sleeps


def test_webhook_posts_signed_json() -> None:
    notifier, requests, _ = _webhook([200], secret="s3cr3t", headers={"Authorization": "Bearer t"})
    notifier.send(EVENT)
    [request] = requests
    assert json.loads(request.content) == EVENT.to_dict()
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Modelyard-Event"] == "alert.firing"
    assert request.headers["X-Modelyard-Timestamp"] == "1700000123"
    assert request.headers["Authorization"] == "Bearer t"
    assert request.headers["X-Modelyard-Signature"] == sign("s3cr3t", "1700000123",
                                                            request.content)


def test_webhook_without_secret_is_unsigned() -> None:
    notifier, requests, _ = _webhook([204])
    notifier.send(EVENT)
    assert "X-Modelyard-Signature" not in requests[0].headers


def test_signature_matches_openssl() -> None:
    # printf '1700000000.{}' | openssl dgst -sha256 -hmac s3cr3t
    expected = "sha256=dd8508e44d9a9f82f2690fb7dff1da8a6ae99700d98a23a4e7e1c307af3cb6cb"
    assert sign("s3cr3t", "1700000000", b"{}") == expected
    assert sign(b"s3cr3t", "1700000000", b"{}") == expected


RETRY_CASES = {
    "500-500-200": ([500, 500, 200], 3, [0.1, 0.2]),
    "429-then-200": ([429, 200], 2, [0.1]),
    "503-502-504-200": ([503, 502, 504, 200], 4, [0.1, 0.2, 0.4]),
    "connect-error-then-200": ([httpx.ConnectError, 200], 2, [0.1]),
    "timeout-then-200": ([httpx.ReadTimeout, 200], 2, [0.1]),
}


@pytest.mark.parametrize(("statuses", "attempts", "waits"), list(RETRY_CASES.values()),
                         ids=list(RETRY_CASES))
def test_webhook_retries_with_exponential_backoff(
    statuses: list[int | type[Exception]], attempts: int, waits: list[float]
) -> None:
    notifier, requests, sleeps = _webhook(statuses, retries=3, backoff_s=0.1)
    notifier.send(EVENT)
    assert len(requests) == attempts
    assert sleeps == pytest.approx(waits)
    # One delivery id across the retries, so that a receiver can deduplicate.
    assert len({r.headers["X-Modelyard-Delivery"] for r in requests}) == 1


FAILURE_CASES = {
    "always-500": ([500], 3, r"Sink 'hook' could not deliver the alert: HTTP 500 from "
                   r"http://hooks\.test/ml \(after 3 attempts\)\. Check that the receiver is up"),
    "always-refused": ([httpx.ConnectError], 3, r"ConnectError: refused \(after 3 attempts\)"),
    "400-is-not-retried": ([400], 1, r"HTTP 400 from .* The receiver refused the request"),
    "401-is-not-retried": ([401], 1, r"HTTP 401 from"),
    "redirect-is-a-failure": ([302], 1, r"HTTP 302 from"),
}


@pytest.mark.parametrize(("statuses", "attempts", "match"), list(FAILURE_CASES.values()),
                         ids=list(FAILURE_CASES))
def test_webhook_gives_up(
    statuses: list[int | type[Exception]], attempts: int, match: str
) -> None:
    notifier, requests, _ = _webhook(statuses, retries=2, backoff_s=0.0)
    with pytest.raises(NotificationError, match=match) as info:
        notifier.send(EVENT)
    assert len(requests) == attempts
    assert info.value.sink == "hook"


@pytest.mark.parametrize(
    ("level", "event", "expected"),
    [(None, EVENT, logging.ERROR),
     (None, AlertEvent(**{**EVENT.to_dict(), "severity": "warning", "sinks": ()}),
      logging.WARNING),
     (None, AlertEvent(**{**EVENT.to_dict(), "severity": "info", "sinks": ()}), logging.INFO),
     (None, AlertEvent(**{**EVENT.to_dict(), "kind": "resolved", "sinks": ()}), logging.INFO),
     ("debug", EVENT, logging.DEBUG)],
    ids=["critical", "warning", "info", "resolved", "fixed-level"],
)
def test_log_notifier_level(
    level: str | None, event: AlertEvent, expected: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="modelyard.alerts"):
        LogNotifier(level).send(event)
    [record] = caplog.records
    assert (record.name, record.levelno, record.getMessage()) == (
        "modelyard.alerts", expected, event.message)
    assert record.alert == event.to_dict()  # type: ignore[attr-defined]


def _writer(path: Path) -> list[str]:
    """A command that writes its stdin and its MODELYARD_ALERT_* variables to ``path``."""
    code = ("import json, os, sys; data = {'stdin': sys.stdin.read(), 'env': {k: v for k, v in "
            "os.environ.items() if k.startswith('MODELYARD_ALERT_')}}; "
            f"open({str(path)!r}, 'w').write(json.dumps(data))")
    return [sys.executable, "-c", code]


def test_command_gets_json_and_variables(tmp_path: Path) -> None:
    out = tmp_path / "event.json"
    CommandNotifier(_writer(out)).send(EVENT)
    data = json.loads(out.read_text())
    assert json.loads(data["stdin"]) == EVENT.to_dict()
    assert data["env"] == {
        "MODELYARD_ALERT_RULE": "drift", "MODELYARD_ALERT_MODEL": "fraud",
        "MODELYARD_ALERT_METRIC": "drift.share", "MODELYARD_ALERT_VALUE": "0.42",
        "MODELYARD_ALERT_OP": ">", "MODELYARD_ALERT_THRESHOLD": "0.3",
        "MODELYARD_ALERT_SEVERITY": "critical", "MODELYARD_ALERT_KIND": "firing",
        "MODELYARD_ALERT_AT": "1700000000.0", "MODELYARD_ALERT_MESSAGE": EVENT.message,
    }


@pytest.mark.parametrize(
    ("argv", "timeout_s", "match"),
    [([sys.executable, "-c", "import sys; sys.stderr.write('pager down'); sys.exit(3)"], 10,
      r"Sink 'pager' could not deliver the alert: '.*' exited with status 3: pager down"),
     (["/nonexistent/page"], 10, r"the program '/nonexistent/page' does not exist\. Give its "
      r"full path"),
     ([sys.executable, "-c", "import time; time.sleep(10)"], 0.3,
      r"ran longer than 0\.3 s and was killed\. Make the command faster or raise 'timeout_s'")],
    ids=["non-zero-exit", "missing-program", "timeout"],
)
def test_command_failures(argv: list[str], timeout_s: float, match: str) -> None:
    with pytest.raises(NotificationError, match=match):
        CommandNotifier(argv, timeout_s=timeout_s, name="pager").send(EVENT)


def test_build_notifiers_from_config() -> None:
    config = load_alerts("""
sinks:
  hook: {type: webhook, url: "https://hooks.example.com/ml", secret: s, retries: 1}
  pager: {type: command, argv: [page]}
  quiet: {type: log, level: info}
""")
    notifiers = build_notifiers(config)
    assert sorted(notifiers) == ["hook", "log", "pager", "quiet"]
    hook = notifiers["hook"]
    assert isinstance(hook, WebhookNotifier)
    assert (hook.url, hook.retries, hook.name) == ("https://hooks.example.com/ml", 1, "hook")
    assert isinstance(notifiers["pager"], CommandNotifier)
    assert isinstance(notifiers["log"], LogNotifier)
    quiet = notifiers["quiet"]
    assert isinstance(quiet, LogNotifier)
    assert quiet.level == logging.INFO


class _Recorder:
    def __init__(self, delay: float = 0.0, error: Exception | None = None) -> None:
        self.events: list[tuple[AlertEvent, float]] = []
        self.delay = delay
        self.error = error

    def send(self, event: AlertEvent) -> None:
        time.sleep(self.delay)
        self.events.append((event, time.monotonic()))
        if self.error is not None:
            raise self.error


def test_dispatch_reports_each_sink_and_isolates_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = AlertEvent(**{**EVENT.to_dict(), "sinks": ("broken", "good", "nowhere", "good")})
    second = AlertEvent(**{**EVENT.to_dict(), "kind": "resolved", "sinks": ("good",)})
    good, broken = _Recorder(), _Recorder(error=RuntimeError("boom"))
    results = dispatch([first, second], {"good": good, "broken": broken})
    assert [(e.kind, sink, type(err).__name__ if err else None) for e, sink, err in results] == [
        ("firing", "broken", "RuntimeError"), ("firing", "good", None),
        ("firing", "nowhere", "NotificationError"), ("resolved", "good", None)]
    assert str(results[2][2]) == ("Sink 'nowhere' could not deliver the alert: no sink has this "
                                  "name. Define it under 'sinks:' in the alerts config.")
    assert [e.kind for e, _ in good.events] == ["firing", "resolved"]  # in order, once each
    assert sorted(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING) == [
        "Alert 'drift' for model 'fraud' was not delivered to sink 'broken': boom",
        "Alert 'drift' for model 'fraud' was not delivered to sink 'nowhere': Sink 'nowhere' "
        "could not deliver the alert: no sink has this name. Define it under 'sinks:' in the "
        "alerts config."]


def test_a_slow_sink_does_not_delay_the_others() -> None:
    slow, fast = _Recorder(delay=0.5, error=RuntimeError("late")), _Recorder()
    event = AlertEvent(**{**EVENT.to_dict(), "sinks": ("slow", "fast")})
    start = time.monotonic()
    results = dispatch([event], {"slow": slow, "fast": fast})
    assert fast.events[0][1] - start < 0.4
    assert slow.events[0][1] - start >= 0.5
    assert [err is None for _, _, err in results] == [False, True]


def test_body_is_sorted_json() -> None:
    body = event_body(EVENT)
    assert body == json.dumps(EVENT.to_dict(), sort_keys=True, separators=(",", ":")).encode()
