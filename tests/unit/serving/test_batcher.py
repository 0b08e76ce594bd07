"""Adaptive batching: every response carries exactly its own rows, whatever the mix."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.errors import OverloadedError, RequestTimeoutError
from modelyard.serving.batcher import Batcher, BatchStats


def _tagged(request: int, rows: int) -> np.ndarray:
    """Rows that say whose they are: column 0 = request id, column 1 = row index."""
    return np.column_stack([np.full(rows, request), np.arange(rows)]).astype(np.float64)


def _echo(data: np.ndarray) -> dict[str, np.ndarray]:
    time.sleep(0.0005)  # long enough for requests to pile up behind a running batch
    return {"predict": data[:, 0] * 1000 + data[:, 1], "rows": data}


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=60),
    max_batch=st.integers(1, 64),
    replicas=st.integers(1, 3),
    delay_ms=st.sampled_from([0.0, 1.0]),
)
def test_every_response_carries_exactly_its_own_rows(sizes: list[int], max_batch: int,
                                                      replicas: int, delay_ms: float) -> None:
    batches: list[BatchStats] = []

    async def scenario() -> None:
        batcher = Batcher(_echo, max_batch_size=max_batch, max_batch_delay_s=delay_ms / 1000,
                          max_queue=10_000, replicas=replicas, on_batch=batches.append)

        async def one(i: int, n: int) -> None:
            await asyncio.sleep(0.0001 * (i % 5))  # staggered arrivals
            out = await batcher.submit(_tagged(i, n))
            np.testing.assert_array_equal(out["rows"], _tagged(i, n))
            np.testing.assert_array_equal(out["predict"], i * 1000 + np.arange(n))

        await asyncio.gather(*(one(i, n) for i, n in enumerate(sizes)))
        batcher.close()

    asyncio.run(scenario())
    assert sum(b.size for b in batches) == sum(sizes)
    assert sum(b.requests for b in batches) == len(sizes)
    for b in batches:
        assert b.size <= max_batch or b.requests == 1, "an oversized request must run alone"


def test_concurrent_requests_are_merged() -> None:
    batches: list[BatchStats] = []

    async def scenario() -> None:
        batcher = Batcher(_echo, max_batch_size=64, max_batch_delay_s=0, max_queue=100,
                          on_batch=batches.append)
        await asyncio.gather(*(batcher.submit(_tagged(i, 1)) for i in range(32)))
        batcher.close()

    asyncio.run(scenario())
    assert len(batches) < 32
    assert max(b.requests for b in batches) > 1


def test_predict_runs_off_the_event_loop() -> None:
    threads: list[int] = []

    def record(data: np.ndarray) -> dict[str, np.ndarray]:
        threads.append(threading.get_ident())
        return {"predict": data[:, 0]}

    async def scenario() -> int:
        batcher = Batcher(record, max_batch_size=8, max_batch_delay_s=0, max_queue=10)
        await batcher.submit(_tagged(0, 1))
        batcher.close()
        return threading.get_ident()

    loop_thread = asyncio.run(scenario())
    assert threads
    assert threads[0] != loop_thread


def test_full_queue_is_refused_not_buffered() -> None:
    gate = threading.Event()

    def slow(data: np.ndarray) -> dict[str, np.ndarray]:
        gate.wait(5)
        return {"predict": data[:, 0]}

    async def scenario() -> None:
        batcher = Batcher(slow, max_batch_size=1, max_batch_delay_s=0, max_queue=2)
        first = asyncio.ensure_future(batcher.submit(_tagged(0, 1)))
        await asyncio.sleep(0.01)  # first is now running, the queue is empty
        queued = [asyncio.ensure_future(batcher.submit(_tagged(i, 1))) for i in (1, 2)]
        await asyncio.sleep(0)
        with pytest.raises(OverloadedError, match="requests waiting"):
            await batcher.submit(_tagged(3, 1))
        gate.set()
        await asyncio.gather(first, *queued)
        batcher.close()

    asyncio.run(scenario())


def test_a_failing_request_does_not_fail_its_batch_neighbours() -> None:
    def picky(data: np.ndarray) -> dict[str, np.ndarray]:
        time.sleep(0.001)
        if (data[:, 0] == 13).any():
            raise ValueError("unlucky row")
        return {"predict": data[:, 0]}

    async def scenario() -> list[object]:
        batcher = Batcher(picky, max_batch_size=64, max_batch_delay_s=0, max_queue=100)
        results = await asyncio.gather(*(batcher.submit(_tagged(i, 1)) for i in range(20)),
                                       return_exceptions=True)
        batcher.close()
        return results

    results = asyncio.run(scenario())
    failures = [i for i, r in enumerate(results) if isinstance(r, Exception)]
    assert failures == [13]


@pytest.mark.parametrize(
    ("inline_below_s", "delay_s", "expect_inline"),
    [(0.001, 0.0, True), (0.001, 0.003, False), (0.0, 0.0, False)],
    ids=["fast-model-inline", "slow-model-threaded", "inline-disabled"],
)
def test_execution_model_is_chosen_by_measured_predict_time(
        inline_below_s: float, delay_s: float, expect_inline: bool) -> None:
    threads: list[int] = []

    def record(data: np.ndarray) -> dict[str, np.ndarray]:
        threads.append(threading.get_ident())
        if delay_s:
            time.sleep(delay_s)
        return {"predict": data[:, 0]}

    async def scenario() -> int:
        batcher = Batcher(record, max_batch_size=8, max_batch_delay_s=0, max_queue=10,
                          inline_below_s=inline_below_s)
        for i in range(5):
            out = await batcher.submit(_tagged(i, 1))
            np.testing.assert_array_equal(out["predict"], [i])
        batcher.close()
        return threading.get_ident()

    loop_thread = asyncio.run(scenario())
    assert threads[0] != loop_thread, "the first call is measured in the replica's thread"
    assert (threads[-1] == loop_thread) is expect_inline


def test_requests_time_out_queued_or_predicting_and_the_rest_are_answered() -> None:
    # One timer per batcher: a request still predicting and one still queued behind it both
    # get a RequestTimeoutError when their time is up; a later request, with time left, is
    # answered by the next batch; and the timer stops once nothing waits.
    slow = threading.Event()

    def predict(data: np.ndarray) -> dict[str, np.ndarray]:
        if data[0, 0] < 2:  # the first batches are slow
            slow.wait(0.4)
        return {"predict": data[:, 0]}

    async def scenario() -> None:
        batcher = Batcher(predict, max_batch_size=1, max_batch_delay_s=0, max_queue=100,
                          timeout_s=0.15)
        started = time.perf_counter()
        first = asyncio.ensure_future(batcher.submit(_tagged(0, 1)))
        await asyncio.sleep(0.01)
        second = asyncio.ensure_future(batcher.submit(_tagged(1, 1)))  # queued behind it
        await asyncio.sleep(0.1)
        third = asyncio.ensure_future(batcher.submit(_tagged(2, 1)))
        for doomed in (first, second):
            with pytest.raises(RequestTimeoutError, match=r"did not answer within 0\.15 s"):
                await doomed
        assert time.perf_counter() - started < 0.35, "timed out late"
        slow.set()
        assert (await third)["predict"].tolist() == [2.0]
        await batcher.drain(1.0)
        await asyncio.sleep(0.2)
        assert batcher._sweep is None, "the timer should stop once nothing waits"
        batcher.close()

    asyncio.run(scenario())
