"""Adaptive batching: concurrent requests to one model become one predict call.

A request is queued with its already-validated input. Whenever a runtime replica is free, it
takes every queued request up to ``max_batch_size`` rows (a larger request runs alone),
concatenates their rows, predicts once and hands each request exactly its own rows back. Under
light load a request is dispatched at once (no added latency); under heavy load requests
accumulate while the previous batch runs, so batches grow with the load. ``max_batch_delay_ms``
additionally lets a batch wait for company, only while requests keep arriving.

Predict runs in a thread per replica. Threads rather than processes: the runtimes we serve
(numpy/scikit-learn kernels, onnxruntime, xgboost, lightgbm, torch) release the GIL inside their
native code, and a process would pay serialisation of every batch both ways plus a second copy
of the model. One exception, chosen by measurement: handing a batch to a thread and back costs
about 90 us on one core, so a model whose calls typically take less than ``inline_below_s``
(``serving.inline_predict_ms``, 1 ms) is called on the event loop itself; the first call is
always measured in the thread, and one slow call sends the model back to its thread.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelyard.core.inference import BatchRef
from modelyard.core.tabular import Columns
from modelyard.errors import OverloadedError, RequestTimeoutError

__all__ = ["BatchStats", "Batcher", "concat_inputs", "n_rows"]

Outputs = dict[str, np.ndarray]
PredictFn = Callable[[Any], Outputs]


@dataclass(slots=True, eq=False)  # compared by identity: its data is an array
class _Pending:
    data: Any
    rows: int
    future: asyncio.Future[BatchRef]
    enqueued: float
    deadline: float


@dataclass(slots=True)
class BatchStats:
    """Observations of one batch, for metrics."""

    size: int
    requests: int
    queue_wait_s: list[float] = field(default_factory=list)


def n_rows(data: Columns | np.ndarray) -> int:
    if isinstance(data, np.ndarray):
        return int(data.shape[0]) if data.ndim else 1
    return len(next(iter(data.values()))) if data else 0


def concat_inputs(parts: list[Any]) -> Any:
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts, axis=0)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


class Batcher:
    """Batches requests for one loaded model version."""

    def __init__(
        self,
        predict: PredictFn,
        *,
        max_batch_size: int,
        max_batch_delay_s: float,
        max_queue: int,
        replicas: int = 1,
        name: str = "model",
        on_batch: Callable[[BatchStats], None] | None = None,
        inline_below_s: float = 0.0,
        timeout_s: float = float("inf"),
    ) -> None:
        self._predict = predict
        self.max_batch_size = max_batch_size
        self.max_batch_delay_s = max_batch_delay_s
        self.max_queue = max_queue
        self._queue: collections.deque[_Pending] = collections.deque()
        self._free = replicas
        self._executor = ThreadPoolExecutor(max_workers=replicas,
                                            thread_name_prefix=f"predict-{name}")
        self._on_batch = on_batch
        self.inline_below_s = inline_below_s
        self._typical_s: float | None = None
        self._last_batch_requests = 0
        self._inflight: set[asyncio.Task[None]] = set()
        self.name = name
        self.timeout_s = timeout_s
        """Seconds a request may wait for its answer, queued or predicting (then 504)."""
        self._running: dict[int, list[_Pending]] = {}
        """The batches predicting now, by id (their requests can still time out)."""
        self._sweep: asyncio.TimerHandle | None = None

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def submit(self, data: Any, rows: int | None = None) -> Outputs:
        """Predict ``data`` as part of a batch; returns this request's rows of every output."""
        ref = await self.enqueue(data, rows)
        return {k: v[ref.start:ref.stop] for k, v in ref.outputs.items()}

    def enqueue(self, data: Any, rows: int | None = None) -> asyncio.Future[BatchRef]:
        """Queue ``data``; the future resolves to the batch it was predicted in (a
        :class:`BatchRef`: the merged inputs, every output, and this request's rows in them).
        One object per request, not a dict of slices: the caller slices what it answers.

        Must be called on the event loop. A request not answered within ``timeout_s`` gets a
        :class:`RequestTimeoutError` (one timer per batcher, not per request: see
        :meth:`_expire`); setting an exception on the future before its batch starts removes
        the request from the batch."""
        if len(self._queue) >= self.max_queue:
            raise OverloadedError(
                f"Model {self.name!r} has {len(self._queue)} requests waiting, its limit.",
                hint="Retry shortly, or raise serving.max_queue / add replicas.",
            )
        loop = asyncio.get_running_loop()
        now = time.perf_counter()
        pending = _Pending(data, n_rows(data) if rows is None else rows, loop.create_future(),
                           now, now + self.timeout_s)
        self._queue.append(pending)
        if self._sweep is None and self.timeout_s != float("inf"):
            self._sweep = loop.call_later(self.timeout_s, self._expire)
        if self._free > 0:
            self._free -= 1
            self._spawn(loop)
        return pending.future

    def _spawn(self, loop: asyncio.AbstractEventLoop) -> None:
        task = loop.create_task(self._run())
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _run(self) -> None:
        """One replica: take a batch, predict it, repeat while work is queued."""
        loop = asyncio.get_running_loop()
        try:
            await asyncio.sleep(0)  # let requests decoded in this same loop tick join
            while self._queue:
                if self.max_batch_delay_s > 0 and self._last_batch_requests > 1:
                    await self._wait_for_company()
                batch = self._take()
                self._last_batch_requests = len(batch)
                await self._predict_batch(loop, batch)
        finally:
            self._free += 1
            if self._queue and self._free > 0:  # work arrived while we were finishing
                self._free -= 1
                self._spawn(loop)

    async def _wait_for_company(self) -> None:
        deadline = self._queue[0].enqueued + self.max_batch_delay_s
        while sum(p.rows for p in self._queue) < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, 0.0005))

    def _take(self) -> list[_Pending]:
        first = self._queue.popleft()
        batch, rows = [first], first.rows
        while self._queue and rows + self._queue[0].rows <= self.max_batch_size:
            item = self._queue.popleft()
            batch.append(item)
            rows += item.rows
        return batch

    async def _predict_batch(self, loop: asyncio.AbstractEventLoop,
                             batch: list[_Pending]) -> None:
        live = [p for p in batch if not p.future.done()]  # drop requests that timed out
        if not live:
            return
        now = time.perf_counter()
        stats = BatchStats(size=sum(p.rows for p in live), requests=len(live),
                           queue_wait_s=[now - p.enqueued for p in live])
        merged = concat_inputs([p.data for p in live])
        self._running[id(live)] = live
        try:
            outputs = await self._call(loop, merged)
        except Exception as exc:
            if len(live) == 1:
                _settle_error(live[0], exc)
            else:  # isolate the request that broke the batch: the others deserve an answer
                for p in live:
                    try:
                        alone = await self._call(loop, p.data)
                        if not p.future.done():
                            p.future.set_result(BatchRef(p.data, alone, 0, p.rows))
                    except Exception as single:
                        _settle_error(p, single)
            return
        finally:
            del self._running[id(live)]
            if self._on_batch is not None:
                self._on_batch(stats)
        start = 0
        for p in live:
            end = start + p.rows
            if not p.future.done():
                p.future.set_result(BatchRef(merged, outputs, start, end))
            start = end

    def _expire(self) -> None:
        """Answer every request older than ``timeout_s`` (queued, or in a batch still
        predicting) with a RequestTimeoutError, then sleep until the next one could expire.

        A timer per request (``call_later`` and ``cancel``) was ~1 us of every request's time
        on the event loop; this one timer wakes about once per ``timeout_s`` under load."""
        self._sweep = None
        now = time.perf_counter()
        waiting = [p for batch in self._running.values() for p in batch]
        waiting += self._queue
        earliest = float("inf")
        for p in waiting:
            if p.future.done():
                continue
            if p.deadline <= now:
                p.future.set_exception(RequestTimeoutError(
                    f"Model {self.name!r} did not answer within {self.timeout_s:g} s.",
                    hint="Retry later, or raise serving.request_timeout_s."))
            elif p.deadline < earliest:
                earliest = p.deadline
        if earliest != float("inf"):
            self._sweep = asyncio.get_running_loop().call_later(earliest - now, self._expire)

    async def _call(self, loop: asyncio.AbstractEventLoop, data: Any) -> Outputs:
        """Predict inline when this model has proven faster than a hand-off to a thread
        (measured: ~90 us on one core), else in the replica's thread."""
        if self._typical_s is not None and self._typical_s < self.inline_below_s:
            started = time.perf_counter()
            outputs = self._predict(data)
            self._observe(time.perf_counter() - started)
            return outputs
        return await loop.run_in_executor(self._executor, self._timed, data)

    def _timed(self, data: Any) -> Outputs:
        started = time.perf_counter()
        outputs = self._predict(data)
        self._observe(time.perf_counter() - started)
        return outputs

    def _observe(self, seconds: float) -> None:
        # A slow call moves the estimate up at once (a model that turned slow leaves the
        # loop at the next batch); fast calls bring it down gradually.
        typical = self._typical_s
        self._typical_s = seconds if typical is None or seconds > typical else (
            0.9 * typical + 0.1 * seconds)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until every queued and running request has been answered."""
        deadline = None if timeout is None else time.perf_counter() + timeout
        while self._queue or self._inflight:
            if deadline is not None and time.perf_counter() > deadline:
                return
            await asyncio.sleep(0.005)

    def close(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        self._executor.shutdown(wait=False, cancel_futures=True)


def _settle_error(p: _Pending, exc: BaseException) -> None:
    if not p.future.done():
        p.future.set_exception(exc)
