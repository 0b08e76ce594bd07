"""Work repeated on a schedule in a background thread (monitoring rounds, log retention).

A :class:`PeriodicTask` calls :meth:`~PeriodicTask.run_once` every ``every_s`` seconds in a
daemon thread, and at start too when ``run_at_start``. An exception from a run is logged and
the schedule goes on: a background service must not die of one failed round. It satisfies the
server's ``Background`` protocol (``start()`` after startup, ``close(timeout)`` on shutdown).
"""

from __future__ import annotations

import abc
import logging
import math
import threading

from modelyard.errors import InvalidInputError

__all__ = ["PeriodicTask"]

log = logging.getLogger("modelyard.periodic")


class PeriodicTask(abc.ABC):
    """Calls :meth:`run_once` every ``every_s`` seconds in a daemon thread named ``name``.

    Subclasses override :meth:`run_once`; it may also be called directly (a CLI command doing
    one round). ``start`` is harmless when already started; ``close`` stops the schedule and
    waits up to ``timeout`` seconds for a run in progress to end.

    Example:
        >>> class Tick(PeriodicTask):
        ...     def __init__(self) -> None:
        ...         super().__init__("tick", 3600.0, run_at_start=True)
        ...         self.ticks = 0
        ...     def run_once(self) -> None:
        ...         self.ticks += 1
        >>> task = Tick()
        >>> task.start()
        >>> task.close(timeout=5.0)
        >>> task.ticks
        1
    """

    def __init__(self, name: str, every_s: float, *, run_at_start: bool = False) -> None:
        if not (math.isfinite(every_s) and every_s > 0):
            raise InvalidInputError(
                f"The 'every_s' parameter of {name!r} must be a positive number of seconds. "
                f"Got {every_s!r} instead.", hint="Use for example 60 for once a minute.")
        self.name = name
        self.every_s = every_s
        self.run_at_start = run_at_start
        self._lock = threading.Lock()
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`close`."""
        return self._thread is not None

    @abc.abstractmethod
    def run_once(self) -> object:
        """One run of the work; every subclass defines it."""

    def start(self) -> None:
        """Start the schedule in a daemon thread (does nothing if it is already running)."""
        with self._lock:
            if self._thread is not None:
                return
            # A fresh event per start: a thread that outlived an earlier close(timeout) keeps
            # its own, already set, and cannot be woken back into the schedule.
            stop = threading.Event()
            thread = threading.Thread(target=self._loop, args=(stop,), name=self.name,
                                      daemon=True)
            self._stop, self._thread = stop, thread
        thread.start()

    def close(self, timeout: float | None = None) -> None:
        """Stop the schedule and wait up to ``timeout`` seconds (None: for ever) for the
        thread, which finishes the run in progress first. Calling it again is harmless."""
        with self._lock:
            stop, thread = self._stop, self._thread
            self._stop, self._thread = None, None
        if stop is not None:
            stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _loop(self, stop: threading.Event) -> None:
        if self.run_at_start and not stop.is_set():
            self._run_logged()
        while not stop.wait(self.every_s):
            self._run_logged()

    def _run_logged(self) -> None:
        try:
            self.run_once()
        except Exception:  # one failed round must not end the schedule
            log.exception("%s: a run failed; trying again in %.0f s.", self.name, self.every_s)
