"""Batch scoring benchmark: ``modelyard batch`` (local engine) against a plain pandas loop.

Run it with ``make bench-batch`` (or ``.venv/bin/python bench/batch/run.py``; ``--rows 200000``
for a smoke run, ``--help`` for the rest). It prints one table and writes the same results to
``bench/results/batch-<timestamp>.json``. One full run takes about a minute here.

What is measured, and how
-------------------------
* **Data.** ``--rows`` (1,000,000) rows x ``--features`` (30) float64 features drawn from
  ``np.random.default_rng(SEED)`` (rounded to 5 decimals, as exported data usually is), plus
  an ``id`` column. The label follows a logistic model with fixed random weights; a
  scikit-learn ``LogisticRegression`` fitted on the first 20,000 rows is registered in a
  temporary registry as ``models:/bench@production``. The same rows are written once as CSV
  (~260 MB) and Parquet (row groups of 131,072 rows, snappy), and every contender reads the
  same files.
* **Contenders**, each in its own process, per input format, writing the same format:

  - ``modelyard``: ``run_batch`` with the model loaded from the registry, the local engine
    (``--workers``, default 1), ``--chunk-rows`` (100,000) and ``id`` passed through. It
    checks every chunk against the signature, predicts class and probabilities, and writes
    ``row, id, prediction, probability_0, probability_1, model_version``, one part per chunk
    with a checkpoint, assembled into the output file at the end.
  - ``plain``: what one writes by hand: ``pd.read_csv(chunksize=...)`` (CSV) or
    ``ParquetFile.iter_batches(...).to_pandas()`` (Parquet), ``model.predict`` on the
    feature columns, ``id`` and ``prediction`` appended to the output (``to_csv(mode="a")`` or
    a ``ParquetWriter``). Same chunk size, same estimator (loaded from its skops file).
* **Time** is the wall time of the scoring loop inside the process (``time.perf_counter``;
  interpreter start-up, imports and model loading are not counted), the best of
  ``--repeat`` (3) runs per contender, run in turns (plain, modelyard, plain, ...) so that
  load from other work on the machine hits both alike. **Peak memory** is the
  process's ``VmHWM`` (/proc/self/status), model and imports included; the table also shows
  the baseline right before scoring. Arrow allocates from the C allocator
  (``ARROW_DEFAULT_MEMORY_POOL=system``) in both contenders.
* **Flat memory.** modelyard's RSS is sampled after every chunk; the table shows how much it
  rose over the last two thirds of the input, past its value a third of the way in (the
  allocator warms up over the first chunks; data held per row would show here).
* **Correctness.** modelyard's ``prediction`` column must equal the plain loop's, row for
  row; a mismatch fails the run.

Targets (issue 6), per format: modelyard at least 0.9x the plain loop's rows/s; its peak
memory under 1 GiB; its RSS growing less than 64 MiB over the last two thirds of the input
(which are 160 MiB as float64). Exit status 1 when a target is missed, the predictions
differ or a contender fails, else 0. The machine is shared and noisy: do not run it next to another
benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = ROOT / "bench" / "results"
SEED = 20261122
MODEL = "models:/bench@production"
TARGET_RATIO = 0.9
TARGET_PEAK_MIB = 1024.0
TARGET_GROWTH_MIB = 64.0


# -- worker side -------------------------------------------------------------------------------
def _vmhwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _worker(args: argparse.Namespace) -> None:
    inp, out = Path(args.input), Path(args.output)
    rss: list[float] = []  # after each chunk (modelyard only)
    if args.worker == "modelyard":
        from modelyard import Client
        from modelyard.batch import BatchOptions, LocalEngine, run_batch
        from modelyard.settings import Settings

        model = Client(Settings(home=Path(args.home))).load(MODEL)
        options = BatchOptions(chunk_rows=args.chunk_rows, id_column="id", restart=True)
        engine = LocalEngine(args.workers)
        baseline = _vmhwm_mib()
        started = time.perf_counter()
        result = run_batch(model, inp, out, options=options, engine=engine,
                           progress=lambda done, total: rss.append(_rss_mib()))
        seconds = time.perf_counter() - started
        rows = result.rows
    else:
        import skops.io as sio

        estimator = sio.load(Path(args.home) / "model.skops",
                             trusted=sio.get_untrusted_types(file=Path(args.home) /
                                                             "model.skops"))
        baseline = _vmhwm_mib()
        started = time.perf_counter()
        rows = _plain(estimator, inp, out, args.chunk_rows)
        seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rows": rows, "peak_mib": _vmhwm_mib(),
                      "baseline_mib": baseline, "rss": rss}))


def _plain(estimator: Any, inp: Path, out: Path, chunk_rows: int) -> int:
    """The loop one writes by hand."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    features = [f"f{i}" for i in range(estimator.n_features_in_)]
    rows = 0
    if inp.suffix == ".csv":
        with open(out, "w") as fh:
            for i, chunk in enumerate(pd.read_csv(inp, chunksize=chunk_rows)):
                pred = estimator.predict(chunk[features])
                chunk[["id"]].assign(prediction=pred).to_csv(fh, header=i == 0, index=False)
                rows += len(chunk)
        return rows
    writer = None
    try:
        for batch in pq.ParquetFile(inp).iter_batches(batch_size=chunk_rows):
            chunk = batch.to_pandas()
            pred = estimator.predict(chunk[features])
            table = pa.Table.from_pandas(chunk[["id"]].assign(prediction=pred),
                                         preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
            rows += len(chunk)
    finally:
        if writer is not None:
            writer.close()
    return rows


# -- driver side -------------------------------------------------------------------------------
def _make_data(folder: Path, rows: int, features: int) -> dict[str, Path]:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    from modelyard import Client
    from modelyard.settings import Settings

    rng = np.random.default_rng(SEED)
    names = [f"f{i}" for i in range(features)]
    weights = rng.normal(size=features)
    table: dict[str, Any] = {"id": np.arange(rows, dtype=np.int64)}
    matrix = np.round(rng.normal(size=(rows, features)), 5)
    table.update({name: matrix[:, i] for i, name in enumerate(names)})
    arrow = pa.table(table)
    paths = {"csv": folder / "input.csv", "parquet": folder / "input.parquet"}
    pcsv.write_csv(arrow, paths["csv"])
    pq.write_table(arrow, paths["parquet"], row_group_size=131_072)
    train = pd.DataFrame(matrix[:20_000], columns=names)
    label = (rng.random(20_000) < 1 / (1 + np.exp(-(matrix[:20_000] @ weights)))).astype(int)
    model = LogisticRegression(max_iter=1000).fit(train, label)
    home = folder / "home"
    home.mkdir()
    sio.dump(model, home / "model.skops")
    with Client(Settings(home=home, user="bench")) as client:
        client.register(model, "bench", data=train.iloc[:5000], alias="production")
    del matrix, arrow, table
    return paths


def _run(contender: str, inp: Path, out: Path, home: Path, args: argparse.Namespace,
         ) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", contender,
           "--input", str(inp), "--output", str(out), "--home", str(home),
           "--chunk-rows", str(args.chunk_rows), "--workers", str(args.workers)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{contender} on {inp.name} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _same_predictions(mine: Path, plain: Path) -> bool:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    def read(path: Path) -> Any:
        if path.suffix == ".csv":
            return pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
                include_columns=["id", "prediction"]))
        return pq.read_table(path, columns=["id", "prediction"])

    a, b = read(mine), read(plain)
    return bool(a.num_rows == b.num_rows
                and np.array_equal(a.column("id").to_numpy(), b.column("id").to_numpy())
                and np.array_equal(a.column("prediction").to_numpy(),
                                   b.column("prediction").to_numpy()))


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--formats", default="csv,parquet")
    parser.add_argument("--repeat", type=int, default=3,
                        help="Runs per contender (interleaved); the best time counts.")
    parser.add_argument("--worker", choices=["modelyard", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _measure(fmt: str, inp: Path, folder: Path, args: argparse.Namespace,
             ) -> tuple[list[dict[str, Any]], list[str]]:
    """Both contenders on one input, ``--repeat`` times in turns; the best time of each."""
    measured: dict[str, dict[str, Any]] = {}
    for _ in range(args.repeat):
        for contender in ("plain", "modelyard"):
            out = folder / f"out-{contender}{inp.suffix}"
            m = _run(contender, inp, out, folder / "home", args)
            best = measured.get(contender)
            peak = max(m["peak_mib"], best["peak_mib"] if best else 0.0)
            if best is None or m["seconds"] < best["seconds"]:
                measured[contender] = best = m
            best["peak_mib"] = peak
            best["output"] = out
    plain_rate = measured["plain"]["rows"] / measured["plain"]["seconds"]
    rows = []
    for contender, m in measured.items():
        rate = m["rows"] / m["seconds"]
        rows.append({"format": fmt, "contender": contender, "rows": m["rows"],
                     "seconds": round(m["seconds"], 3), "rows_per_s": round(rate),
                     "ratio": round(rate / plain_rate, 3), "peak_mib": round(m["peak_mib"], 1),
                     "baseline_mib": round(m["baseline_mib"], 1),
                     "growth_mib": _growth(m["rss"]) if contender == "modelyard" else None})
    mine = rows[-1]
    failures = []
    if mine["ratio"] < TARGET_RATIO:
        failures.append(f"{fmt}: modelyard at {mine['ratio']:.2f}x the plain loop "
                        f"(target >= {TARGET_RATIO})")
    if mine["peak_mib"] > TARGET_PEAK_MIB:
        failures.append(f"{fmt}: modelyard peak {mine['peak_mib']:.0f} MiB "
                        f"(target < {TARGET_PEAK_MIB:.0f})")
    if mine["growth_mib"] > TARGET_GROWTH_MIB:
        failures.append(f"{fmt}: modelyard's memory grew {mine['growth_mib']:.0f} MiB over the "
                        f"last two thirds of the input (target < {TARGET_GROWTH_MIB:.0f})")
    if not _same_predictions(measured["modelyard"]["output"], measured["plain"]["output"]):
        failures.append(f"{fmt}: modelyard's predictions differ from the plain loop's")
    return rows, failures


def _growth(rss: list[float]) -> float:
    """How much RSS rose over the last two thirds of the chunks, past its value a third in."""
    third = len(rss) // 3
    return round(max(rss[third:]) - rss[third], 1) if rss else float("nan")


def _report(results: list[dict[str, Any]], failures: list[str],
            args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=max(120, Console().width))
    table = Table(title=f"Batch scoring, {args.rows:,} rows x {args.features} features, "
                        f"chunks of {args.chunk_rows:,}, workers={args.workers}")
    for col in ("input", "contender", "seconds", "rows/s", "vs plain", "peak MiB",
                "baseline MiB", "RSS growth, last 2/3"):
        table.add_column(col, justify="left" if col in ("input", "contender") else "right")
    for r in results:
        growth = r["growth_mib"]
        table.add_row(r["format"], r["contender"], f"{r['seconds']:.2f}",
                      f"{r['rows_per_s']:,}", f"{r['ratio']:.2f}x", f"{r['peak_mib']:.0f}",
                      f"{r['baseline_mib']:.0f}", "" if growth is None else f"{growth:+.0f}")
    console.print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"batch-{stamp}.json").write_text(json.dumps({
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "args": {"rows": args.rows, "features": args.features, "chunk_rows": args.chunk_rows,
                 "workers": args.workers, "repeat": args.repeat},
        "results": results, "failures": failures}, indent=2))
    for failure in failures:
        console.print(f"[bold red]Missed:[/] {failure}")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.worker:
        _worker(args)
        return 0
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-batch-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        paths = _make_data(folder, args.rows, args.features)
        print(f"Data: {args.rows:,} rows x {args.features} features (CSV "
              f"{paths['csv'].stat().st_size / 2**20:,.0f} MiB, Parquet "
              f"{paths['parquet'].stat().st_size / 2**20:,.0f} MiB), made in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        for fmt in formats:
            rows, missed = _measure(fmt, paths[fmt], folder, args)
            results += rows
            failures += missed
    _report(results, failures, args)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
