"""PeriodicTask: runs on schedule (and at start when asked), survives a failing run, close
joins the thread, start twice is harmless, and a bad period is refused."""

from __future__ import annotations

import threading
import time

import pytest

from modelyard.core.periodic import PeriodicTask
from modelyard.errors import InvalidInputError

WAIT_S = 10.0  # generous: CI runs on two loaded cores


class Counter(PeriodicTask):
    """Counts its runs; the runs listed in ``fail_on`` raise."""

    def __init__(self, every_s: float, *, run_at_start: bool = False,
                 fail_on: tuple[int, ...] = (), until: int = 3) -> None:
        super().__init__("test-counter", every_s, run_at_start=run_at_start)
        self.fail_on = fail_on
        self.until = until
        self.calls = 0
        self.threads: set[str] = set()
        self.done = threading.Event()

    def run_once(self) -> int:
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        if self.calls >= self.until:
            self.done.set()
        if self.calls in self.fail_on:
            raise RuntimeError(f"run {self.calls} failed")
        return self.calls


def test_runs_on_schedule_and_survives_an_exception(caplog: pytest.LogCaptureFixture) -> None:
    task = Counter(0.01, fail_on=(1,), until=3)
    task.start()
    try:
        assert task.done.wait(WAIT_S)
    finally:
        task.close(WAIT_S)
    assert task.calls >= 3  # the run after the failure happened
    assert task.threads == {"test-counter"}
    assert "test-counter: a run failed" in caplog.text
    assert "run 1 failed" in caplog.text


def test_run_at_start_runs_before_the_first_period() -> None:
    task = Counter(3600.0, run_at_start=True, until=1)
    task.start()
    try:
        assert task.done.wait(WAIT_S)
    finally:
        task.close(WAIT_S)
    assert task.calls == 1


def test_without_run_at_start_nothing_runs_before_the_period() -> None:
    task = Counter(3600.0, until=1)
    task.start()
    time.sleep(0.1)
    task.close(WAIT_S)
    assert task.calls == 0


def test_close_joins_the_thread_and_start_twice_is_harmless() -> None:
    before = {t.name for t in threading.enumerate()}
    assert "test-counter" not in before
    task = Counter(3600.0)
    task.start()
    task.start()
    assert task.running
    assert [t.name for t in threading.enumerate()].count("test-counter") == 1
    started = time.monotonic()
    task.close(WAIT_S)
    assert time.monotonic() - started < WAIT_S  # woken, not waiting out the hour
    assert not task.running
    assert "test-counter" not in {t.name for t in threading.enumerate()}
    task.close()  # again: nothing to do
    task.start()  # and it can start again
    assert task.running
    task.close(WAIT_S)
    assert "test-counter" not in {t.name for t in threading.enumerate()}


def test_close_waits_for_the_run_in_progress() -> None:
    entered, release = threading.Event(), threading.Event()
    finished: list[bool] = []

    class Slow(PeriodicTask):
        def run_once(self) -> None:
            entered.set()
            release.wait(WAIT_S)
            finished.append(True)

    task = Slow("test-slow", 3600.0, run_at_start=True)
    task.start()
    assert entered.wait(WAIT_S)
    threading.Timer(0.1, release.set).start()
    task.close(WAIT_S)
    assert finished == [True]


class _Named(PeriodicTask):
    def run_once(self) -> None:
        return None


def test_run_once_may_be_called_directly_and_must_be_defined() -> None:
    task = Counter(60.0)
    assert task.run_once() == 1
    with pytest.raises(TypeError, match=r"abstract method.*run_once"):
        PeriodicTask("bare", 60.0)  # type: ignore[abstract]


@pytest.mark.parametrize("every_s", [0.0, -1.0, float("nan"), float("inf")],
                         ids=["zero", "negative", "nan", "inf"])
def test_a_period_must_be_positive_and_finite(every_s: float) -> None:
    with pytest.raises(InvalidInputError, match="'every_s' parameter of 'x' must be a positive"):
        _Named("x", every_s)
