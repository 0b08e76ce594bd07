"""Retention: both log stores prune what is older than the cutoff, the loop runs it on a
schedule, and ``modelyard logs prune`` records the run in the audit log."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from modelyard.cli.main import main
from modelyard.errors import InvalidInputError
from modelyard.monitoring.log_store import LogStore, ParquetLogStore, SqlLogStore
from modelyard.monitoring.retention import DAY_S, PruneResult, RetentionLoop, prune_logs
from modelyard.registry.sql import SqlRegistryStore
from modelyard.registry.sql.audit import SqlAuditLog

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC).timestamp()
AGES = [40, 31, 30, 29, 1]  # days before NOW of the logged rows


def _day(age: int) -> str:
    return dt.datetime.fromtimestamp(NOW - age * DAY_S, dt.UTC).strftime("%Y-%m-%d")


def _inferences(ts: float, n: int = 2) -> pa.Table:
    return pa.table({"request_id": [f"r{ts}-{i}" for i in range(n)],
                     "row": pa.array([0] * n, pa.int32()), "timestamp": [ts] * n,
                     "version": [1] * n, "latency_ms": [1.0] * n, "route": ["v2"] * n,
                     "error": pa.array([None] * n, pa.string()), "in.x": [1.0] * n,
                     "out.predict": [0] * n})


def _feedback(ts: float) -> pa.Table:
    return pa.table({"request_id": [f"r{ts}-0"], "row": pa.array([0], pa.int32()),
                     "label": [1.0], "timestamp": [ts]})


def _fill(store: LogStore) -> None:
    for age in AGES:
        ts = NOW - age * DAY_S
        store.write_inferences("fraud", 1, _inferences(ts))
        store.write_inferences("fraud", 2, _inferences(ts + 1))
        store.write_feedback("fraud", _feedback(ts))
    store.write_inferences("churn", 1, _inferences(NOW - 40 * DAY_S))  # only old data


@pytest.fixture(params=["parquet", "sql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "parquet":
        yield ParquetLogStore(str(tmp_path / "logs"))
        return
    registry = SqlRegistryStore(f"sqlite:///{tmp_path / 'registry.db'}")
    yield SqlLogStore(registry.engine)
    registry.close()


def _ages_left(store: LogStore, model: str = "fraud") -> list[int]:
    ts = store.read_inferences(model).column("timestamp").to_pylist()
    return sorted({round((NOW - t) / DAY_S) for t in ts}, reverse=True)


def test_prune_deletes_only_data_older_than_the_cutoff(store: Any) -> None:
    _fill(store)
    result = prune_logs(store, older_than_s=30 * DAY_S, now=NOW)
    # Parquet keeps the cutoff's day whole (30 days ago, partly inside); SQL deletes rows
    # older than the cutoff instant (the rows 30 days ago are exactly at it: kept).
    assert _ages_left(store) == [30, 29, 1]
    assert _ages_left(store, "churn") == []
    feedback = store.read_feedback("fraud").column("timestamp").to_pylist()
    assert sorted(round((NOW - t) / DAY_S) for t in feedback) == [1, 29, 30]
    totals = result.totals()
    if isinstance(store, ParquetLogStore):
        assert sorted((i["model"], i["version"], i["date"]) for i in result.inferences) == [
            ("churn", 1, _day(40)), ("fraud", 1, _day(40)), ("fraud", 1, _day(31)),
            ("fraud", 2, _day(40)), ("fraud", 2, _day(31))]
        assert [i["date"] for i in result.feedback] == [_day(40), _day(31)]
        assert totals == {"inferences_partitions": 5, "inferences_files": 5,
                          "inferences_rows": 0, "feedback_partitions": 2,
                          "feedback_files": 2, "feedback_rows": 0}
        root = Path(store.root)
        assert not (root / "inferences" / "model=churn").exists()  # empty folders go too
        assert store.models() == ["fraud"]
    else:
        assert result.inferences == [{"model": "churn", "version": 1, "rows": 2},
                                     {"model": "fraud", "version": 1, "rows": 4},
                                     {"model": "fraud", "version": 2, "rows": 4}]
        assert result.feedback == [{"model": "fraud", "rows": 2}]
        assert totals["inferences_rows"] == 10
        assert totals["feedback_rows"] == 2
    again = prune_logs(store, older_than_s=30 * DAY_S, now=NOW)
    assert again.empty


def test_dry_run_deletes_nothing_and_records_nothing(store: Any) -> None:
    _fill(store)
    recorded: list[PruneResult] = []
    result = prune_logs(store, older_than_s=30 * DAY_S, now=NOW, dry_run=True,
                        record=recorded.append)
    assert result.dry_run
    assert len(result.inferences) == (5 if isinstance(store, ParquetLogStore) else 3)
    assert _ages_left(store) == [40, 31, 30, 29, 1]
    assert recorded == []
    prune_logs(store, older_than_s=30 * DAY_S, now=NOW, record=recorded.append)
    assert [r.dry_run for r in recorded] == [False]


def test_result_to_dict_names_the_cutoff() -> None:
    result = PruneResult(before=NOW, dry_run=False, feedback=[{"model": "m", "rows": 3}])
    doc = result.to_dict()
    assert doc["cutoff"] == "2026-11-22T12:00:00+00:00"
    assert doc["totals"]["feedback_rows"] == 3
    assert json.loads(json.dumps(doc)) == doc


@pytest.mark.parametrize("seconds", [0.0, -5.0], ids=["zero", "negative"])
def test_a_period_must_be_positive(tmp_path: Path, seconds: float) -> None:
    with pytest.raises(InvalidInputError, match="retention period must be positive"):
        prune_logs(ParquetLogStore(str(tmp_path)), older_than_s=seconds)


class _Failing:
    def prune(self, before: float, *, dry_run: bool = False) -> dict[str, Any]:
        raise OSError("bucket gone")


def test_the_loop_prunes_at_start_records_only_deletions_and_survives_failures(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = ParquetLogStore(str(tmp_path / "logs"))
    _fill(store)
    recorded: list[PruneResult] = []
    done = threading.Event()

    def record(result: PruneResult) -> None:
        recorded.append(result)
        done.set()

    loop = RetentionLoop(store, older_than_s=30 * DAY_S, every_s=3600, record=record,
                         clock=lambda: NOW)
    loop.start()
    assert done.wait(10)
    loop.close(5)
    assert loop.runs == 1
    assert _ages_left(store) == [30, 29, 1]
    assert loop.run_once() is not None  # nothing left: not recorded
    assert len(recorded) == 1
    failing = RetentionLoop(_Failing(), older_than_s=DAY_S)  # type: ignore[arg-type]
    assert failing.run_once() is None
    assert failing.runs == 1
    assert "Pruning the inference log failed" in caplog.text


# -- the CLI ---------------------------------------------------------------------------------------
def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_prune_records_an_audit_entry(
        home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_USER", "ops")
    store = ParquetLogStore(str(home / "logs"))
    now = dt.datetime.now(dt.UTC).timestamp()
    store.write_inferences("fraud", 1, _inferences(now - 40 * DAY_S))
    store.write_inferences("fraud", 1, _inferences(now))

    code, out, err = _cli(capsys, "logs", "prune", "--older-than", "30d", "--dry-run")
    assert code == 0, err
    assert "Would delete" in out
    code, out, err = _cli(capsys, "logs", "prune", "--older-than", "30d", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["totals"]["inferences_partitions"] == 1
    assert store.read_inferences("fraud").num_rows == 2  # today's rows stay

    registry = SqlRegistryStore(f"sqlite:///{home / 'modelyard.db'}")
    entries = SqlAuditLog(registry.engine).entries(action="logs.prune")
    registry.close()
    assert len(entries) == 1  # the dry run is not recorded
    assert entries[0].actor == "ops"
    assert entries[0].target == f"logs:{home / 'logs'}"
    assert entries[0].after["totals"]["inferences_partitions"] == 1
    assert entries[0].after["inferences"][0]["model"] == "fraud"

    monkeypatch.setenv("MODELYARD_SECURITY__LOG_RETENTION_DAYS", "7")
    code, out, _ = _cli(capsys, "logs", "prune")
    assert code == 0
    assert "Nothing older than" in out


@pytest.mark.parametrize(("args", "match"), [
    ((), "No retention period: pass --older-than or set security.log_retention_days"),
    (("--older-than", "0s"), "--older-than must be positive"),
    (("--older-than", "soon"), "Duration 'soon' is not understood"),
], ids=["no-period", "zero", "nonsense"])
def test_cli_prune_usage_errors(capsys: pytest.CaptureFixture[str], args: tuple[str, ...],
                                match: str) -> None:
    code, _, err = _cli(capsys, "logs", "prune", *args)
    assert code == 2
    assert match in " ".join(err.split())
