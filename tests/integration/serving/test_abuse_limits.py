"""Abuse resistance on a real server: JSON bodies past the nesting and size limits get a 400
naming the limit, and slow clients (a stalled body, slowloris headers) are dropped within a
bound while everyone else is served."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from tests.integration.serving.conftest import Served

from modelyard.serving.http.read_timeout import read_timeout_protocol
from modelyard.serving.server import build_app
from modelyard.settings import ServingSettings

ROW = [0.5] * 30


def _deep(levels: int) -> bytes:
    return b'{"inputs": ' + b"[" * levels + b"1" + b"]" * levels + b"}"


LIMITED = [
    ("/v2/models/cancer/infer", _deep(40), "error", r"nests 41 levels deep; the limit is 32 "
                                                    r"\(security\.max_json_depth\)"),
    ("/invocations", b'{"instances": ' + b"[" * 40 + b"]" * 40 + b"}", "message",
     r"security\.max_json_depth"),
    ("/v1/models/cancer:predict", b'{"instances": ' + b"[" * 33 + b"]" * 33 + b"}", "error",
     r"max_json_depth"),
    ("/v2/models/cancer/feedback", b'{"id": "x", "label": ' + b"[" * 50 + b"]" * 50 + b"}",
     "error", r"max_json_depth"),
]


@pytest.mark.parametrize(("path", "body", "key", "match"), LIMITED,
                         ids=["v2", "mlflow", "tf-serving", "feedback"])
def test_deep_json_is_a_400_naming_the_limit(served: Served, path: str, body: bytes, key: str,
                                             match: str) -> None:
    import re

    with httpx.Client(base_url=served.url) as http:
        r = http.post(path, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text
        assert re.search(match, r.json()[key]), r.text
        ok = http.post("/v2/models/cancer/infer", json={"inputs": [
            {"name": "input", "shape": [1, 30], "datatype": "FP64", "data": ROW}]})
        assert ok.status_code == 200  # and the server keeps serving


def test_only_the_json_header_of_a_binary_v2_body_counts(served: Served) -> None:
    # The binary tensor is full of 0x5B ('['): as JSON it would be thousands of levels deep.
    data = np.full((1, 30), np.frombuffer(b"[" * 8, dtype=np.float64)[0])
    header = (b'{"inputs":[{"name":"input","shape":[1,30],"datatype":"FP64",'
              b'"parameters":{"binary_data_size":240}}]}')
    with httpx.Client(base_url=served.url) as http:
        r = http.post("/v2/models/cancer-tensor/infer", content=header + data.tobytes(),
                      headers={"Inference-Header-Content-Length": str(len(header)),
                               "Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text


# -- slow clients --------------------------------------------------------------------------------
class _NoModels:
    """A model source for a server that serves no model."""

    def resolve(self, ref: Any) -> Any:
        raise AssertionError("no model is resolved")

    def load(self, ref: Any) -> Any:
        raise AssertionError("no model is loaded")


READ_TIMEOUT_S = 1.0  # generous: a loaded CI machine must not trip the "steady" case


@contextlib.contextmanager
def _guarded_server() -> Iterator[tuple[str, int]]:
    """The REST app on uvicorn with the read-timeout protocol, as 'modelyard serve' runs it."""
    import uvicorn

    settings = ServingSettings(grpc_port=None, null_route=True)
    app = build_app(_NoModels(), settings, version="test").app
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", access_log=False,
                            log_level="warning", loop="asyncio",
                            http=read_timeout_protocol(READ_TIMEOUT_S), timeout_keep_alive=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "the server failed to start"
        assert time.monotonic() < deadline, "the server did not start in time"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        thread.join(10)


def _seconds_until_closed(sock: socket.socket, limit_s: float = 5.0) -> float:
    """Seconds until the server closes the connection (recv returns b'' or is reset)."""
    started = time.monotonic()
    sock.settimeout(limit_s)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - started


STALLS = [
    ("body", b"POST /v2/null HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             b"Content-Length: 1000\r\n\r\n{\"inputs\": ["),
    ("headers", b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Slow: "),
    ("nothing", b""),
]


@pytest.mark.parametrize(("label", "sent"), STALLS, ids=[s[0] for s in STALLS])
def test_stalled_clients_are_dropped_while_others_are_served(label: str, sent: bytes) -> None:
    with _guarded_server() as (host, port):
        with socket.create_connection((host, port)) as stalled:
            stalled.sendall(sent)
            started = time.monotonic()
            with httpx.Client(base_url=f"http://{host}:{port}") as http:
                for _ in range(5):  # served while the stalled connection waits
                    assert http.get("/v2/health/live").status_code == 200
                    assert http.post("/v2/null", content=b"{}").status_code == 200
            waited = time.monotonic() - started + _seconds_until_closed(stalled)
        assert READ_TIMEOUT_S * 0.8 <= waited < READ_TIMEOUT_S + 2.0


def _read_response(sock: socket.socket) -> bytes:
    """One whole HTTP/1.1 response: it may arrive in several TCP segments (the head apart from
    a chunked body), so read until its length or the last chunk says it is complete."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += _recv_some(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), None)
    if length is not None:
        while len(body) < length:
            body += _recv_some(sock)
    else:  # chunked
        while not body.endswith(b"0\r\n\r\n"):
            body += _recv_some(sock)
    return head + b"\r\n\r\n" + body


def _recv_some(sock: socket.socket) -> bytes:
    chunk = sock.recv(4096)
    assert chunk, "the server closed the connection before the response was complete"
    return chunk


def test_a_slow_but_steady_request_within_the_bound_is_served() -> None:
    with _guarded_server() as (host, port), socket.create_connection((host, port)) as sock:
        body = b'{"inputs": []}'
        sock.sendall(b"POST /v2/null HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:5])
        time.sleep(READ_TIMEOUT_S / 3)
        sock.sendall(body[5:])
        sock.settimeout(5)
        answer = _read_response(sock)
        assert answer.startswith(b"HTTP/1.1 200"), answer
        # The connection stays open for the next request (keep-alive), past the timeout.
        time.sleep(READ_TIMEOUT_S * 1.5)
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = _read_response(sock)
        assert answer.startswith(b"HTTP/1.1 200"), answer
