"""A bare batching ASGI app: the floor under ``modelyard serve`` in the serving benchmark.

``run.py`` measures it beside the real server as the "bare ASGI floor" (and ``--standin`` puts
it in the real server's place to develop the harness). It speaks just the routes the benchmark
calls, on the same stack as the real server (uvicorn + httptools + uvloop, no access log),
and does only what any batching server must: parse the JSON, merge the requests that arrived
together into one ``predict_proba`` call, split the rows back and write the JSON answer. No
validation, metrics, logging, timeouts or error handling. Its infer route against its own
null route is therefore about the best ratio a Python server on this stack can reach here.

    python bench/serving/standin.py models:/NAME@production --host 127.0.0.1 --port 8080

Routes: ``GET /v2/health/ready``, ``POST /v2/models/{name}/infer`` (one FP64 2-D tensor;
answers ``predict`` and ``predict_proba`` like modelyard), ``POST /invocations``
(``{"inputs": [[...], ...]}``) and ``POST /v2/null`` (a fixed answer).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
from collections.abc import Awaitable, Callable
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import orjson

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

NULL_ANSWER = orjson.dumps({"model_name": "null", "outputs": [{"name": "null", "data": [0]}]})
JSON_HEADERS = [(b"content-type", b"application/json")]


class App:
    """The four routes, answered from one model loaded at start-up."""

    def __init__(self, model: Any, name: str) -> None:
        self.model = model
        self.name = name
        self.infer_path = f"/v2/models/{name}/infer"
        self.classes = np.asarray(model.predictor.classes)
        self.queue: list[tuple[np.ndarray, asyncio.Future[tuple[np.ndarray, np.ndarray]]]] = []

    def _predict_queued(self) -> None:
        """One predict_proba call for every request queued since the last one."""
        batch, self.queue = self.queue, []
        proba = self.model.predictor.predict_proba(np.concatenate([rows for rows, _ in batch]))
        labels = self.classes[proba.argmax(axis=1)]
        start = 0
        for rows, future in batch:
            stop = start + len(rows)
            future.set_result((labels[start:stop], proba[start:stop]))
            start = stop

    async def _batched(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self.queue:  # the requests parsed in this loop tick join this batch
            loop.call_soon(self._predict_queued)
        self.queue.append((rows, future))
        return await future

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan: nothing to set up
        path = scope["path"]
        if path == "/v2/health/ready":
            await _answer(send, 200, b"")
            return
        body = await _read_body(receive)
        if path == "/v2/null":
            await _answer(send, 200, NULL_ANSWER)
        elif path == self.infer_path:
            tensor = orjson.loads(body)["inputs"][0]
            rows = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
            labels, proba = await self._batched(rows)
            out = {
                "model_name": self.name,
                "outputs": [
                    {"name": "predict", "shape": list(labels.shape), "datatype": "INT64",
                     "data": labels},
                    {"name": "predict_proba", "shape": list(proba.shape), "datatype": "FP64",
                     "data": proba},
                ],
            }
            await _answer(send, 200, orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY))
        elif path == "/invocations":
            rows = np.asarray(orjson.loads(body)["inputs"], dtype=np.float64)
            pred = np.asarray(self.model.predict(rows))
            await _answer(send, 200, orjson.dumps({"predictions": pred.tolist()}))
        else:
            await _answer(send, 404, b'{"error": "not found"}')


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", help="models:/NAME@ALIAS")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--grpc-port", type=int, default=None, help="accepted and ignored")
    args = parser.parse_args()

    import uvicorn

    from modelyard import Client

    client = Client()  # MODELYARD_HOME from the environment
    model = client.load(args.ref)
    name = args.ref.removeprefix("models:/").split("@")[0].split("/")[0]
    # As modelyard does once its models are loaded: the collector skips the long-lived objects
    # and runs less often (see modelyard.serving.server.tune_collector).
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, *gc.get_threshold()[1:])
    uvicorn.run(
        App(model, name),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="off",
    )


if __name__ == "__main__":
    main()
