"""The inference log: records -> Arrow, the non-blocking writer, the Parquet and SQL stores."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from tests.fresh_process import run_fresh

from modelyard.core.inference import FeedbackSink, InferenceRecord, ManagedSink
from modelyard.errors import InvalidInputError, OverloadedError
from modelyard.monitoring.feedback import (
    feedback_from_columns,
    feedback_from_json,
    join_feedback,
)
from modelyard.monitoring.inference_log import InferenceLog, records_to_tables
from modelyard.monitoring.log_store import LogStore, ParquetLogStore, SqlLogStore

T0 = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC).timestamp()


def record(i: int, *, rows: int = 1, model: str = "m", version: int = 1, ts: float = T0,
           error: str | None = None) -> InferenceRecord:
    if error is not None:
        return InferenceRecord(f"r{i}", model, version, ts, None, {}, 1.5, "v2", error)
    inputs = {"a": np.arange(rows, dtype=np.float64) + i, "c": np.array(["x"] * rows, object)}
    outputs = {"predict": np.full(rows, i % 2),
               "predict_proba": np.tile([0.25, 0.75], (rows, 1))}
    return InferenceRecord(f"r{i}", model, version, ts + i, inputs, outputs, 0.5 + i, "v2")


class MemoryStore:
    """A LogStore that keeps tables in lists (for writer tests)."""

    def __init__(self, fail: bool = False) -> None:
        self.inferences: list[tuple[str, int, pa.Table]] = []
        self.feedback: list[tuple[str, pa.Table]] = []
        self.fail = fail

    def write_inferences(self, model: str, version: int, table: pa.Table) -> None:
        if self.fail:
            raise OSError("disk full")
        self.inferences.append((model, version, table))

    def write_feedback(self, model: str, table: pa.Table) -> None:
        self.feedback.append((model, table))

    def rows(self) -> int:
        return sum(t.num_rows for _, _, t in self.inferences)


def test_records_become_one_table_per_model_version() -> None:
    records = [record(0), record(1, rows=3), record(2, model="n"), record(3, error="Boom")]
    tables = records_to_tables(records)
    assert set(tables) == {("m", 1), ("n", 1)}
    t = tables[("m", 1)]
    assert t.num_rows == 1 + 3 + 1
    assert t.column("request_id").to_pylist() == ["r0", "r1", "r1", "r1", "r3"]
    assert t.column("row").to_pylist() == [0, 0, 1, 2, 0]
    assert t.column("in.a").to_pylist() == [0.0, 1.0, 2.0, 3.0, None]
    assert t.column("out.predict_proba").to_pylist()[1] == [0.25, 0.75]
    assert t.column("error").to_pylist() == [None] * 4 + ["Boom"]
    assert t.column("latency_ms").to_pylist()[:2] == [0.5, 1.5]


def test_tensor_inputs_are_split_into_feature_columns() -> None:
    rec = InferenceRecord("t", "m", 2, T0, np.arange(6.0).reshape(2, 3),
                          {"predict": np.array([1, 0])}, 1.0, "v2")
    t = records_to_tables([rec])[("m", 2)]
    assert [c for c in t.column_names if c.startswith("in.")] == ["in.0", "in.1", "in.2"]
    assert t.column("in.2").to_pylist() == [2.0, 5.0]


def test_writer_flushes_on_close_and_counts() -> None:
    store = MemoryStore()
    sink = InferenceLog(store, flush_interval_s=60)
    assert isinstance(sink, ManagedSink)
    assert isinstance(sink, FeedbackSink)
    sink.start()
    for i in range(50):
        sink.emit(record(i))
    sink.close(timeout=5)
    assert store.rows() == 50
    assert sink.stats.written == 50
    assert sink.stats.dropped == 0


def test_an_idle_writer_neither_writes_nor_imports_pyarrow(tmp_path: Path) -> None:
    # A server that has not answered yet must not pay for pyarrow (about 35 MiB here).
    script = f"""
import sys
from modelyard.monitoring.inference_log import InferenceLog
from modelyard.monitoring.log_store import ParquetLogStore
log = InferenceLog(ParquetLogStore({str(tmp_path)!r}), flush_interval_s=0.01)
log.start()
import time; time.sleep(0.1)
assert log.flush() == 0
log.close(timeout=5)
assert "pyarrow" not in sys.modules, "an empty flush imported pyarrow"
print("ok")
"""
    run_fresh(script)
    assert not any(tmp_path.iterdir()), "an empty flush wrote a file"


def test_full_queue_drops_and_counts_without_blocking(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    sink = InferenceLog(store, queue_size=10, flush_interval_s=60)  # not started: nothing drains
    for i in range(25):
        sink.emit(record(i))
    assert sink.stats.dropped == 15
    assert sink.queued() == 10
    sink.flush()
    assert store.rows() == 10
    assert "dropped 15 records" in caplog.text


def test_sampling_per_model() -> None:
    store = MemoryStore()
    sink = InferenceLog(store, sample_rates={"m": 0.0}, default_sample_rate=1.0, seed=1)
    for i in range(20):
        sink.emit(record(i, model="m"))
        sink.emit(record(i, model="n"))
    sink.flush()
    assert {m for m, _, _ in store.inferences} == {"n"}
    assert sink.stats.sampled_out == 20

    half = InferenceLog(MemoryStore(), default_sample_rate=0.5, seed=7)
    for i in range(2000):
        half.emit(record(i))
    assert 850 < half.queued() < 1150


def test_sampling_keeps_both_records_of_a_request_together() -> None:
    # A shadowed request is logged twice under one id (champion and challenger versions).
    sink = InferenceLog(MemoryStore(), default_sample_rate=0.3, seed=3)
    for i in range(1000):
        sink.emit(record(i))
        sink.emit(record(i))
    kept = [r.request_id for r in sink._buffer]
    assert 200 < len(set(kept)) < 400
    assert all(kept.count(rid) == 2 for rid in set(kept))


def test_failed_store_writes_are_counted_and_the_writer_survives() -> None:
    sink = InferenceLog(MemoryStore(fail=True), flush_interval_s=0.01)
    sink.start()
    sink.emit(record(0))
    sink.close(timeout=5)
    assert sink.stats.failed == 1
    assert sink.stats.written == 0


def test_concurrent_emitters_lose_nothing() -> None:
    store = MemoryStore()
    sink = InferenceLog(store, flush_interval_s=0.001, flush_records=7)
    sink.start()

    def emit_many(base: int) -> None:
        for i in range(500):
            sink.emit(record(base + i))

    threads = [threading.Thread(target=emit_many, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sink.close(timeout=5)
    assert store.rows() == 2000


def test_feedback_queue_refuses_when_full() -> None:
    sink = InferenceLog(MemoryStore(), queue_size=1)
    table = feedback_from_json({"id": "a", "label": 1})
    sink.add_feedback("m", table)
    with pytest.raises(OverloadedError, match="feedback queue is full"):
        sink.add_feedback("m", table)


# -- stores --------------------------------------------------------------------------------------
@pytest.fixture(params=["parquet", "memory-fs", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "parquet":
        return ParquetLogStore(str(tmp_path / "logs"))
    if request.param == "memory-fs":
        import uuid

        return ParquetLogStore(f"memory://logs-{uuid.uuid4().hex}")
    from modelyard.registry.sql.engine import make_engine, upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'log.db'}")
    upgrade(engine)
    return SqlLogStore(engine)


def _write(store: LogStore, records: list[InferenceRecord]) -> None:
    for (model, version), table in records_to_tables(records).items():
        store.write_inferences(model, version, table)


def test_store_round_trip_with_time_and_version_filters(store: LogStore) -> None:
    day = 86400.0
    _write(store, [record(0), record(1, rows=2), record(2, ts=T0 + day),
                   record(3, version=2, ts=T0 + 2 * day), record(4, error="Boom")])
    everything = store.read_inferences("m")
    assert everything.num_rows == 6
    assert sorted(everything.column("request_id").to_pylist()) == [
        "r0", "r1", "r1", "r2", "r3", "r4"]
    second_day = store.read_inferences("m", since=T0 + day, until=T0 + 1.5 * day)
    assert second_day.column("request_id").to_pylist() == ["r2"]
    assert store.read_inferences("m", version=2).column("request_id").to_pylist() == ["r3"]
    assert store.read_inferences("nobody").num_rows == 0
    assert store.models() == ["m"]
    row = next(r for r in everything.to_pylist() if r["request_id"] == "r0")
    assert row["in.c"] == "x"
    assert row["out.predict_proba"] == [0.25, 0.75]


def test_store_feedback_join(store: LogStore) -> None:
    _write(store, [record(0), record(1, rows=2), record(2)])
    store.write_feedback("m", feedback_from_json(
        [{"id": "r0", "label": 1}, {"id": "r1", "row": 1, "label": 0},
         {"id": "unknown", "label": 1}], now=T0 + 10))
    store.write_feedback("m", feedback_from_json({"id": "r0", "label": 0}, now=T0 + 20))
    joined = join_feedback(store.read_inferences("m"), store.read_feedback("m"))
    got = sorted((r["request_id"], r["row"], r["label"]) for r in joined.to_pylist())
    assert got == [("r0", 0, 0), ("r1", 1, 0)]  # the later label for r0 wins


def test_parquet_files_are_partitioned_by_model_version_and_day(tmp_path: Path) -> None:
    store = ParquetLogStore(str(tmp_path / "logs"))
    _write(store, [record(0), record(1, ts=T0 + 86400)])
    files = sorted(p.relative_to(tmp_path / "logs").parent.as_posix()
                   for p in (tmp_path / "logs").rglob("*.parquet"))
    assert files == ["inferences/model=m/version=1/date=2026-11-22",
                     "inferences/model=m/version=1/date=2026-11-23"]
    assert not list((tmp_path / "logs").rglob(".*.tmp"))


@pytest.mark.postgres
def test_sql_store_on_postgres(postgres_url: str) -> None:
    from modelyard.registry.sql.engine import make_engine, upgrade

    engine = make_engine(postgres_url)
    upgrade(engine)
    store = SqlLogStore(engine)
    _write(store, [record(0), record(1, rows=2)])
    store.write_feedback("m", feedback_from_json({"id": "r1", "row": 1, "label": 1}))
    assert store.read_inferences("m").num_rows == 3
    joined = join_feedback(store.read_inferences("m"), store.read_feedback("m"))
    assert joined.column("label").to_pylist() == [1]
    engine.dispose()


# -- feedback parsing ------------------------------------------------------------------------------
@pytest.mark.parametrize(("body", "message"), [
    ([], "non-empty list"),
    ("text", "non-empty list"),
    ({"label": 1}, "has no id"),
    ({"id": "a"}, "has no label"),
    ([{"id": "a", "label": 1}, 5], "item 1 is not an object"),
    ({"id": "", "label": 1}, "empty id"),
    ({"id": "a", "label": None}, "has no label"),
    ({"id": "a", "label": [1, 2]}, "labels are classes or numbers"),
    ({"id": "a", "label": 1, "row": -1}, "has row -1"),
    ({"id": "a", "label": 1, "row": 1.5}, "has row 1.5"),
], ids=["empty", "string", "no-id", "no-label", "not-object", "empty-id", "null-label",
        "list-label", "negative-row", "fractional-row"])
def test_bad_feedback_is_refused(body: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        feedback_from_json(body)


def test_feedback_columns_keep_label_types() -> None:
    t = feedback_from_columns(["a", "b"], ["yes", "no"])
    assert t.column("label").type == pa.string()
    t = feedback_from_columns([1, 2], [0.5, 1.5], timestamps=[1.0, 2.0])
    assert t.column("request_id").to_pylist() == ["1", "2"]
    assert t.column("timestamp").to_pylist() == [1.0, 2.0]
    with pytest.raises(InvalidInputError, match="2 ids but 1 labels"):
        feedback_from_columns(["a", "b"], [1])
