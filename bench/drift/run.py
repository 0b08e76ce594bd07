"""Drift benchmark: modelyard against Evidently's data-drift preset and a per-column scipy loop.

Run it with ``make bench-drift`` (or ``.venv/bin/python bench/drift/run.py``; ``--quick`` for
the 100k size only, ``--sizes 20000,100000`` and ``--only modelyard,scipy`` to choose, ``--help``
for the rest). It prints one table and writes the same results to
``bench/results/drift-<timestamp>.json``. One full run takes about two minutes here, most
of it Evidently and the scipy loop at a million rows.

What is measured, and how
-------------------------
* **Data.** For each size n (100,000 and 1,000,000 rows), a reference and a current table of
  n rows x 20 columns, drawn with ``np.random.default_rng(SEED)``: 14 numeric columns (normal,
  lognormal, exponential, uniform, Poisson counts and rounded values with many ties, one
  with 1% NaN) and 6 categorical ones (2 to 20 categories). Seven columns drift by a
  practically significant amount (a mean shift of 0.25 standard deviations, a 30% change of
  scale, a Poisson rate from 3 to 3.5, a category mix moved by PSI 0.25, a new category with
  5% of the rows); three drift negligibly (1-2% of a standard deviation, PSI 0.01); the rest
  do not change. Both tables are written once to Parquet in a temporary folder (categories
  dictionary-encoded) and every contender reads the same files.
* **Contenders**, each in its own process pinned to core 0 (``taskset -c 0``), with
  ``OMP_NUM_THREADS`` and friends = 1:

  - ``modelyard``: ``dataset_drift(reference, current, kinds=...)`` with the default config,
    which computes all four numeric tests (KS with its p-value, normalised Wasserstein, PSI,
    Jensen-Shannon) and the three categorical ones (chi-square, PSI, Jensen-Shannon) for every
    column. Columns are read one at a time with pyarrow (no pre-buffering, no reader
    threads) and wrapped as numpy without a copy: float64 as stored, categories as object
    arrays of shared strings (8 bytes a row). At these sizes modelyard imports no scipy.
  - ``evidently``: ``Report([DataDriftPreset()]).run(...)`` on ``Dataset.from_pandas`` of
    ``pd.read_parquet`` with the numeric and categorical columns declared; at these sizes its
    defaults are normalised Wasserstein for numeric and Jensen-Shannon for categorical columns
    (one test per column). Evidently 0.7.23 runs from its own virtualenv,
    ``bench/.envs/evidently``, created on first use (``pandas<3``: this Evidently does not
    import under pandas 3).
  - ``scipy``: a loop over the columns calling ``ks_2samp``, ``wasserstein_distance`` (over
    ``np.std`` of the reference), ``jensenshannon(base=2)`` and the PSI formula on the
    reference deciles, and ``chi2_contingency`` on the category counts: the same statistics
    modelyard computes, the straightforward way.
* **Time** is the wall time of the computation inside the process (``time.perf_counter``
  around the call; interpreter start-up, imports and loading are not counted). **Peak
  memory** is the process's ``VmHWM`` (/proc/self/status), loading included, since the data
  must be in memory to be tested; the table also shows it right after loading. Not
  ``ru_maxrss``: Linux carries that over fork and exec, so a worker would report at least
  what this benchmark process held when it started the worker. Every worker allocates Arrow
  memory from the C allocator (``ARROW_DEFAULT_MEMORY_POOL=system``), which hands freed
  memory back, for Evidently's pandas reads as for the others.
* **Correctness.** modelyard's statistics must equal the scipy loop's for every column and
  score (relative 1e-9, absolute 1e-12); a mismatch is printed in red and fails the run.

Targets (issue 4), checked per size: modelyard at least 20x faster than Evidently, and its
peak memory under a third of Evidently's. Exit status 1 when a target is missed, a
statistic differs or a contender fails, else 0. The machine is shared and noisy: do not run
it next to another benchmark.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
os.environ.update(THREAD_ENV)

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ENVS = ROOT / "bench" / ".envs"
EVIDENTLY_ENV = ENVS / "evidently"
RESULTS = ROOT / "bench" / "results"
WORKER = HERE / "worker.py"
CORE = "0"

EVIDENTLY_VERSION = "0.7.23"
EVIDENTLY_REQUIREMENTS = [f"evidently=={EVIDENTLY_VERSION}", "pandas<3", "pyarrow"]
SEED = 20240604
SIZES = (100_000, 1_000_000)
CONTENDERS = ("modelyard", "evidently", "scipy")
WORKER_TIMEOUT_S = 1800

TARGET_SPEEDUP = 20.0
TARGET_MEMORY_SHARE = 1 / 3
REL_TOL, ABS_TOL = 1e-9, 1e-12

console = Console(width=None if sys.stdout.isatty() else 150)


# -- data --------------------------------------------------------------------------------------
PLAN_BASE = np.array([0.35, 0.25, 0.2, 0.12, 0.08])


def _psi(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sum((q - p) * np.log(q / p)))


def _moved(base: np.ndarray, target: float) -> np.ndarray:
    """Proportions at PSI ``target`` from ``base``, moved toward its reverse (bisection)."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        t = (lo + hi) / 2
        lo, hi = (t, hi) if _psi(base, (1 - t) * base + t * base[::-1]) < target else (lo, t)
    return (1 - lo) * base + lo * base[::-1]


# column -> does it drift by a practically significant amount?
EXPECTED_DRIFT = {
    "normal": False,
    "normal_shift_quarter_std": True,
    "normal_scale_up_30pct": True,
    "normal_shift_1pct_std": False,
    "lognormal": False,
    "lognormal_scale_up_30pct": True,
    "exponential": False,
    "exponential_shift_2pct_std": False,
    "uniform": False,
    "uniform_shift_quarter_std": True,
    "poisson_counts": False,
    "poisson_rate_3_to_3_5": True,
    "normal_with_missing": False,
    "rounded_normal": False,
    "plan": False,
    "plan_mix_psi_025": True,
    "country": False,
    "device_new_category_5pct": True,
    "channel_mix_psi_001": False,
    "flag": False,
}
NUMERIC = list(EXPECTED_DRIFT)[:14]
CATEGORICAL = list(EXPECTED_DRIFT)[14:]


def generate(n: int, seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Reference and current columns (categories as (codes, words) pairs, see write_parquet)."""
    rng = np.random.default_rng(seed)
    ref: dict[str, Any] = {}
    cur: dict[str, Any] = {}

    def pair(name: str, draw: Any, change: Any = None) -> None:
        ref[name] = draw()
        cur[name] = draw() if change is None else change(draw())

    normal = lambda: rng.normal(10.0, 2.0, size=n)  # noqa: E731
    pair("normal", normal)
    pair("normal_shift_quarter_std", normal, lambda x: x + 0.25 * 2.0)
    pair("normal_scale_up_30pct", normal, lambda x: 10.0 + (x - 10.0) * 1.3)
    pair("normal_shift_1pct_std", normal, lambda x: x + 0.01 * 2.0)
    lognormal = lambda: rng.lognormal(0.0, 0.5, size=n)  # noqa: E731
    pair("lognormal", lognormal)
    pair("lognormal_scale_up_30pct", lognormal, lambda x: x * 1.3)
    exponential = lambda: rng.exponential(3.0, size=n)  # noqa: E731
    pair("exponential", exponential)
    pair("exponential_shift_2pct_std", exponential, lambda x: x + 0.02 * 3.0)
    uniform = lambda: rng.uniform(0.0, 1.0, size=n)  # noqa: E731
    pair("uniform", uniform)
    pair("uniform_shift_quarter_std", uniform, lambda x: x + 0.25 / math.sqrt(12.0))
    pair("poisson_counts", lambda: rng.poisson(3.0, size=n).astype(np.float64))
    ref["poisson_rate_3_to_3_5"] = rng.poisson(3.0, size=n).astype(np.float64)
    cur["poisson_rate_3_to_3_5"] = rng.poisson(3.5, size=n).astype(np.float64)

    def with_missing() -> np.ndarray:
        x = rng.normal(0.0, 1.0, size=n)
        x[rng.random(n) < 0.01] = np.nan
        return x

    pair("normal_with_missing", with_missing)
    ref["rounded_normal"] = np.round(rng.normal(50.0, 10.0, size=n))
    cur["rounded_normal"] = np.round(rng.normal(50.1, 10.0, size=n))

    def categories(name: str, words: list[str], p_ref: np.ndarray, p_cur: np.ndarray) -> None:
        dictionary = np.array(words, dtype=object)
        ref[name] = (rng.choice(len(words), size=n, p=p_ref).astype(np.int32), dictionary)
        cur[name] = (rng.choice(len(words), size=n, p=p_cur).astype(np.int32), dictionary)

    plans = ["free", "basic", "plus", "pro", "enterprise"]
    categories("plan", plans, PLAN_BASE, PLAN_BASE)
    categories("plan_mix_psi_025", plans, PLAN_BASE, _moved(PLAN_BASE, 0.25))
    zipf = 1.0 / np.arange(1, 21)
    categories("country", [f"country-{i:02d}" for i in range(20)], zipf / zipf.sum(),
               zipf / zipf.sum())  # fmt: skip
    devices = ["ios", "android", "web", "tv"]
    p_dev = np.array([0.4, 0.35, 0.2, 0.05, 0.0])
    categories("device_new_category_5pct", [*devices, "watch"], p_dev,
               np.append(p_dev[:4] * 0.95, 0.05))  # fmt: skip
    channel = np.array([0.5, 0.3, 0.2])
    categories("channel_mix_psi_001", ["ads", "search", "direct"], channel,
               _moved(channel, 0.01))  # fmt: skip
    categories("flag", ["yes", "no"], np.array([0.3, 0.7]), np.array([0.3, 0.7]))
    return ref, cur


def write_parquet(columns: dict[str, Any], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = {}
    for name, values in columns.items():
        if isinstance(values, tuple):  # (codes, words): a dictionary-encoded string column
            codes, words = values
            arrays[name] = pa.DictionaryArray.from_arrays(
                pa.array(codes), pa.array(words.tolist(), type=pa.string())
            )
        else:
            arrays[name] = pa.array(values)
    pq.write_table(pa.table(arrays), path)


def prepare(n: int, folder: Path) -> Path:
    data = folder / f"n{n}"
    data.mkdir(parents=True)
    ref, cur = generate(n, SEED + n)
    write_parquet(ref, data / "reference.parquet")
    write_parquet(cur, data / "current.parquet")
    spec = {"numeric": NUMERIC, "categorical": CATEGORICAL}
    (data / "columns.json").write_text(json.dumps(spec))
    return data


# -- contenders --------------------------------------------------------------------------------
@dataclass(slots=True)
class Run:
    """One contender at one size (one row of the table)."""

    size: int
    contender: str
    seconds: float | None = None
    peak_mib: float | None = None
    peak_mib_loaded: float | None = None
    drifted: list[str] | None = None
    methods: dict[str, str] = field(default_factory=dict)
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    error: str = ""


@dataclass(frozen=True, slots=True)
class Check:
    """One target: its value, how it compares, and whether it passed."""

    name: str
    value: float | None
    target: str
    passed: bool
    note: str = ""


def evidently_python() -> Path:
    """Evidently's virtualenv, created with the pinned version when missing."""
    python = EVIDENTLY_ENV / "bin" / "python"
    probe = [str(python), "-c", "import evidently, pandas; print(evidently.__version__)"]
    if python.exists():
        done = subprocess.run(probe, capture_output=True, text=True, check=False)
        if done.returncode == 0 and done.stdout.strip() == EVIDENTLY_VERSION:
            return python
    console.print(f"Installing Evidently {EVIDENTLY_VERSION} into {EVIDENTLY_ENV} ...")
    EVIDENTLY_ENV.parent.mkdir(parents=True, exist_ok=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_ENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *EVIDENTLY_REQUIREMENTS], check=True
    )
    return python


def run_contender(python: Path, contender: str, data: Path, size: int) -> Run:
    cmd = ["taskset", "-c", CORE, str(python), str(WORKER), contender, str(data)]
    env = {**os.environ, **THREAD_ENV, "DO_NOT_TRACK": "1", "EVIDENTLY_DISABLE_TELEMETRY": "1"}
    console.print(f"  {size:>9,} rows · {contender} ...")
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=WORKER_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return Run(size, contender, error=f"timed out after {WORKER_TIMEOUT_S} s")
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return Run(size, contender, error=f"exit {done.returncode}: {' | '.join(tail)}")
    out = json.loads(line.removeprefix("BENCH_JSON "))
    return Run(
        size,
        contender,
        seconds=out["seconds"],
        peak_mib=out["peak_mib"],
        peak_mib_loaded=out["peak_mib_loaded"],
        drifted=out.get("drifted"),
        methods=out.get("methods", {}),
        scores=out.get("scores", {}),
    )


# -- checks ------------------------------------------------------------------------------------
def compare_scores(ours: Run, scipy: Run) -> tuple[float, list[str]]:
    """The largest relative difference, and every score outside the tolerance."""
    worst, wrong = 0.0, []
    for column, want in scipy.scores.items():
        got = ours.scores.get(column, {})
        for name, expected in want.items():
            value = got.get(name)
            if value is None:
                wrong.append(f"{column}.{name}: missing")
                continue
            diff = abs(value - expected)
            if diff > max(REL_TOL * abs(expected), ABS_TOL):
                wrong.append(f"{column}.{name}: {value!r} != scipy {expected!r}")
            if expected != 0:
                worst = max(worst, diff / abs(expected))
    return worst, wrong


def checks_for(size: int, runs: dict[str, Run]) -> list[Check]:
    ours, peer, scipy = runs.get("modelyard"), runs.get("evidently"), runs.get("scipy")
    out: list[Check] = []
    label = f"{size:,} rows"
    if ours is None or ours.seconds is None or ours.peak_mib is None:
        return [Check(f"{label}: modelyard ran", None, "ran", False, ours.error if ours else "")]
    if peer is not None:
        if peer.seconds is None or peer.peak_mib is None:
            out.append(Check(f"{label}: Evidently ran", None, "ran", False, peer.error))
        else:
            speedup = peer.seconds / ours.seconds
            out.append(Check(f"{label}: faster than Evidently", speedup,
                             f">= {TARGET_SPEEDUP:g}x", speedup >= TARGET_SPEEDUP))  # fmt: skip
            share = ours.peak_mib / peer.peak_mib
            target = f"< {TARGET_MEMORY_SHARE:.3f}"
            out.append(Check(f"{label}: peak memory vs Evidently", share, target,
                             share < TARGET_MEMORY_SHARE))  # fmt: skip
    if scipy is not None:
        if scipy.seconds is None:
            out.append(Check(f"{label}: scipy loop ran", None, "ran", False, scipy.error))
        else:
            worst, wrong = compare_scores(ours, scipy)
            note = "; ".join(wrong[:5]) + (f" (+{len(wrong) - 5} more)" if len(wrong) > 5 else "")
            out.append(Check(f"{label}: statistics equal scipy's", worst,
                             f"rel <= {REL_TOL:g}", not wrong, note))  # fmt: skip
    return out


# -- output ------------------------------------------------------------------------------------
def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def render(runs: list[Run], checks: list[Check]) -> None:
    table = Table(title="Drift: 20 columns (14 numeric, 6 categorical), one core")
    for col in ("rows", "contender", "compute s", "vs modelyard", "peak MiB",
                "peak / modelyard", "MiB after load", "drifted (7 expected)"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("contender",) else "right")
    by_size: dict[int, dict[str, Run]] = {}
    for run in runs:
        by_size.setdefault(run.size, {})[run.contender] = run
    expected = {c for c, drifts in EXPECTED_DRIFT.items() if drifts}
    for size, group in by_size.items():
        base = group.get("modelyard")
        for name in CONTENDERS:
            run = group.get(name)
            if run is None:
                continue
            if run.error:
                table.add_row(f"{size:,}", name, f"[red]{run.error[:90]}[/red]", *[""] * 5)
                continue
            ratio = mem_ratio = None
            if base is not None and base.seconds and run.seconds is not None:
                ratio = run.seconds / base.seconds
            if base is not None and base.peak_mib and run.peak_mib is not None:
                mem_ratio = run.peak_mib / base.peak_mib
            found = ""
            if run.drifted is not None:
                found = f"{len(run.drifted)}"
                missed, extra = expected - set(run.drifted), set(run.drifted) - expected
                if missed or extra:
                    found += f" (missed {len(missed)}, extra {len(extra)})"
            table.add_row(f"{size:,}", name, _fmt(run.seconds, ".3f"),
                          _fmt(ratio, ".1f") + ("x" if ratio else ""), _fmt(run.peak_mib, ".0f"),
                          _fmt(mem_ratio, ".2f") + ("x" if mem_ratio else ""),
                          _fmt(run.peak_mib_loaded, ".0f"), found)  # fmt: skip
    console.print(table)
    targets = Table(title="Targets")
    for col in ("check", "value", "target", "result"):
        targets.add_column(col)
    for check in checks:
        result = "[green]met[/green]" if check.passed else "[red]MISSED[/red]"
        value = _fmt(check.value, ".3g") if check.value is not None else "—"
        targets.add_row(check.name, value, check.target,
                        result + (f" {check.note}" if check.note else ""))  # fmt: skip
    console.print(targets)


def _versions(evidently: Path | None) -> dict[str, str]:
    from importlib.metadata import version

    out = {name: version(name) for name in ("numpy", "scipy", "pyarrow")}
    out["python"] = platform.python_version()
    if evidently is not None:
        out["evidently"] = EVIDENTLY_VERSION
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="the 100,000-row size only")
    parser.add_argument("--sizes", help="comma-separated row counts (default 100000,1000000)")
    parser.add_argument("--only", help=f"comma-separated contenders of {', '.join(CONTENDERS)}")
    args = parser.parse_args(argv)
    sizes = SIZES[:1] if args.quick else SIZES
    if args.sizes:
        sizes = tuple(int(s) for s in args.sizes.split(","))
    contenders = tuple(args.only.split(",")) if args.only else CONTENDERS
    unknown = set(contenders) - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contenders {sorted(unknown)}; choose from {list(CONTENDERS)}")

    pythons = {"modelyard": Path(sys.executable), "scipy": Path(sys.executable)}
    evidently: Path | None = None
    runs: list[Run] = []
    if "evidently" in contenders:
        try:
            evidently = pythons["evidently"] = evidently_python()
        except (OSError, subprocess.CalledProcessError) as exc:
            runs += [Run(n, "evidently", error=f"cannot install Evidently: {exc}") for n in sizes]
    checks: list[Check] = []
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-drift-") as tmp:
        for n in sizes:
            started = time.perf_counter()
            data = prepare(n, Path(tmp))
            console.print(f"{n:,} rows: data written in {time.perf_counter() - started:.1f} s")
            group: dict[str, Run] = {r.contender: r for r in runs if r.size == n}
            for name in contenders:
                if name in pythons:
                    group[name] = run_contender(pythons[name], name, data, n)
            runs = [r for r in runs if r.size != n] + list(group.values())
            checks += checks_for(n, group)
            for file in data.iterdir():  # each size's files go once its contenders are done
                file.unlink()
    render(runs, checks)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"drift-{stamp}.json"
    payload = {
        "when": stamp,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": _versions(evidently),
        "seed": SEED,
        "expected_drift": EXPECTED_DRIFT,
        "runs": [asdict(r) for r in runs],
        "checks": [asdict(c) for c in checks],
    }
    path.write_text(json.dumps(payload, indent=2))
    console.print(f"Results: {path.relative_to(ROOT)}")
    return 0 if checks and all(c.passed for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
