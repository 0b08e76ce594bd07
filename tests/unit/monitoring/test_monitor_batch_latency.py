"""Latency, request counts and error rates come from live requests only: rows that
``modelyard batch`` logged (route ``batch``, one record per chunk) still count for the
row-based figures."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelyard.batch.job import ROUTE
from modelyard.core.inference import InferenceRecord
from modelyard.errors import NotFoundError
from modelyard.monitoring.alerts import load_alerts
from modelyard.monitoring.inference_log import records_to_tables
from modelyard.monitoring.log_store import ParquetLogStore
from modelyard.monitoring.monitor import BATCH_ROUTE, MonitorConfig, monitor_model

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC).timestamp()


class _NoReference:
    """A source with no registry behind it: the run computes what the log alone allows."""

    def _missing(self, ref: str) -> Any:
        raise NotFoundError(f"{ref} is not registered.", hint="Register it.")

    resolve = get_profile = get_reference_sample = load = _missing


def _record(i: int, *, route: str, rows: int, latency_ms: float) -> InferenceRecord:
    return InferenceRecord(
        f"{route}-{i}", "fraud", 1, NOW - 600 + i,
        {"amount": np.linspace(0.0, 1.0, rows)}, {"predict": np.zeros(rows, dtype=np.int64)},
        latency_ms, route)


def _run(tmp_path: Path, records: list[InferenceRecord]) -> Any:
    logs = ParquetLogStore(str(tmp_path / "logs"))
    for (model, version), table in records_to_tables(records).items():
        logs.write_inferences(model, version, table)
    alerts = load_alerts("objectives: {fraud: ['latency_p99_ms <= 50']}")
    return monitor_model("fraud", logs=logs, source=_NoReference(),
                         config=MonitorConfig(window="1h", alerts=alerts), now=NOW,
                         notify=False)


def test_batch_chunks_do_not_count_as_request_latency(tmp_path: Path) -> None:
    live = [_record(i, route="v2", rows=1 + i % 3, latency_ms=float(10 + i)) for i in range(20)]
    batch = [_record(100 + i, route=BATCH_ROUTE, rows=500, latency_ms=4000.0)
             for i in range(3)]
    result = _run(tmp_path, live + batch)

    expected = np.array([r.latency_ms for r in live])
    assert result.values["latency.p50_ms"] == pytest.approx(np.quantile(expected, 0.5))
    assert result.values["latency.p99_ms"] == pytest.approx(np.quantile(expected, 0.99))
    assert result.values["latency.mean_ms"] == pytest.approx(expected.mean())
    assert [s.status for s in result.objectives] == ["met"]
    # The batch rows are still in the window for the row-based figures (drift, quality).
    live_rows = sum(len(r.inputs["amount"]) for r in live)
    assert result.values["rows"] == live_rows + 3 * 500
    assert result.n_rows == live_rows + 3 * 500
    # ... but the chunks are not requests: neither counted nor in the error rates.
    assert result.values["requests"] == 20
    assert result.n_requests == 20


def test_failed_batch_chunks_are_not_request_errors(tmp_path: Path) -> None:
    live = [_record(i, route="v2", rows=1, latency_ms=5.0) for i in range(10)]
    failed = InferenceRecord("batch-x", "fraud", 1, NOW - 60, None, {}, 100.0, BATCH_ROUTE,
                             error="PredictionError")
    result = _run(tmp_path, [*live, failed])
    assert result.values["requests"] == 10
    assert result.values["error_rate"] == 0.0


def test_a_window_of_batch_rows_only_has_no_latency(tmp_path: Path) -> None:
    result = _run(tmp_path, [_record(i, route=BATCH_ROUTE, rows=200, latency_ms=900.0)
                             for i in range(2)])
    assert not any(name.startswith("latency.") for name in result.values)
    assert [s.status for s in result.objectives] == ["unknown"]
    assert result.values["rows"] == 400


def test_the_batch_engine_logs_under_the_route_monitoring_leaves_out() -> None:
    assert ROUTE == BATCH_ROUTE
