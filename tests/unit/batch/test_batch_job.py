"""run_batch end to end on files: formats, on_error, resuming, atomic output, the log."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from batch_helpers import FEATURES, make_model, read, write
from sklearn.linear_model import LogisticRegression

from modelyard.batch import BatchOptions, LocalEngine, run_batch
from modelyard.batch.engines import ChunkSink
from modelyard.batch.readers import InputFile
from modelyard.batch.scoring import ScoringPlan
from modelyard.core.inference import InferenceRecord
from modelyard.errors import ConflictError, InvalidInputError, SignatureError
from modelyard.monitoring.inference_log import InferenceLog
from modelyard.monitoring.log_store import ParquetLogStore
from modelyard.runtimes.model import Model

SUFFIXES = [".csv", ".parquet", ".jsonl"]
IDS = ["csv", "parquet", "jsonl"]


def _expected(frame: pd.DataFrame, estimator: LogisticRegression) -> pd.DataFrame:
    proba = estimator.predict_proba(frame[FEATURES])
    return pd.DataFrame({"row": np.arange(len(frame)), "id": frame["id"],
                         "prediction": estimator.predict(frame[FEATURES]),
                         "probability_0": proba[:, 0], "probability_1": proba[:, 1],
                         "model_version": 1})


@pytest.mark.parametrize("out_suffix", SUFFIXES, ids=[f"to-{i}" for i in IDS])
@pytest.mark.parametrize("in_suffix", SUFFIXES, ids=[f"from-{i}" for i in IDS])
def test_every_format_in_and_out(frame: pd.DataFrame, model: Model,
                                 estimator: LogisticRegression, tmp_path: Path,
                                 in_suffix: str, out_suffix: str) -> None:
    source = write(frame, tmp_path / f"in{in_suffix}")
    result = run_batch(model, source, tmp_path / f"out{out_suffix}",
                       options=BatchOptions(chunk_rows=128, id_column="id"))
    assert (result.rows, result.scored, result.chunks) == (600, 600, 5)
    got = read(tmp_path / f"out{out_suffix}")
    want = _expected(frame, estimator)
    assert list(got.columns) == list(want.columns)
    # Probabilities to 1e-12: BLAS blocks a 128-row call differently from a 600-row one.
    pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-12, atol=1e-15)
    assert not (tmp_path / f"out{out_suffix}.parts").exists()


def _dirty(frame: pd.DataFrame, path: Path) -> Path:
    lines = frame[["id", *FEATURES]].to_csv(index=False).splitlines()
    cells = lines[5].split(",")  # data row 4
    cells[2] = "abc"
    lines[5] = ",".join(cells)
    cells = lines[301].split(",")  # data row 300
    cells[4] = ""
    lines[301] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_on_error_fail_stops_at_the_first_bad_row(frame: pd.DataFrame, model: Model,
                                                  tmp_path: Path) -> None:
    with pytest.raises(SignatureError,
                       match=r"Row 4 of '.*in.csv' cannot be scored: column 'f1': 'abc' is "
                             r"not a float64 number\. .*--on-error quarantine"):
        run_batch(model, _dirty(frame, tmp_path / "in.csv"), tmp_path / "out.csv",
                  options=BatchOptions(chunk_rows=100))
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("on_error", ["skip", "quarantine"], ids=["skip", "quarantine"])
def test_bad_rows_are_counted_never_dropped_silently(frame: pd.DataFrame, model: Model,
                                                     tmp_path: Path, on_error: Any) -> None:
    result = run_batch(model, _dirty(frame, tmp_path / "in.csv"), tmp_path / "out.parquet",
                       options=BatchOptions(chunk_rows=100, id_column="id",
                                            on_error=on_error))
    refused = 2
    assert result.rows == result.scored + result.skipped + result.quarantined == 600
    assert result.scored == 600 - refused
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert {4, 300}.isdisjoint(out["row"])
    quarantine = tmp_path / "out.quarantine.jsonl"
    if on_error == "skip":
        assert (result.skipped, result.quarantined, result.quarantine) == (refused, 0, None)
        assert not quarantine.exists()
        return
    assert (result.skipped, result.quarantined, result.quarantine) == (0, refused, quarantine)
    rows = [orjson.loads(line) for line in quarantine.read_bytes().splitlines()]
    assert [(r["row"], r["reason"]) for r in rows] == [
        (4, "column 'f1': 'abc' is not a float64 number"),
        (300, "column 'f3': missing value, which the model's signature does not allow")]
    assert (rows[0]["input"]["id"], rows[0]["input"]["f1"]) == (1004, "abc")
    assert rows[0]["input"]["f0"] == pytest.approx(frame["f0"].iloc[4], rel=0, abs=0)
    assert rows[1]["input"]["f3"] is None


class _Interrupt(Exception):
    pass


class _StopAfter:
    """The local engine, killed after ``chunks`` chunks were committed."""

    name = "local"

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks

    def run(self, source: InputFile, model: Model, plan: ScoringPlan, chunk_rows: int,
            sink: ChunkSink) -> None:
        budget = self.chunks

        class Counting:
            @property
            def rows_done(self) -> int:
                return sink.rows_done

            def add(self, table: pa.Table) -> None:
                nonlocal budget
                if budget == 0:
                    raise _Interrupt
                sink.add(table)
                budget -= 1

        LocalEngine().run(source, model, plan, chunk_rows, Counting())


@pytest.mark.parametrize("suffix", SUFFIXES, ids=IDS)
def test_an_interrupted_run_resumes_and_writes_what_a_whole_run_writes(
        frame: pd.DataFrame, model: Model, tmp_path: Path, suffix: str) -> None:
    source = _dirty(frame, tmp_path / "in.csv")
    options = BatchOptions(chunk_rows=64, id_column="id", on_error="quarantine")
    whole = run_batch(model, source, tmp_path / f"whole{suffix}", options=options)
    out = tmp_path / f"out{suffix}"
    with pytest.raises(_Interrupt):
        run_batch(model, source, out, options=options, engine=_StopAfter(3))
    assert not out.exists()
    kept = {p.name for p in (tmp_path / f"out{suffix}.parts").iterdir()}
    part = ".arrow" if suffix == ".parquet" else suffix  # Parquet: Arrow IPC parts
    assert {"checkpoint.json", "quarantine-000000.jsonl"} <= kept
    assert sorted(n for n in kept if n.startswith("part-")) == [
        f"part-{i:06d}{part}" for i in range(3)]
    resumed = run_batch(model, source, out, options=options)
    assert resumed.resumed_from == 192
    assert (resumed.rows, resumed.scored, resumed.quarantined, resumed.chunks) == (
        whole.rows, whole.scored, whole.quarantined, whole.chunks)
    assert out.read_bytes() == (tmp_path / f"whole{suffix}").read_bytes()
    assert (tmp_path / "out.quarantine.jsonl").read_bytes() == (
        tmp_path / "whole.quarantine.jsonl").read_bytes()


def _interrupt(model: Model, source: Path, out: Path, options: BatchOptions) -> None:
    with pytest.raises(_Interrupt):
        run_batch(model, source, out, options=options, engine=_StopAfter(1))


def test_resuming_refuses_another_model_version(frame: pd.DataFrame, model: Model,
                                                estimator: LogisticRegression,
                                                tmp_path: Path) -> None:
    source = write(frame, tmp_path / "in.csv")
    options = BatchOptions(chunk_rows=100)
    _interrupt(model, source, tmp_path / "out.csv", options)
    newer = make_model(estimator, frame[FEATURES], version=2)
    with pytest.raises(ConflictError,
                       match=r"interrupted run of models:/m/1, but this run scores with "
                             r"models:/m/2: resuming would mix two versions"):
        run_batch(newer, source, tmp_path / "out.csv", options=options)
    result = run_batch(newer, source, tmp_path / "out.csv",
                       options=BatchOptions(chunk_rows=100, restart=True))
    assert (result.resumed_from, result.model) == (0, "models:/m/2")
    assert set(pd.read_csv(tmp_path / "out.csv")["model_version"]) == {2}


@pytest.mark.parametrize(("change", "match"), [
    ("input", "the input file changed"),
    ("chunk_rows", "--chunk-rows differs"),
    ("id_column", r"the pass-through columns \(--id-column, --keep\) differ"),
], ids=["input", "chunk-rows", "passthrough"])
def test_resuming_refuses_a_changed_job(frame: pd.DataFrame, model: Model, tmp_path: Path,
                                        change: str, match: str) -> None:
    source = write(frame, tmp_path / "in.csv")
    _interrupt(model, source, tmp_path / "out.csv", BatchOptions(chunk_rows=100))
    options = BatchOptions(chunk_rows=100)
    if change == "input":
        write(frame.head(500), source)
    elif change == "chunk_rows":
        options = BatchOptions(chunk_rows=50)
    else:
        options = BatchOptions(chunk_rows=100, id_column="id")
    with pytest.raises(ConflictError, match=match):
        run_batch(model, source, tmp_path / "out.csv", options=options)


def test_the_output_appears_only_when_complete(frame: pd.DataFrame, model: Model,
                                               tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    out.write_bytes(b"yesterday's scores")
    seen: list[tuple[int, int | None, bytes]] = []

    def progress(done: int, total: int | None) -> None:
        seen.append((done, total, out.read_bytes()[:18]))

    run_batch(model, write(frame, tmp_path / "in.csv"), out,
              options=BatchOptions(chunk_rows=250), progress=progress)
    assert [done for done, _, _ in seen] == [0, 250, 500, 600]
    assert {total for _, total, _ in seen} <= {None, 600}  # counted in a thread meanwhile
    assert seen[-1][1] == 600
    assert {head for _, _, head in seen} == {b"yesterday's scores"}
    assert len(pd.read_parquet(out)) == 600


@pytest.mark.parametrize(("options", "columns", "match"), [
    (BatchOptions(), ["id", "f0", "f1"], r"lacks column\(s\) \['f2', 'f3'\] that models:/m/1 "
                                         "needs"),
    (BatchOptions(id_column="key"), None, r"has no column\(s\) \['key'\] to pass through"),
    (BatchOptions(keep=("prediction",)), ["prediction", *FEATURES],
     r"Pass-through column\(s\) \['prediction'\] would collide"),
], ids=["missing-feature", "missing-id", "collision"])
def test_columns_are_checked_before_reading(frame: pd.DataFrame, model: Model,
                                            tmp_path: Path, options: BatchOptions,
                                            columns: list[str] | None, match: str) -> None:
    data = frame.assign(prediction=1)[columns] if columns else frame
    with pytest.raises(InvalidInputError, match=match):
        run_batch(model, write(data, tmp_path / "in.csv"), tmp_path / "out.csv",
                  options=options)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"chunk_rows": 0}, "The 'chunk_rows' option must be at least 1. Got 0 instead."),
    ({"on_error": "ignore"}, "The 'on_error' option must be 'fail', 'skip' or 'quarantine'"),
], ids=["chunk-rows", "on-error"])
def test_options_are_checked(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        BatchOptions(**kwargs)


def test_the_output_cannot_be_the_input(frame: pd.DataFrame, model: Model,
                                        tmp_path: Path) -> None:
    source = write(frame, tmp_path / "in.csv")
    with pytest.raises(InvalidInputError, match="is the input file; it would be overwritten"):
        run_batch(model, source, source)


def test_an_input_without_rows_is_an_error(model: Model, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id,f0,f1,f2,f3\n")
    with pytest.raises(InvalidInputError, match="has no rows to score"):
        run_batch(model, source, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv.parts").exists()


def test_workers_score_in_parallel_and_write_the_same_file(
        frame: pd.DataFrame, model: Model, tmp_path: Path) -> None:
    source = write(frame, tmp_path / "in.parquet")
    options = BatchOptions(chunk_rows=50, id_column="id")
    run_batch(model, source, tmp_path / "one.csv", options=options)
    run_batch(model, source, tmp_path / "three.csv", options=options,
              engine=LocalEngine(workers=3))
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "three.csv").read_bytes()


class _Sink:
    def __init__(self) -> None:
        self.records: list[InferenceRecord] = []
        self.flushes = 0

    def emit(self, record: InferenceRecord) -> None:
        self.records.append(record)

    def flush(self) -> int:
        self.flushes += 1
        return 0


def test_each_chunk_is_one_inference_record_on_the_batch_route(
        frame: pd.DataFrame, model: Model, estimator: LogisticRegression,
        tmp_path: Path) -> None:
    sink = _Sink()
    run_batch(model, _dirty(frame, tmp_path / "in.csv"), tmp_path / "out.csv",
              options=BatchOptions(chunk_rows=200, on_error="skip"), sink=sink)
    assert [len(r.outputs["predict"]) for r in sink.records] == [199, 199, 200]
    assert sink.flushes == 3
    first = sink.records[0]
    assert (first.model, first.version, first.route, first.error) == ("m", 1, "batch", None)
    assert re.fullmatch(r"batch-[0-9a-f]{12}-000000", first.request_id)
    clean = frame.drop(index=[4]).head(199)
    np.testing.assert_array_equal(first.inputs["f0"], clean["f0"].to_numpy())
    np.testing.assert_allclose(first.outputs["predict_proba"],
                               estimator.predict_proba(clean[FEATURES]), rtol=1e-12, atol=1e-15)


def test_batch_rows_land_in_the_inference_log(frame: pd.DataFrame, model: Model,
                                              tmp_path: Path) -> None:
    store = ParquetLogStore(str(tmp_path / "logs"))
    log = InferenceLog(store)
    run_batch(model, write(frame, tmp_path / "in.parquet"), tmp_path / "out.parquet",
              options=BatchOptions(chunk_rows=256), sink=log)
    log.close()
    table = store.read_inferences("m")
    assert table.num_rows == 600
    assert set(table.column("route").to_pylist()) == {"batch"}
    assert {f"in.{f}" for f in FEATURES} | {"out.predict", "out.predict_proba"} <= set(
        table.column_names)


def test_a_first_chunk_without_predictions_does_not_fix_the_output_types(
        frame: pd.DataFrame, model: Model, estimator: LogisticRegression,
        tmp_path: Path) -> None:
    data = frame[["id", *FEATURES]].astype({"f0": object})
    data.loc[:99, "f0"] = "n/a?"  # the whole first chunk is refused: its prediction is null
    data.to_csv(tmp_path / "in.csv", index=False)
    result = run_batch(model, tmp_path / "in.csv", tmp_path / "out.parquet",
                       options=BatchOptions(chunk_rows=100, on_error="skip"))
    assert (result.scored, result.skipped) == (500, 100)
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.schema.field("prediction").type == pa.int64()
    np.testing.assert_array_equal(out.column("prediction").to_numpy(),
                                  estimator.predict(frame[FEATURES].iloc[100:]))
