"""Registry benchmark: registration and alias resolution, and model loading against MLflow.

Run it with ``make bench-registry`` (or ``.venv/bin/python bench/registry/run.py``). It prints
one table and writes the same results to ``bench/results/registry.json``.

What is measured, and how
-------------------------
1. **Registry, on SQLite and on PostgreSQL.** SQLite lives in a fresh ``MODELYARD_HOME`` in a
   temporary folder. PostgreSQL gets a fresh database (``modelyard_bench_<hex>``) created on the
   local server (``TEST_POSTGRES_URL``, default ``postgresql://postgres@127.0.0.1:5432/test``)
   and dropped at the end; when the server cannot be reached the backend is reported as
   skipped, except under ``CI=true``, where the benchmark fails.

   * ``register``: 1,000 versions of one model, a ``LogisticRegression`` fitted on iris and
     registered with ``data=`` the 150-row iris frame, so that the cost measured is the
     registry's (save, check, profile, artifact store, database) and not the model's. One
     untimed registration of another name comes first, so that runtime discovery and imports
     are not counted. Reported: registrations per second (1,000 / total time) and the p50 and
     p99 of one ``Client.register`` call.
   * ``resolve``: alias ``production`` set on the last version, then
     ``client.resolve("models:/iris@production")`` 10,000 times (after 200 untimed ones).
     Reported: median and p99 in microseconds. Target: median under 1 ms.

2. **Loading, against MLflow.** Two scikit-learn models fitted on breast_cancer (a
   ``RandomForestClassifier(n_estimators=100, random_state=0)`` and a ``StandardScaler`` +
   ``LogisticRegression`` pipeline) are registered in a fresh SQLite registry and saved with
   ``mlflow.sklearn.save_model(..., serialization_format="skops", skops_trusted_types=...,
   pip_requirements=[])``. Both loaded copies must predict exactly what the original predicts
   before anything is timed.

   * ``load warm``: ``Client.load("models:/NAME/1")`` (one Client, as a server would hold) and
     ``mlflow.pyfunc.load_model(path)`` in this process: one untimed load each, then 20 timed
     loads each, interleaved (the order alternates every round, so drift on this shared
     machine hits both tools alike). Median.
   * ``load cold``: a fresh ``python -c`` process that imports the library and loads once; the
     time is taken inside that process, from before the import to after the load, so interpreter
     start-up is not counted. 5 runs each, interleaved. Median.

   Ratio = modelyard / MLflow. Target: ratio <= 1.0 (modelyard no slower than MLflow).

Every timing uses ``time.perf_counter_ns``; medians are quoted because this 2-core machine is
shared and noisy. ``OMP_NUM_THREADS=1`` and MLflow's telemetry opt-outs are set for this process
and for every subprocess. The exit status is 1 when a target is missed (or PostgreSQL is missing
under CI), else 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

# Set in main() before numpy, scikit-learn or MLflow are first imported (every heavy import
# below is inside a function), and passed on to every subprocess.
BENCH_ENV = {"OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results" / "registry.json"
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
RESOLVE_TARGET_US = 1000.0
LOAD_TARGET_RATIO = 1.0

# Piped output (make, CI logs) would be cut to 80 columns and truncate the table.
console = Console() if sys.stdout.isatty() else Console(width=120)


# -- results ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Result:
    """One row of the final table (and one object in the JSON file)."""

    metric: str
    value: float | None  # None: skipped
    unit: str
    peer: float | None = None  # the same measurement for MLflow, where there is one
    max_value: float | None = None  # target on the value itself
    max_ratio: float | None = None  # target on value / peer
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.peer:
            return None
        return self.value / self.peer

    @property
    def target(self) -> str:
        if self.max_value is not None:
            return f"< {self.max_value:g} {self.unit}"
        if self.max_ratio is not None:
            return f"ratio <= {self.max_ratio:g}"
        return ""

    @property
    def passed(self) -> bool | None:
        if self.value is None:
            return None
        if self.max_value is not None:
            return self.value < self.max_value
        if self.max_ratio is not None and self.ratio is not None:
            return self.ratio <= self.max_ratio
        return None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "target": self.target, "passed": self.passed}


def _median_ns(samples: list[int]) -> float:
    return float(statistics.median(samples))


def _p99_ns(samples: list[int]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


# -- 1. registry: register and resolve ---------------------------------------------------------
class Unavailable(Exception):
    """A backend that cannot be benchmarked on this machine (the message says why)."""


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database on the local server, dropped afterwards."""
    try:
        import psycopg
    except ImportError as exc:
        raise Unavailable("psycopg is not installed (pip install 'modelyard[postgres]')") from exc

    def admin() -> Any:
        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)

    name = f"modelyard_bench_{uuid.uuid4().hex[:12]}"
    try:
        with admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Unavailable(f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {reason}") from exc
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_registry(
    backend: str, database_url: str | None, home: Path, *, versions: int, resolves: int
) -> list[Result]:
    """Register ``versions`` versions, then resolve the alias ``resolves`` times."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from modelyard import Client
    from modelyard.settings import Settings

    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    settings = Settings(home=home, database_url=database_url, user="bench")
    with Client(settings) as client:
        client.register(model, "warmup", data=X)  # imports runtimes, creates the schema
        times: list[int] = []
        with Progress(
            TextColumn(f"[bold]{backend}[/] register"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("register", total=versions, rate="")
            total_ns = 0
            for done in range(1, versions + 1):
                start = time.perf_counter_ns()
                client.register(model, "iris", data=X)
                times.append(time.perf_counter_ns() - start)
                total_ns += times[-1]
                progress.update(task, advance=1, rate=f"{done / (total_ns / 1e9):.0f}/s")
        last = client.get_model("iris").latest_version
        if last != versions:
            raise RuntimeError(f"{backend}: expected {versions} versions, found {last}")
        client.set_alias("iris", "production", versions)
        ref = "models:/iris@production"
        for _ in range(200):
            client.resolve(ref)
        resolve_times: list[int] = []
        for _ in range(resolves):
            start = time.perf_counter_ns()
            mv = client.resolve(ref)
            resolve_times.append(time.perf_counter_ns() - start)
        if mv.version != versions:
            raise RuntimeError(f"{backend}: {ref} resolved to version {mv.version}")
    console.print(
        f"{backend}: {versions} registrations in {sum(times) / 1e9:.1f} s, "
        f"{resolves} resolutions in {sum(resolve_times) / 1e9:.1f} s"
    )
    return [
        Result(f"{backend} register throughput", versions / (sum(times) / 1e9), "reg/s"),
        Result(f"{backend} register p50", _median_ns(times) / 1e6, "ms"),
        Result(f"{backend} register p99", _p99_ns(times) / 1e6, "ms"),
        Result(
            f"{backend} resolve alias median",
            _median_ns(resolve_times) / 1e3,
            "µs",
            max_value=RESOLVE_TARGET_US,
        ),
        Result(f"{backend} resolve alias p99", _p99_ns(resolve_times) / 1e3, "µs"),
    ]


# -- 2. loading: modelyard against MLflow ----------------------------------------------------
_COLD_MODELYARD = """\
import time
start = time.perf_counter_ns()
import modelyard
model = modelyard.Client().load({ref!r})
print(time.perf_counter_ns() - start)
"""

_COLD_MLFLOW = """\
import time
start = time.perf_counter_ns()
import mlflow.pyfunc
model = mlflow.pyfunc.load_model({path!r})
print(time.perf_counter_ns() - start)
"""


def _cold_load_ns(code: str, env: dict[str, str]) -> int:
    """Run ``code`` in a fresh interpreter; it prints the nanoseconds it measured."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"cold load failed ({proc.returncode}):\n{proc.stderr}")
    return int(proc.stdout.strip().splitlines()[-1])


def _interleaved(
    first: Callable[[], int], second: Callable[[], int], runs: int
) -> tuple[list[int], list[int]]:
    """Time both ``runs`` times, alternating which goes first in each round."""
    a: list[int] = []
    b: list[int] = []
    for i in range(runs):
        if i % 2 == 0:
            a.append(first())
            b.append(second())
        else:
            b.append(second())
            a.append(first())
    return a, b


def _timed(fn: Callable[[], object]) -> Callable[[], int]:
    def run() -> int:
        start = time.perf_counter_ns()
        fn()
        return time.perf_counter_ns() - start

    return run


def _models() -> dict[str, tuple[Any, Any]]:
    """The models compared, fitted on breast_cancer, with the frame they predict on."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    forest = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    logreg = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    return {"cancer-rf": (forest, X), "cancer-lr": (logreg, X)}


def bench_loading(work: Path, *, warm_runs: int, cold_runs: int) -> list[Result]:
    import mlflow.pyfunc
    import mlflow.sklearn
    import numpy as np
    import skops.io as sio

    from modelyard import Client
    from modelyard.settings import Settings

    home = work / "home"
    env = {**os.environ, **BENCH_ENV, "MODELYARD_HOME": str(home), "MODELYARD_USER": "bench"}
    results: list[Result] = []
    with Client(Settings(home=home, user="bench")) as client:
        for name, (model, X) in _models().items():
            expected = model.predict(X)
            client.register(model, name, data=X)
            ref = f"models:/{name}/1"
            path = str(work / "mlflow" / name)
            trusted = sio.get_untrusted_types(data=sio.dumps(model))
            mlflow.sklearn.save_model(
                model,
                path,
                serialization_format="skops",
                skops_trusted_types=trusted,
                pip_requirements=[],
            )

            # Both copies must predict exactly what the original predicts.
            for tool, loaded in (
                ("modelyard", client.load(ref)),
                ("mlflow", mlflow.pyfunc.load_model(path)),
            ):
                got = np.asarray(loaded.predict(X))
                if not np.array_equal(got, expected):
                    raise RuntimeError(f"{tool} copy of {name} predicts differently")

            console.print(f"load {name}: warm x{warm_runs}, cold x{cold_runs} ...")
            ours, theirs = _interleaved(
                _timed(partial(client.load, ref)),
                _timed(partial(mlflow.pyfunc.load_model, path)),
                warm_runs + 1,
            )
            warm = (_median_ns(ours[1:]) / 1e6, _median_ns(theirs[1:]) / 1e6)

            ours, theirs = _interleaved(
                partial(_cold_load_ns, _COLD_MODELYARD.format(ref=ref), env),
                partial(_cold_load_ns, _COLD_MLFLOW.format(path=path), env),
                cold_runs,
            )
            cold = (_median_ns(ours) / 1e6, _median_ns(theirs) / 1e6)
            results += [
                Result(
                    f"load {name} warm median",
                    warm[0],
                    "ms",
                    peer=warm[1],
                    max_ratio=LOAD_TARGET_RATIO,
                ),
                Result(
                    f"load {name} cold median",
                    cold[0],
                    "ms",
                    peer=cold[1],
                    max_ratio=LOAD_TARGET_RATIO,
                ),
            ]
    return results


# -- 3. report -------------------------------------------------------------------------------
def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def render(results: list[Result]) -> Table:
    table = Table(title="modelyard registry benchmark (medians unless stated)")
    table.add_column("metric", no_wrap=True)
    for column in ("modelyard", "MLflow", "ratio", "target", "result"):
        table.add_column(column, justify="right")  # wraps only a long "skipped: ..." reason
    for r in results:
        if r.value is None:
            table.add_row(
                r.metric,
                Text(r.note, style="yellow", justify="left"),
                "",
                "",
                "",
                "[yellow]skipped",
            )
            continue
        verdict = {True: "[green]pass", False: "[red]FAIL", None: ""}[r.passed]
        peer = f"{_fmt(r.peer)} {r.unit}" if r.peer is not None else ""
        ratio = f"{r.ratio:.3f}" if r.ratio is not None else ""
        table.add_row(r.metric, f"{_fmt(r.value)} {r.unit}", peer, ratio, r.target, verdict)
    return table


def write_json(results: list[Result], args: argparse.Namespace, seconds: float) -> None:
    from importlib.metadata import version

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "registry",
        "finished_at": datetime.now(UTC).isoformat(),
        "seconds": round(seconds, 1),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "versions": {
            p: version(p) for p in ("modelyard", "mlflow", "scikit-learn", "skops", "sqlalchemy")
        },
        "parameters": vars(args),
        "results": [r.to_json() for r in results],
    }
    RESULTS.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=1000, help="versions to register")
    parser.add_argument("--resolves", type=int, default=10_000, help="alias resolutions")
    parser.add_argument("--warm-runs", type=int, default=20, help="timed warm loads per tool")
    parser.add_argument("--cold-runs", type=int, default=5, help="cold loads per tool")
    args = parser.parse_args(argv)
    os.environ.update(BENCH_ENV)

    started = time.perf_counter_ns()
    results: list[Result] = []
    failed_hard = False
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-") as tmp:
        work = Path(tmp)
        results += bench_registry(
            "sqlite", None, work / "sqlite", versions=args.versions, resolves=args.resolves
        )
        try:
            with postgres_database() as url:
                results += bench_registry(
                    "postgresql",
                    url,
                    work / "postgresql",
                    versions=args.versions,
                    resolves=args.resolves,
                )
        except Unavailable as exc:
            results.append(Result("postgresql", None, "", note=f"skipped: {exc}"))
            if os.environ.get("CI") == "true":
                console.print(f"[red]PostgreSQL is required under CI=true: {escape(str(exc))}")
                failed_hard = True
        results += bench_loading(work, warm_runs=args.warm_runs, cold_runs=args.cold_runs)
    seconds = (time.perf_counter_ns() - started) / 1e9

    console.print(render(results))
    write_json(results, args, seconds)
    console.print(f"{seconds:.0f} s in all; results written to {RESULTS.relative_to(ROOT)}")
    missed = [r.metric for r in results if r.passed is False]
    if missed:
        console.print(f"[red]Missed targets: {', '.join(missed)}")
    return 1 if missed or failed_hard else 0


if __name__ == "__main__":
    sys.exit(main())
