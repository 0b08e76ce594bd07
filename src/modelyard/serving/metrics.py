"""Prometheus metrics of one server, on a registry of its own (never the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "ServingMetrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServingMetrics:
    """Request counts, latencies, queue waits, batch sizes, in-flight requests, load times."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "modelyard_requests", "Inference requests answered.",
            ["model", "version", "route", "status"], registry=self.registry)
        self.latency = Histogram(
            "modelyard_request_duration_seconds", "Time from request to response.",
            ["model", "route"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.queue_wait = Histogram(
            "modelyard_queue_wait_seconds", "Time a request waited for its batch to start.",
            ["model"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram(
            "modelyard_batch_size_rows", "Rows per predict call.", ["model"],
            buckets=_BATCH_BUCKETS, registry=self.registry)
        self.inflight = Gauge(
            "modelyard_inflight_requests", "Requests being answered right now.",
            registry=self.registry)
        self.load_seconds = Gauge(
            "modelyard_model_load_seconds", "Seconds the loaded version took to load.",
            ["model", "version"], registry=self.registry)
        self.loaded = Gauge(
            "modelyard_model_loaded", "1 for every model version currently loaded.",
            ["model", "version"], registry=self.registry)
        self.swaps = Counter(
            "modelyard_model_swaps", "Times an alias moved and the server switched versions.",
            ["model"], registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
