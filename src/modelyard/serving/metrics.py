"""Prometheus metrics of one server, on a registry of its own (never the global one)."""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST", "ServingMetrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServingMetrics:
    """Request counts, latencies, queue waits, batch sizes, in-flight requests, load times."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # The metrics every request touches are plain numbers, bumped on the event loop and
        # read when scraped (_HotCollector): a prometheus_client child takes a lock per
        # update, and a request made seven of them (~3% of a busy core, profiled).
        self.requests = _Counts()
        self.latency = _Histograms(_LATENCY_BUCKETS)
        self.queue_wait = _Histograms(_LATENCY_BUCKETS)
        self.batch_size = _Histograms(_BATCH_BUCKETS)
        self.inflight = _Gauge()
        self.registry.register(_HotCollector(self))
        self.load_seconds = Gauge(
            "modelyard_model_load_seconds", "Seconds the loaded version took to load.",
            ["model", "version"], registry=self.registry)
        self.loaded = Gauge(
            "modelyard_model_loaded", "1 for every model version currently loaded.",
            ["model", "version"], registry=self.registry)
        self.swaps = Counter(
            "modelyard_model_swaps", "Times an alias moved and the server switched versions.",
            ["model"], registry=self.registry)
        self.rollout_weight = Gauge(
            "modelyard_rollout_weight",
            "Share of the traffic the active rollout's challenger gets (0: none, or shadow).",
            ["model"], registry=self.registry)
        self.rollout_requests = Counter(
            "modelyard_rollout_requests",
            "Requests answered during a rollout, by version and role (champion, challenger, "
            "or shadow: the challenger's copy of a request the champion answered).",
            ["model", "version", "role"], registry=self.registry)
        self.rollout_decisions = Counter(
            "modelyard_rollout_decisions",
            "Rollout decisions this server applied (advance, promote, rollback).",
            ["model", "action"], registry=self.registry)
        self.shadow_skipped = Counter(
            "modelyard_rollout_shadow_skipped",
            "Shadow copies not sent because serving.shadow_max_inflight were pending.",
            ["model"], registry=self.registry)
        self._rollout_children: dict[tuple[str, int, str], Any] = {}

    def answered(self, model: str, version: str, route: str, status: int,
                 seconds: float) -> None:
        """Count one answered inference request and observe its latency."""
        self.requests.inc((model, version, route, str(status)))
        self.latency.observe((model, route), seconds)

    def batched(self, model: str, rows: int, queue_waits: list[float]) -> None:
        """Observe one predict call: its rows and how long each of its requests waited."""
        self.batch_size.observe((model,), rows)
        hist = self.queue_wait.child((model,))
        for wait in queue_waits:
            hist.observe(wait)

    def rollout_request(self, model: str, version: int, role: str) -> None:
        """Count one rollout request (the labelled child is looked up once, then cached)."""
        key = (model, version, role)
        child = self._rollout_children.get(key)
        if child is None:
            child = self._rollout_children[key] = self.rollout_requests.labels(
                model, str(version), role)
        child.inc()

    def watch_log(self, stats: Callable[[], Mapping[str, int]],
                  queued: Callable[[], int]) -> None:
        """Export the inference log's counters (written, dropped, ...) at scrape time."""
        self.registry.register(_LogCollector(stats, queued))

    def watch_monitor(self, latest: Callable[[], Mapping[str, Any]]) -> None:
        """Export objectives and firing alerts of the latest monitoring results."""
        self.registry.register(_MonitorCollector(latest))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Gauge:
    """A gauge only the event loop changes."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self) -> None:
        self.value += 1

    def dec(self) -> None:
        self.value -= 1


class _Counts:
    """Counters by label values, only changed on the event loop."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, labels: tuple[str, ...], amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount


class _Histogram:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # Prometheus buckets are "less than or equal": the first bound >= value.
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


class _Histograms:
    """Histograms by label values, only changed on the event loop."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = tuple(float(b) for b in bounds)
        self.children: dict[tuple[str, ...], _Histogram] = {}

    def child(self, labels: tuple[str, ...]) -> _Histogram:
        hist = self.children.get(labels)
        if hist is None:
            hist = self.children[labels] = _Histogram(self.bounds)
        return hist

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        self.child(labels).observe(value)

    def family(self, name: str, documentation: str,
               label_names: list[str]) -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, documentation, labels=label_names)
        for labels, hist in list(self.children.items()):
            running, buckets = 0, []
            for bound, count in zip((*hist.bounds, math.inf), hist.counts, strict=True):
                running += count
                buckets.append(("+Inf" if bound == math.inf else repr(bound), running))
            family.add_metric(list(labels), buckets, hist.sum)
        return family


class _HotCollector(Collector):
    """The per-request metrics of :class:`ServingMetrics`, read when scraped."""

    def __init__(self, metrics: ServingMetrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._m
        requests = CounterMetricFamily("modelyard_requests", "Inference requests answered.",
                                       labels=["model", "version", "route", "status"])
        for labels, value in list(m.requests.values.items()):
            requests.add_metric(list(labels), value)
        yield requests
        yield m.latency.family("modelyard_request_duration_seconds",
                               "Time from request to response.", ["model", "route"])
        yield m.queue_wait.family("modelyard_queue_wait_seconds",
                                  "Time a request waited for its batch to start.", ["model"])
        yield m.batch_size.family("modelyard_batch_size_rows", "Rows per predict call.",
                                  ["model"])
        yield GaugeMetricFamily("modelyard_inflight_requests",
                                "Requests being answered right now.", value=m.inflight.value)


class _LogCollector(Collector):
    """Reads the inference log's plain counters when scraped: the request path only bumps
    integers, never a Prometheus metric, for records it logs or drops."""

    _HELP: ClassVar[dict[str, str]] = {
        "written": "Inference records written to the inference log.",
        "dropped": "Inference records dropped because the log queue was full.",
        "sampled_out": "Inference records not logged because of the sample rate.",
        "failed": "Inference records lost to a failed write.",
        "feedback_written": "Ground-truth labels written to the inference log.",
    }

    def __init__(self, stats: Callable[[], Mapping[str, int]], queued: Callable[[], int]):
        self._stats = stats
        self._queued = queued

    def collect(self) -> Iterator[Metric]:
        values = self._stats()
        for name, text in self._HELP.items():
            yield CounterMetricFamily(f"modelyard_inference_log_{name}", text,
                                      value=values.get(name, 0))
        yield GaugeMetricFamily("modelyard_inference_log_queued",
                                "Inference records waiting to be written.", value=self._queued())


_STATUSES = ("met", "at_risk", "breached", "unknown")


class _MonitorCollector(Collector):
    """Objectives (value, target and one-hot status) and firing alerts per model, from the
    latest run of the in-process monitoring loop."""

    def __init__(self, latest: Callable[[], Mapping[str, Any]]) -> None:
        self._latest = latest

    def collect(self) -> Iterator[Metric]:
        value = GaugeMetricFamily("modelyard_objective_value",
                                  "Current value of an objective's metric.",
                                  labels=["model", "objective"])
        target = GaugeMetricFamily("modelyard_objective_target", "An objective's target.",
                                   labels=["model", "objective"])
        status = GaugeMetricFamily("modelyard_objective_status",
                                   "1 for the objective's current status (met, at_risk, "
                                   "breached, unknown).",
                                   labels=["model", "objective", "status"])
        firing = GaugeMetricFamily("modelyard_alert_firing", "1 for every alert firing now.",
                                   labels=["model", "rule", "severity"])
        for model, result in sorted(self._latest().items()):
            for s in result.objectives:
                expression = s.objective.expression
                if s.value is not None:
                    value.add_metric([model, expression], s.value)
                target.add_metric([model, expression], s.objective.target)
                for name in _STATUSES:
                    status.add_metric([model, expression, name], float(s.status == name))
            for alert in result.firing:
                firing.add_metric([model, alert["rule"], str(alert.get("severity", ""))], 1.0)
        yield from (value, target, status, firing)
