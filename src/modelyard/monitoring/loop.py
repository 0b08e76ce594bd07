"""Monitoring on a schedule, in a background thread (``modelyard serve`` with
``monitoring.every`` set, or any long-running process)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from modelyard.core.periodic import PeriodicTask
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


class MonitorLoop(PeriodicTask):
    """Runs :func:`monitor_model` for every model every ``every_s`` seconds (the first round
    one period after start) and keeps the latest result per model (read by the server's
    Prometheus collector)."""

    def __init__(self, models: Callable[[], Sequence[str]], *, logs: LogStore,
                 source: ReferenceSource, config: MonitorConfig, metrics: MetricStore | None,
                 every_s: float, flush: Callable[[], object] | None = None) -> None:
        super().__init__("modelyard-monitor", every_s)
        self.models = models
        self.logs = logs
        self.source = source
        self.config = config
        self.metrics = metrics
        self.flush = flush
        self.latest: dict[str, MonitorResult] = {}
        self.runs = 0

    def run_once(self) -> dict[str, MonitorResult]:
        """One round over every model; a model that fails is logged and skipped."""
        started = time.monotonic()
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
        log.info("Monitoring round %d took %.2f s.", self.runs, time.monotonic() - started)
        return self.latest
