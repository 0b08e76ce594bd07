"""The per-request metrics kept as plain numbers expose exactly what prometheus_client's own
Counter, Gauge and Histogram expose for the same observations."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from modelyard.serving.metrics import _BATCH_BUCKETS, _LATENCY_BUCKETS, ServingMetrics


def _samples(text: str, family: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) if f.name == family
            for s in f.samples if not s.name.endswith("_created")}


@settings(max_examples=60, deadline=None)
@given(latencies=st.lists(st.one_of(st.sampled_from(_LATENCY_BUCKETS),
                                    st.floats(0, 20, allow_nan=False)), max_size=40),
       batches=st.lists(st.integers(1, 3000), max_size=20),
       statuses=st.lists(st.sampled_from([200, 400, 500]), min_size=1, max_size=5))
def test_hot_metrics_expose_what_prometheus_client_would(latencies: list[float],
                                                         batches: list[int],
                                                         statuses: list[int]) -> None:
    mine = ServingMetrics()
    registry = CollectorRegistry()
    requests = Counter("modelyard_requests", "x", ["model", "version", "route", "status"],
                       registry=registry)
    latency = Histogram("modelyard_request_duration_seconds", "x", ["model", "route"],
                        buckets=_LATENCY_BUCKETS, registry=registry)
    size = Histogram("modelyard_batch_size_rows", "x", ["model"], buckets=_BATCH_BUCKETS,
                     registry=registry)
    for i, seconds in enumerate(latencies):
        status = statuses[i % len(statuses)]
        mine.answered("m", "1", "v2", status, seconds)
        requests.labels("m", "1", "v2", str(status)).inc()
        latency.labels("m", "v2").observe(seconds)
    for rows in batches:
        mine.batched("m", rows, [0.001] * 2)
        size.labels("m").observe(rows)
    mine.inflight.inc()
    ours = mine.render().decode()
    theirs = generate_latest(registry).decode()
    for family in ("modelyard_requests", "modelyard_request_duration_seconds",
                   "modelyard_batch_size_rows"):
        assert _samples(ours, family) == _samples(theirs, family), family
    assert _samples(ours, "modelyard_inflight_requests") == {
        ("modelyard_inflight_requests", ()): 1.0}
    waits = _samples(ours, "modelyard_queue_wait_seconds")
    assert waits.get(("modelyard_queue_wait_seconds_count", (("model", "m"),)), 0) == 2 * len(
        batches)
