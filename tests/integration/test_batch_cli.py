"""``modelyard batch`` against a real registry: scoring, errors, the inference log, a run
killed with SIGKILL that resumes, and memory that does not grow with the input."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from modelyard import Client
from modelyard.cli.batch import progress_bar
from modelyard.cli.main import main
from modelyard.monitoring.log_store import ParquetLogStore
from modelyard.settings import Settings

FEATURES = ["a", "b", "c", "d"]


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> object:
    def _run(*args: str | Path) -> Ran:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return _run


def _data(rows: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(np.round(rng.normal(size=(rows, 4)), 5), columns=FEATURES)
    return pd.concat([pd.DataFrame({"id": np.arange(rows) + 1}), X], axis=1)


def _write_with(data: pd.DataFrame, path: Path, *, row: int | None, value: str) -> None:
    """``data`` as CSV, with column 'a' of data row ``row`` replaced by ``value``."""
    lines = data.to_csv(index=False).splitlines()
    if row is not None:
        cells = lines[row + 1].split(",")
        cells[1] = value
        lines[row + 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def registered() -> LogisticRegression:
    """models:/m@production: a logistic regression over four features."""
    data = _data(400, seed=1)
    model = LogisticRegression().fit(data[FEATURES], data["a"] - data["c"] > 0)
    with Client(Settings()) as client:
        client.register(model, "m", data=data[FEATURES], alias="production")
    return model


def test_batch_scores_a_file_with_the_registered_model(
        run: object, registered: LogisticRegression, tmp_path: Path) -> None:
    data = _data(300)
    data.to_csv(tmp_path / "in.csv", index=False)
    result = run("batch", "models:/m@production", tmp_path / "in.csv",  # type: ignore[operator]
                 "-o", tmp_path / "out.parquet", "--id-column", "id", "--chunk-rows", "64")
    assert result.code == 0, result.err
    assert re.fullmatch(r"Scored 300 rows with models:/m/1 \(local\) in \d+\.\d s, [\d,]+ "
                        rf"rows/s: 300 written to {re.escape(str(tmp_path))}/out\.parquet\.\n",
                        result.out), result.out
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns) == ["row", "id", "prediction", "probability_False",
                                 "probability_True", "model_version"]
    np.testing.assert_array_equal(out["prediction"], registered.predict(data[FEATURES]))
    assert set(out["model_version"]) == {1}


def test_batch_json_reports_every_row(run: object, registered: LogisticRegression,
                                      tmp_path: Path) -> None:
    _write_with(_data(50), tmp_path / "in.csv", row=2, value="oops")
    result = run("batch", "models:/m@production", tmp_path / "in.csv",  # type: ignore[operator]
                 "-o", tmp_path / "out.csv", "--on-error", "quarantine", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert {k: report[k] for k in ("rows", "scored", "skipped", "quarantined", "engine")} == {
        "rows": 50, "scored": 49, "skipped": 0, "quarantined": 1, "engine": "local"}
    quarantined = orjson.loads((tmp_path / "out.quarantine.jsonl").read_bytes())
    assert (quarantined["row"], quarantined["reason"]) == (
        2, "column 'a': 'oops' is not a float64 number")


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--engine", "spark"], 2, "--engine must be one of ['local', 'ray']. Got 'spark'."),
    (["--on-error", "ignore"], 2, "--on-error must be one of ['fail', 'skip', 'quarantine']"),
    (["--ref", "models:/nope@production"], 3, "nope"),
    (["--input", "missing.csv"], 3, "There is no input file at"),
    (["--dirty"], 2, "Row 2 of"),
], ids=["engine", "on-error", "unknown-model", "missing-input", "bad-row"])
def test_batch_errors_are_one_line_with_a_hint(run: object, registered: LogisticRegression,
                                               tmp_path: Path, args: list[str], code: int,
                                               message: str) -> None:
    _write_with(_data(20), tmp_path / "in.csv", row=2 if "--dirty" in args else None,
                value="NaNa")
    args = [a for a in args if a != "--dirty"]
    ref, source = "models:/m@production", tmp_path / "in.csv"
    if args[:1] == ["--ref"]:
        ref, args = args[1], []
    if args[:1] == ["--input"]:
        source, args = tmp_path / args[1], []
    result = run("batch", ref, source, "-o", tmp_path / "out.csv", *args)  # type: ignore[operator]
    assert result.code == code
    assert result.err.startswith("Error: "), result.err
    assert message in result.err
    assert "Hint: " in result.err
    assert "Traceback" not in result.err


def test_batch_log_records_the_rows_in_the_inference_log(
        run: object, registered: LogisticRegression, tmp_path: Path, home: Path) -> None:
    _data(120).to_parquet(tmp_path / "in.parquet")
    result = run("batch", "models:/m@production", tmp_path / "in.parquet",  # type: ignore[operator]
                 "-o", tmp_path / "out.parquet", "--chunk-rows", "50", "--log")
    assert result.code == 0, result.err
    logged = ParquetLogStore(str(home / "logs")).read_inferences("m")
    assert logged.num_rows == 120
    assert set(logged.column("route").to_pylist()) == {"batch"}
    assert len(set(logged.column("request_id").to_pylist())) == 3  # one per chunk


def test_the_progress_bar_shows_rows_per_second_and_the_eta() -> None:
    now = [0.0]
    buffer = io.StringIO()
    bar = progress_bar(Console(file=buffer, force_terminal=True, width=120),
                       get_time=lambda: now[0])
    task = bar.add_task("Scoring with models:/m/1", total=1000)
    for done in (200, 400):
        now[0] += 1.0
        bar.update(task, completed=done)
    bar.console.print(bar.get_renderable())
    shown = buffer.getvalue()
    assert "400/1000" in shown, shown
    assert "200 rows/s" in shown  # 200 more rows each second
    assert "0:00:03" in shown  # 600 rows to go


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_and_writes_what_a_whole_run_writes(
        run: object, tmp_path: Path) -> None:
    data = _data(12_000)
    forest = RandomForestClassifier(n_estimators=60, random_state=0).fit(
        data[FEATURES], data["a"] > data["b"])
    with Client(Settings()) as client:
        client.register(forest, "slow", data=data[FEATURES].head(500), alias="production")
    data.to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "out.csv"
    args = ["batch", "models:/slow@production", str(tmp_path / "in.csv"), "-o", str(out),
            "--chunk-rows", "100", "--id-column", "id"]
    checkpoint = tmp_path / "out.csv.parts" / "checkpoint.json"
    proc = subprocess.Popen([sys.executable, "-m", "modelyard", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    done = 0
    while done < 5:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "the run made no progress"
        with contextlib.suppress(FileNotFoundError, orjson.JSONDecodeError):
            done = orjson.loads(checkpoint.read_bytes())["chunks_done"]
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.stderr is not None
    proc.stderr.close()
    assert not out.exists()
    stopped = orjson.loads(checkpoint.read_bytes())["rows_done"]
    assert 500 <= stopped < 12_000

    resumed = run(*args)  # type: ignore[operator]
    assert resumed.code == 0, resumed.err
    assert f"(resumed after row {stopped:,})" in resumed.out
    whole = run(*args[:3], "-o", tmp_path / "whole.csv", *args[5:])  # type: ignore[operator]
    assert whole.code == 0, whole.err
    assert out.read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert not checkpoint.parent.exists()


_MEASURE = textwrap.dedent("""
    import datetime as dt, json, sys
    import numpy as np, pandas as pd
    from sklearn.linear_model import LogisticRegression
    from modelyard.batch import BatchOptions, run_batch
    from modelyard.core.entities import Lineage, ModelVersion, Status
    from modelyard.core.signature import Signature
    from modelyard.runtimes.model import Model
    from modelyard.runtimes.sklearn import SklearnPredictor

    X = pd.DataFrame(np.random.default_rng(0).normal(size=(500, 30)),
                     columns=[f"f{i}" for i in range(30)])
    version = ModelVersion("m", 1, "sklearn", Status.READY, dt.datetime.now(dt.UTC), "t", "0",
                           0, Signature.infer(X), Lineage())
    model = Model(SklearnPredictor(LogisticRegression().fit(X, X.f0 > 0)), version)

    def rss():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    seen = []
    run_batch(model, sys.argv[1], sys.argv[2], progress=lambda done, total: seen.append(rss()),
              options=BatchOptions(chunk_rows=2000, id_column="id"))
    print(json.dumps(seen))
""")


def test_memory_does_not_grow_with_the_input(tmp_path: Path) -> None:
    rows = 300_000
    rng = np.random.default_rng(5)
    table = pa.table({"id": np.arange(rows), **{f"f{i}": rng.normal(size=rows)
                                                for i in range(30)}})
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=20_000)
    env = {**os.environ, "ARROW_DEFAULT_MEMORY_POOL": "system"}
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(tmp_path / "in.parquet"),
                           str(tmp_path / "out.parquet")],
                          capture_output=True, text=True, env=env, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    rss = json.loads(done.stdout)  # MiB after each of the 150 chunks
    assert len(rss) == 151
    # Once the allocator has warmed up (a third of the way), scoring the remaining 200,000
    # rows (46 MiB as float64) must not hold on to them: RSS stays within half of that (a
    # leak of the rows would grow it by all of it; allocator noise measured 4-10 MiB).
    third = len(rss) // 3
    rest_mib = (rows - rows // 3) * 30 * 8 / 2**20
    assert max(rss[third:]) - rss[third] < rest_mib / 2, rss
