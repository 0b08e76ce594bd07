"""Monitoring on a schedule, in a background thread (``modelyard serve`` with
``monitoring.every`` set, or any long-running process)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from modelyard.monitoring.log_store import LogStore
from modelyard.monitoring.metric_store import MetricStore
from modelyard.monitoring.monitor import (
    MonitorConfig,
    MonitorResult,
    ReferenceSource,
    monitor_model,
)

__all__ = ["MonitorLoop"]

log = logging.getLogger("modelyard.monitoring")


class MonitorLoop:
    """Runs :func:`monitor_model` for every model every ``every_s`` seconds and keeps the
    latest result per model (read by the server's Prometheus collector)."""

    def __init__(self, models: Callable[[], Sequence[str]], *, logs: LogStore,
                 source: ReferenceSource, config: MonitorConfig, metrics: MetricStore | None,
                 every_s: float, flush: Callable[[], object] | None = None) -> None:
        self.models = models
        self.logs = logs
        self.source = source
        self.config = config
        self.metrics = metrics
        self.every_s = every_s
        self.flush = flush
        self.latest: dict[str, MonitorResult] = {}
        self.runs = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="modelyard-monitor",
                                            daemon=True)
            self._thread.start()

    def close(self, timeout: float | None = None) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def run_once(self) -> dict[str, MonitorResult]:
        if self.flush is not None:
            self.flush()  # what the server answered so far is in the window
        for model in self.models():
            try:
                self.latest[model] = monitor_model(
                    model, logs=self.logs, source=self.source, config=self.config,
                    metrics=self.metrics)
            except Exception:  # one model's failure must not stop the others or the loop
                log.exception("Monitoring %s failed; trying again next round.", model)
        self.runs += 1
        return self.latest

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            started = time.monotonic()
            self.run_once()
            log.info("Monitoring round %d took %.2f s.", self.runs, time.monotonic() - started)
