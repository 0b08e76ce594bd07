"""Alerts end to end over loopback: rules -> events -> a real HTTP receiver, a command, the log."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from modelyard.monitoring.alerts import AlertEvent, evaluate, load_alerts
from modelyard.monitoring.notify import NotificationError, build_notifiers, dispatch

SECRET = "shared-s3cr3t"


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 answering with ``statuses`` in turn (the last repeats)."""

    url: str
    statuses: list[int] = field(default_factory=lambda: [200])
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append((dict(self.headers.items()), body))
            status = state.statuses[min(len(state.requests), len(state.statuses)) - 1]
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="webhook-receiver",
                              daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/modelyard"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _config(url: str, out: Path, *, retries: int = 3) -> str:
    code = f"import sys; open({str(out)!r}, 'ab').write(sys.stdin.buffer.read() + b'\\n')"
    return f"""
sinks:
  hook:
    type: webhook
    url: {url}
    secret: {SECRET}
    retries: {retries}
    backoff_s: 0.01
    timeout_s: 2
  script:
    type: command
    argv: [{json.dumps(sys.executable)}, -c, {json.dumps(code)}]
rules:
  - name: drift-high
    model: fraud
    condition: drift.share > 0.3
    severity: critical
    sinks: [hook, script, log]
"""


def _verify(headers: dict[str, str], body: bytes) -> None:
    """What a receiver does: recompute the signature over the raw body with the secret."""
    timestamp = headers["X-Modelyard-Timestamp"]
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    assert hmac.compare_digest(headers["X-Modelyard-Signature"], "sha256=" + expected.hexdigest())
    assert abs(time.time() - int(timestamp)) < 60


def test_firing_and_resolved_reach_every_sink(
    receiver: Receiver, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "events.jsonl"
    config = load_alerts(_config(receiver.url, out))
    notifiers = build_notifiers(config)
    states: dict = {}
    delivered: list[AlertEvent] = []
    with caplog.at_level(logging.INFO, logger="modelyard.alerts"):
        for now, share in [(0, 0.5), (60, 0.6), (120, 0.1)]:
            states, events = evaluate(config.rules, {"fraud": {"drift.share": share}},
                                      now=now, states=states)
            results = dispatch(events, notifiers)
            assert [error for _, _, error in results] == [None] * len(results)
            delivered += events
    assert [e.kind for e in delivered] == ["firing", "resolved"]
    assert len(receiver.requests) == 2
    for (headers, body), event in zip(receiver.requests, delivered, strict=True):
        assert json.loads(body) == event.to_dict()
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Modelyard-Event"] == f"alert.{event.kind}"
        _verify(headers, body)
    lines = out.read_bytes().splitlines()
    assert [json.loads(line) for line in lines] == [e.to_dict() for e in delivered]
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.ERROR, delivered[0].message), (logging.INFO, delivered[1].message)]


def test_retries_after_two_500s_then_succeeds(receiver: Receiver, tmp_path: Path) -> None:
    receiver.statuses = [500, 500, 200]
    config = load_alerts(_config(receiver.url, tmp_path / "events.jsonl"))
    _, events = evaluate(config.rules, {"fraud": {"drift.share": 0.9}}, now=0, states={})
    build_notifiers(config)["hook"].send(events[0])
    assert len(receiver.requests) == 3
    bodies = {body for _, body in receiver.requests}
    assert len(bodies) == 1
    assert len({headers["X-Modelyard-Delivery"] for headers, _ in receiver.requests}) == 1
    for headers, body in receiver.requests:
        _verify(headers, body)


def test_a_failing_webhook_raises_without_blocking_other_sinks(
    receiver: Receiver, tmp_path: Path
) -> None:
    receiver.statuses = [500]
    out = tmp_path / "events.jsonl"
    config = load_alerts(_config(receiver.url, out, retries=2))
    _, events = evaluate(config.rules, {"fraud": {"drift.share": 0.9}}, now=0, states={})
    with pytest.raises(NotificationError, match=r"Sink 'hook' could not deliver the alert: "
                       r"HTTP 500 from http://127\.0\.0\.1:\d+/hooks/modelyard \(after 3 "
                       r"attempts\)"):
        build_notifiers(config)["hook"].send(events[0])
    assert len(receiver.requests) == 3
    results = dispatch(events, build_notifiers(config))
    assert [(sink, type(error).__name__ if error else None) for _, sink, error in results] == [
        ("hook", "NotificationError"), ("script", None), ("log", None)]
    assert len(receiver.requests) == 6
    assert json.loads(out.read_bytes()) == events[0].to_dict()


def test_a_receiver_that_is_down_fails_after_the_retries(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = load_alerts(_config(f"http://127.0.0.1:{port}/", tmp_path / "e.jsonl", retries=1))
    _, events = evaluate(config.rules, {"fraud": {"drift.share": 0.9}}, now=0, states={})
    with pytest.raises(NotificationError, match=r"ConnectError: .*\(after 2 attempts\)"):
        build_notifiers(config)["hook"].send(events[0])
