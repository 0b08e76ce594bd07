"""Serving benchmark: modelyard against MLServer and ``mlflow models serve``, one run, one machine.

Run it with ``make bench-serving`` (or ``.venv/bin/python bench/serving/run.py``; ``--quick``
for a short run, ``--only modelyard,mlserver`` to pick servers, ``--help`` for the rest). It
prints one table and writes the same results to ``bench/results/serving.json``.

What is measured, and how
-------------------------
* **Models.** Two scikit-learn classifiers fitted once on breast_cancer (569 rows, 30 float
  columns, NumPy arrays): ``cancer-logreg``, a ``StandardScaler`` + ``LogisticRegression``
  pipeline, and ``cancer-forest``, a ``RandomForestClassifier(n_estimators=100,
  random_state=0)``. Each is saved three ways in a temporary folder: registered in a fresh
  modelyard registry (``MODELYARD_HOME``) with alias ``production``; as an MLServer model
  (``model.joblib`` + ``model-settings.json``, ``mlserver_sklearn.SKLearnModel``, adaptive
  batching on: ``max_batch_size`` 64, ``max_batch_time`` 2 ms, the best of 2, 5 and 10 ms
  here: the same req/s at c=64, and the least added latency at c=1); and with
  ``mlflow.sklearn.save_model`` (skops, trusted types, a tensor signature,
  ``pip_requirements=[]``).
* **Servers.** One server process per model and server, bound to 127.0.0.1 on free ports:
  ``modelyard serve models:/NAME@production`` (its OIP v2 route ``/v2/models/NAME/infer``,
  its MLflow route ``/invocations``, and its ``/v2/null`` route, which returns a fixed answer
  on the same HTTP stack and so marks the ceiling; null is measured once, with the first
  model); MLServer 1.7.1 twice, with the default ``parallel_workers: 1`` (inference in a
  worker process) and with ``parallel_workers: 0`` (inference in the HTTP process), both with
  ``debug: false`` and batching; ``mlflow models serve --env-manager local -w 1`` with
  ``UVICORN_ACCESS_LOG=false``. Peers run from their own virtualenvs under ``bench/.envs/``,
  created on first use with the machine's pip configuration (MLflow reuses this venv when it
  has ``mlflow`` 3.17). Every server gets ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and
  ``MKL_NUM_THREADS`` = 1 and telemetry opt-outs, and is started under ``taskset -c 0``; its
  children inherit the pin.
* **Correctness first.** Before anything is timed, each route is asked for five rows (the
  benchmark row and four others of both classes), one request each, and must answer exactly
  what the model predicts in this process. A wrong answer is printed in red, the server is not
  timed, and the exit status is 1.
* **HTTP load.** ``wrk`` (Debian package; ``apt-get install wrk``) under ``taskset -c 1``, one
  thread, connections = concurrency (1, 16, 64), a Lua script that POSTs the same single-row
  JSON body (``{"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP64", ...}]}``
  for OIP, ``{"inputs": [[...]]}`` for ``/invocations``) and prints wrk's own counters and
  latency percentiles as JSON from ``done()``. Each point: a 2 s warm-up run (discarded), then
  an 8 s measured run. req/s = requests / duration; p50 and p99 from wrk's latency histogram
  (closed loop: a request is sent when the previous answer on that connection is back);
  errors = non-2xx answers + socket errors (connect, read, write, timeout at 10 s).
* **gRPC load.** ``grpc_load.py``: asyncio tasks on one ``tritonclient.grpc.aio`` channel,
  closed loop, concurrency 16 and 64, 1 s warm-up + 5 s, in its own process under
  ``taskset -c 1``; against modelyard's and MLServer's gRPC ports. It is a Python client, so
  above a few thousand req/s it measures itself more than the server: read those rows as
  "at least".
* **Memory and start-up.** RSS of the server's whole process tree (the server and every
  descendant, e.g. MLServer's inference worker or the uvicorn child of ``mlflow models
  serve``), from ``/proc/PID/status``: idle = sum of ``VmRSS`` once ready and before any load;
  peak = sum of ``VmHWM`` after each point. Ready = seconds from spawning the command to the
  first 200 from its readiness URL.
* **Raw predict.** ``model.predict`` of one row in this process, pinned to core 0 like the
  servers: median of 1,000 calls after 100 untimed ones.

Targets (issue 3), checked at the end: at concurrency 64, modelyard's req/s on OIP at least
5x the best MLServer configuration's for the logistic regression and 3x for the forest, at
least 0.6x the null route's for the logistic regression, with p99 under 30 ms; at
concurrency 1, p50 no more than raw predict + 0.3 ms; idle RSS under 150 MiB; ready within
1.5 s. Exit status 1 when a target is missed or an answer is wrong, else 0. This 2-core
machine is shared and noisy (30-40 % between runs is common): ``--repeat N`` runs each point
N times and reports the median.

References (printed with the targets, never failing the run): ``standin.py``, a bare batching
ASGI app on the same uvicorn + httptools + uvloop stack that only parses, batches, predicts and
writes the answer (no validation, metrics, logging or timeouts) and loads the model through
modelyard's registry, is measured beside modelyard on the first model at the top concurrency,
with its own null route: its infer/null ratio is about the best a Python server on this stack
reaches here, its RSS and start-up the least a server holding that scikit-learn model needs,
and modelyard / floor says how much of the floor modelyard keeps. ``--standin`` puts the same
app in modelyard's place to develop the harness.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

# Before numpy or scikit-learn are imported: one thread each, no telemetry.
THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
QUIET_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
os.environ.update(THREAD_ENV | QUIET_ENV)

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402
from rich.table import Table  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ENVS = ROOT / "bench" / ".envs"
RESULTS = ROOT / "bench" / "results" / "serving.json"
LOGS = ROOT / "bench" / "results" / "serving-logs"
VENV_BIN = Path(sys.executable).parent
SERVER_CORE, LOAD_CORE = "0", "1"

MLSERVER_VERSION = "1.7.1"
MLFLOW_SPEC = "3.17"
MLSERVER_MAX_BATCH_SIZE = 64
READY_TIMEOUT_S = 60.0
WRK_TIMEOUT = "10s"

TARGET_LOGREG_VS_MLSERVER = 5.0
TARGET_FOREST_VS_MLSERVER = 3.0
TARGET_VS_NULL = 0.6
TARGET_P99_MS = 30.0
TARGET_OVERHEAD_MS = 0.3
TARGET_IDLE_RSS_MIB = 150.0
TARGET_READY_S = 1.5
TARGET_LOG_ON_VS_OFF = 0.9  # serving with the inference log on: within 10% of log off
LOG_OFF = "modelyard log off"
FLOOR = "bare ASGI floor"
ONNX = "modelyard --prefer-onnx"

console = Console(width=None if sys.stdout.isatty() else 150)


class Unavailable(Exception):
    """A server that cannot be benchmarked here (the message says why)."""


class WrongAnswer(Exception):
    """A server answered something other than the in-process prediction."""


class RouteMissing(Exception):
    """The null route answered 404: the server has no such route (yet)."""


# -- results ---------------------------------------------------------------------------------
@dataclass(slots=True)
class Point:
    """One measured load point (one row of the table)."""

    model: str
    server: str
    route: str
    concurrency: int
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int | None = None
    peak_rss_mib: float | None = None
    note: str = ""


@dataclass(slots=True)
class ServerRun:
    """One server process for one model: start-up, memory, and why it was skipped if it was."""

    model: str
    server: str
    ready_s: float | None = None
    idle_rss_mib: float | None = None
    peak_rss_mib: float | None = None
    note: str = ""
    wrong_answer: bool = False
    points: list[Point] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Check:
    """One target: a value, how it compares, and whether it passed."""

    name: str
    value: float | None
    unit: str
    target: str
    passed: bool | None
    note: str = ""
    reference: bool = False
    """A reading to judge a target by, not a target (never fails the run)."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What one run does (from the command line)."""

    concurrencies: tuple[int, ...]
    grpc_concurrencies: tuple[int, ...]
    seconds: float
    warmup: float
    grpc_seconds: float
    repeat: int
    servers: frozenset[str]
    grpc: bool
    mlserver_batch_time: float
    models: tuple[str, ...]
    standin: bool


# -- models ----------------------------------------------------------------------------------
@dataclass(slots=True)
class BenchModel:
    name: str
    model: Any
    X: np.ndarray
    row: np.ndarray  # the one row every request sends
    check_rows: np.ndarray  # rows whose answers are checked before timing
    raw_predict_ms: float = 0.0


def train_models(names: tuple[str, ...]) -> list[BenchModel]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    makers: dict[str, Callable[[], Any]] = {
        "cancer-logreg": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "cancer-forest": lambda: RandomForestClassifier(n_estimators=100, random_state=0),
    }
    # The benchmark row, then two rows of each class.
    check_idx = [0, *np.flatnonzero(y == 0)[1:3], *np.flatnonzero(y == 1)[:2]]
    models = []
    for name in names:
        model = makers[name]().fit(X, y)
        models.append(BenchModel(name, model, X, X[:1].copy(), X[check_idx].copy()))
    return models


def measure_raw_predict(bm: BenchModel, calls: int = 1000) -> float:
    """Median milliseconds of ``predict`` on one row, pinned to the server core."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(SERVER_CORE)})
    try:
        for _ in range(100):
            bm.model.predict(bm.row)
        samples = []
        for _ in range(calls):
            start = time.perf_counter_ns()
            bm.model.predict(bm.row)
            samples.append(time.perf_counter_ns() - start)
    finally:
        os.sched_setaffinity(0, before)
    return statistics.median(samples) / 1e6


def save_for_modelyard(models: list[BenchModel], home: Path) -> None:
    from modelyard import Client
    from modelyard.settings import Settings

    with Client(Settings(home=home, user="bench")) as client:
        for bm in models:
            client.register(bm.model, bm.name, data=bm.X, alias="production")


def save_for_mlserver(bm: BenchModel, repo: Path, max_batch_time: float) -> None:
    import joblib

    folder = repo / bm.name
    folder.mkdir(parents=True)
    joblib.dump(bm.model, folder / "model.joblib")
    settings = {
        "name": bm.name,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "max_batch_size": MLSERVER_MAX_BATCH_SIZE,
        "max_batch_time": max_batch_time,
        "parameters": {"uri": "./model.joblib", "version": "v1"},
    }
    (folder / "model-settings.json").write_text(json.dumps(settings, indent=2))


def save_for_mlflow(bm: BenchModel, path: Path) -> None:
    import mlflow.sklearn
    import skops.io as sio
    from mlflow.models import infer_signature

    mlflow.sklearn.save_model(
        bm.model,
        str(path),
        serialization_format="skops",
        skops_trusted_types=sio.get_untrusted_types(data=sio.dumps(bm.model)),
        signature=infer_signature(bm.X, bm.model.predict(bm.X)),
        pip_requirements=[],
    )


# -- request bodies and answers ----------------------------------------------------------------
def oip_body(rows: np.ndarray) -> bytes:
    tensor = {
        "name": "input",
        "shape": list(rows.shape),
        "datatype": "FP64",
        "data": rows.ravel().tolist(),
    }
    return json.dumps({"inputs": [tensor]}).encode()


def invocations_body(rows: np.ndarray) -> bytes:
    return json.dumps({"inputs": rows.tolist()}).encode()


def oip_answer(doc: Any) -> list[Any]:
    return list(doc["outputs"][0]["data"])


def invocations_answer(doc: Any) -> list[Any]:
    return list(doc["predictions"])


@dataclass(frozen=True, slots=True)
class Route:
    """One URL of one server, with how to ask it and how to read its answer."""

    label: str
    path: str
    body: Callable[[np.ndarray], bytes]
    answer: Callable[[Any], list[Any]] | None  # None: fixed answer, only the status is checked


def oip_route(name: str, label: str = "OIP v2") -> Route:
    return Route(label, f"/v2/models/{name}/infer", oip_body, oip_answer)


INVOCATIONS = Route("/invocations", "/invocations", invocations_body, invocations_answer)
NULL = Route("null", "/v2/null", oip_body, None)


def _post(url: str, body: bytes, timeout: float = 30.0) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def check_answers(base: str, route: Route, bm: BenchModel) -> None:
    """Every check row, one request each, must get exactly the in-process prediction."""
    if route.answer is None:
        status, body = _post(base + route.path, route.body(bm.row))
        if status == 404:
            raise RouteMissing(f"no {route.path} route yet (404)")
        if status // 100 != 2:
            raise WrongAnswer(f"{route.path} answered {status}: {body[:200]!r}")
        return
    for row in bm.check_rows:
        rows = row.reshape(1, -1)
        status, body = _post(base + route.path, route.body(rows))
        if status // 100 != 2:
            raise WrongAnswer(f"{route.path} answered {status}: {body[:300]!r}")
        got = np.asarray(route.answer(json.loads(body)), dtype=np.float64).ravel()
        expected = np.asarray(bm.model.predict(rows), dtype=np.float64).ravel()
        if not np.array_equal(got, expected):
            raise WrongAnswer(
                f"{route.path} answered {got.tolist()} where the model predicts "
                f"{expected.tolist()} (body {body[:200]!r})"
            )


# -- processes -------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_kib(pid: int, key: str) -> int:
    """Sum of ``key`` (``VmRSS`` or ``VmHWM``, KiB) over ``pid`` and all its descendants."""
    tree = _children()
    todo, total = [pid], 0
    while todo:
        p = todo.pop()
        todo.extend(tree.get(p, []))
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1])
    return total


@dataclass(slots=True)
class Server:
    """A started server process (its own process group) and where it answers."""

    proc: subprocess.Popen[bytes]
    base: str
    log: Path
    grpc: str | None = None
    ready_s: float = 0.0

    def rss_mib(self, key: str) -> float:
        return tree_kib(self.proc.pid, key) / 1024

    def log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text[-lines:])


@contextlib.contextmanager
def running(
    cmd: list[str], *, env: dict[str, str], base: str, ready_path: str, log: Path, cwd: Path
) -> Iterator[Server]:
    """Start ``cmd`` pinned to the server core, wait until ready, always stop it afterwards."""
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **env, **THREAD_ENV, **QUIET_ENV}
    # The command's own bin folder first: mlflow runs ``uvicorn`` from PATH.
    full_env["PATH"] = f"{Path(cmd[0]).parent}{os.pathsep}{full_env.get('PATH', '')}"
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *cmd],
            env=full_env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() reaches every child
        )
    server = Server(proc, base, log)
    try:
        server.ready_s = _wait_ready(server, base + ready_path, started) - started
        yield server
    finally:
        stop(proc)


def _wait_ready(server: Server, url: str, started: float) -> float:
    while time.perf_counter() - started < READY_TIMEOUT_S:
        if server.proc.poll() is not None:
            raise Unavailable(f"exited with status {server.proc.returncode}: {server.log_tail()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1.0) as response:
            if response.status == 200:
                return time.perf_counter()
        time.sleep(0.02)
    raise Unavailable(f"not ready after {READY_TIMEOUT_S:.0f} s: {server.log_tail()}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it after 10 s."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    # Children may outlive the leader: whatever is left of the group gets SIGKILL.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


# -- load generators -------------------------------------------------------------------------
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wrk(url: str, script: Path, concurrency: int, seconds: float) -> dict[str, float]:
    """One wrk run pinned to the load core; requests, req/s, p50/p99 ms and errors."""
    cmd = [
        "taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s",
        f"--timeout={WRK_TIMEOUT}", "-s", str(script), url,
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {(done.stderr or done.stdout)[-300:]}")
    s = json.loads(line.removeprefix("BENCH_JSON "))
    errors = s["connect"] + s["read"] + s["write"] + s["status"] + s["timeout"]
    return {
        "requests": s["requests"],
        "rps": s["requests"] / (s["duration_us"] / 1e6),
        "p50_ms": s["p50_us"] / 1e3,
        "p99_ms": s["p99_us"] / 1e3,
        "errors": errors,
    }


def grpc_load(
    target: str, bm: BenchModel, concurrency: int, plan: Plan, work: Path
) -> dict[str, Any]:
    """One gRPC point from ``grpc_load.py`` in its own process, pinned to the load core."""
    row_file = work / f"{bm.name}-row.json"
    row_file.write_text(json.dumps(bm.row.ravel().tolist()))
    expected = int(np.asarray(bm.model.predict(bm.row)).ravel()[0])
    cmd = [
        "taskset", "-c", LOAD_CORE, sys.executable, str(HERE / "grpc_load.py"),
        "--url", target, "--model", bm.name, "--row-file", str(row_file),
        "--expect", str(expected), "--concurrency", str(concurrency),
        "--seconds", f"{plan.grpc_seconds:g}", "--warmup", f"{min(plan.warmup, 1.0):g}",
    ]  # fmt: skip
    env = {**os.environ, **THREAD_ENV}
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=plan.grpc_seconds + 60, env=env, check=False
    )
    try:
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))
    except (IndexError, ValueError):
        return {"error": f"grpc_load.py failed ({done.returncode}): {done.stderr[-300:]}"}


def _median_runs(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def http_points(
    server: Server, route: Route, bm: BenchModel, plan: Plan, work: Path, label: str
) -> list[Point]:
    """Check the route's answers, then one wrk point per concurrency."""
    check_answers(server.base, route, bm)
    script = work / f"{label}-{bm.name}-{route.label.strip('/').replace(' ', '_')}.lua"
    script.write_text(WRK_SCRIPT.format(body=route.body(bm.row).decode()))
    url = server.base + route.path
    points = []
    for c in plan.concurrencies:
        console.print(f"  {bm.name} · {label} · {route.label} · c={c}")
        if plan.warmup > 0:
            wrk(url, script, c, plan.warmup)
        stats = _median_runs([wrk(url, script, c, plan.seconds) for _ in range(plan.repeat)])
        points.append(
            Point(
                bm.name,
                label,
                route.label,
                c,
                rps=stats["rps"],
                p50_ms=stats["p50_ms"],
                p99_ms=stats["p99_ms"],
                errors=int(stats["errors"]),
                peak_rss_mib=server.rss_mib("VmHWM"),
            )
        )
    return points


def grpc_points(server: Server, bm: BenchModel, plan: Plan, work: Path, label: str) -> list[Point]:
    """gRPC load points against ``server.grpc`` (kept apart: a Python client, not wrk)."""
    points = []
    for c in plan.grpc_concurrencies:
        console.print(f"  {bm.name} · {label} · gRPC · c={c}")
        runs = [grpc_load(str(server.grpc), bm, c, plan, work) for _ in range(plan.repeat)]
        failed = next((r for r in runs if "error" in r), None)
        if failed is not None:
            if str(failed["error"]).startswith("wrong answer"):
                raise WrongAnswer(f"gRPC {failed['error']}")
            points.append(Point(bm.name, label, "gRPC", c, note=str(failed["error"])))
            continue
        stats = _median_runs([{k: float(v) for k, v in r.items()} for r in runs])
        points.append(
            Point(
                bm.name,
                label,
                "gRPC",
                c,
                rps=stats["rps"],
                p50_ms=stats["p50_ms"],
                p99_ms=stats["p99_ms"],
                errors=int(stats["errors"]),
                peak_rss_mib=server.rss_mib("VmHWM"),
            )
        )
    return points


# -- peer environments -----------------------------------------------------------------------
def _pkg(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def ensure_env(name: str, requirements: list[str], probe: list[str]) -> Path:
    """``bench/.envs/NAME`` with ``requirements`` installed (cached by a stamp file)."""
    env = ENVS / name
    stamp = env / ".bench-requirements"
    wanted = "\n".join(requirements) + "\n"
    if stamp.exists() and stamp.read_text() == wanted:
        return env
    if env.exists():
        shutil.rmtree(env)
    ENVS.mkdir(parents=True, exist_ok=True)
    with console.status(f"creating bench/.envs/{name}: pip install {' '.join(requirements)}"):
        steps = [
            [sys.executable, "-m", "venv", str(env)],
            [str(env / "bin" / "python"), "-m", "pip", "install", "--quiet", *requirements],
            [str(env / "bin" / probe[0]), *probe[1:]],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, check=False, timeout=900)
            if done.returncode != 0:
                shutil.rmtree(env, ignore_errors=True)
                lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
                raise Unavailable(f"{' '.join(step[:4])}... failed: {lines[-1][:200]}")
    stamp.write_text(wanted)
    console.print(f"[green]created bench/.envs/{name}")
    return env


def mlserver_env() -> Path:
    requirements = [
        f"mlserver=={MLSERVER_VERSION}",
        f"mlserver-sklearn=={MLSERVER_VERSION}",
        "uvloop<0.22",  # MLServer's workers crash with uvloop>=0.22 ("no current event loop")
        f"scikit-learn=={_pkg('scikit-learn')}",  # the joblib files come from this venv
        f"joblib=={_pkg('joblib')}",
    ]
    return ensure_env("mlserver", requirements, ["mlserver", "--version"])


def mlflow_bin() -> Path:
    """This venv's ``mlflow`` when it is 3.17 and can serve, else ``bench/.envs/mlflow``."""
    ours = VENV_BIN / "mlflow"
    if _pkg("mlflow").startswith(MLFLOW_SPEC + ".") and ours.exists():
        probe = subprocess.run(
            [str(ours), "models", "serve", "--help"], capture_output=True, check=False, timeout=120
        )
        if probe.returncode == 0:
            return ours
    requirements = [
        f"mlflow=={MLFLOW_SPEC}.*",
        f"scikit-learn=={_pkg('scikit-learn')}",
        f"skops=={_pkg('skops')}",
    ]
    return ensure_env("mlflow", requirements, ["mlflow", "--version"]) / "bin" / "mlflow"


# -- one server, one model -------------------------------------------------------------------
@dataclass(slots=True)
class Context:
    plan: Plan
    work: Path
    home: Path
    envs: dict[str, Path | Exception]


def _selected(plan: Plan, key: str) -> bool:
    return key in plan.servers


def bench_modelyard(bm: BenchModel, ctx: Context, first_model: bool) -> list[ServerRun]:
    plan = ctx.plan
    label = "stand-in" if plan.standin else "modelyard"
    routes: list[tuple[str, Route, str]] = []
    if _selected(plan, "modelyard"):
        routes.append(("modelyard", oip_route(bm.name), label))
    if _selected(plan, "modelyard-invocations"):
        routes.append(("modelyard-invocations", INVOCATIONS, label))
    if _selected(plan, "null") and first_model:
        routes.append(("null", NULL, f"{label} null"))
    want_grpc = plan.grpc and _selected(plan, "modelyard")
    if not routes and not want_grpc:
        return []
    port, grpc_port = free_port(), free_port()
    if plan.standin:
        cmd = [sys.executable, str(HERE / "standin.py")]
    else:
        cmd = [str(VENV_BIN / "modelyard"), "serve"]
    cmd += [
        f"models:/{bm.name}@production", "--host", "127.0.0.1",
        "--port", str(port), "--grpc-port", str(grpc_port),
    ]  # fmt: skip
    runs = {lbl: ServerRun(bm.name, lbl) for _, _, lbl in routes}
    main_run = runs.setdefault(label, ServerRun(bm.name, label))
    try:
        with running(
            cmd,
            env={"MODELYARD_HOME": str(ctx.home), "MODELYARD_USER": "bench",
                 "MODELYARD_SERVING__NULL_ROUTE": "true"},
            base=f"http://127.0.0.1:{port}",
            ready_path="/v2/health/ready",
            log=LOGS / f"{label}-{bm.name}.log",
            cwd=ROOT,
        ) as server:
            server.grpc = f"127.0.0.1:{grpc_port}"
            idle = server.rss_mib("VmRSS")
            for run in runs.values():
                run.ready_s, run.idle_rss_mib = server.ready_s, idle
            for _, route, lbl in routes:
                try:
                    runs[lbl].points += http_points(server, route, bm, plan, ctx.work, lbl)
                except WrongAnswer as exc:
                    _wrong(runs[lbl], exc)
                except RouteMissing as exc:
                    runs[lbl].note = str(exc)
            if want_grpc:
                if plan.standin:
                    main_run.points.append(
                        Point(bm.name, label, "gRPC", 0, note="the stand-in has no gRPC")
                    )
                else:
                    try:
                        main_run.points += grpc_points(server, bm, plan, ctx.work, label)
                    except WrongAnswer as exc:
                        _wrong(main_run, exc)
            peak = server.rss_mib("VmHWM")
            for run in runs.values():
                run.peak_rss_mib = peak
    except Unavailable as exc:
        reason = "stand-in failed" if plan.standin else "modelyard serve not available yet"
        for run in runs.values():
            run.note = f"{reason}: {exc}"
    return [r for r in runs.values() if r.points or r.note]


def bench_modelyard_log_off(bm: BenchModel, ctx: Context) -> ServerRun | None:
    """The same server with the inference log off, at the top concurrency only: the price of
    logging every prediction."""
    plan = ctx.plan
    if plan.standin or not _selected(plan, "modelyard-nolog"):
        return None
    top = dataclasses.replace(plan, concurrencies=(max(plan.concurrencies),))
    return _modelyard_variant(bm, ctx, LOG_OFF, ["--no-log"], "log-off", top)


def bench_modelyard_onnx(bm: BenchModel, ctx: Context) -> ServerRun | None:
    """The same version served through its verified ONNX export (``modelyard export onnx``,
    then ``serve --prefer-onnx``): no scikit-learn in the server process."""
    plan = ctx.plan
    if plan.standin or not _selected(plan, "modelyard-onnx"):
        return None
    exported = subprocess.run(
        [str(VENV_BIN / "modelyard"), "export", "onnx", f"models:/{bm.name}@production"],
        env={**os.environ, **_modelyard_env(ctx)}, capture_output=True, text=True,
        check=False, cwd=ROOT)
    if exported.returncode != 0:
        run = ServerRun(bm.name, ONNX)
        run.note = f"export failed: {(exported.stderr or exported.stdout).strip()[-200:]}"
        return run
    return _modelyard_variant(bm, ctx, ONNX, ["--prefer-onnx"], "onnx", plan)


def bench_floor(bm: BenchModel, ctx: Context) -> list[ServerRun]:
    """``standin.py``, a bare batching ASGI app on the same HTTP stack, with its own null
    route, at the top concurrency: how close a Python server on this stack can come to its
    null route here at all (the reference for the 0.6 target), and how far modelyard is from
    the least any batching server does per request."""
    plan = ctx.plan
    if plan.standin or not _selected(plan, "floor"):
        return []
    top = dataclasses.replace(plan, concurrencies=(max(plan.concurrencies),))
    port = free_port()
    cmd = [sys.executable, str(HERE / "standin.py"), f"models:/{bm.name}@production",
           "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    run, null = ServerRun(bm.name, FLOOR), ServerRun(bm.name, f"{FLOOR} null")
    _measure_server(bm, ctx, cmd, port, [(run, oip_route(bm.name)), (null, NULL)],
                    f"floor-{bm.name}", top, "stand-in failed")
    return [r for r in (run, null) if r.points or r.note]


def _modelyard_env(ctx: Context) -> dict[str, str]:
    return {"MODELYARD_HOME": str(ctx.home), "MODELYARD_USER": "bench"}


def _modelyard_variant(bm: BenchModel, ctx: Context, label: str, flags: list[str],
                       log_name: str, plan: Plan) -> ServerRun:
    """``modelyard serve`` with extra ``flags``, measured on the OIP v2 route."""
    port = free_port()
    cmd = [str(VENV_BIN / "modelyard"), "serve", f"models:/{bm.name}@production",
           "--host", "127.0.0.1", "--port", str(port), "--no-grpc", *flags]  # fmt: skip
    run = ServerRun(bm.name, label)
    _measure_server(bm, ctx, cmd, port, [(run, oip_route(bm.name))], f"{log_name}-{bm.name}",
                    plan, f"modelyard {' '.join(flags)} failed")
    return run


def _measure_server(bm: BenchModel, ctx: Context, cmd: list[str], port: int,
                    routes: list[tuple[ServerRun, Route]], log_name: str, plan: Plan,
                    failure: str) -> None:
    """Start ``cmd`` (listening on ``port``), measure each run's route on it in turn, and
    give every run the server's start-up time and memory. A server that does not start
    notes ``failure`` in the first run; a wrong answer marks the run that got it."""
    current = routes[0][0]
    try:
        with running(
            cmd,
            env=_modelyard_env(ctx),
            base=f"http://127.0.0.1:{port}",
            ready_path="/v2/health/ready",
            log=LOGS / f"{log_name}.log",
            cwd=ROOT,
        ) as server:
            idle = server.rss_mib("VmRSS")
            for current, route in routes:
                current.ready_s, current.idle_rss_mib = server.ready_s, idle
                current.points += http_points(server, route, bm, plan, ctx.work,
                                              current.server)
            peak = server.rss_mib("VmHWM")
            for run, _ in routes:
                run.peak_rss_mib = peak
    except Unavailable as exc:
        current.note = f"{failure}: {exc}"
    except WrongAnswer as exc:
        _wrong(current, exc)


def bench_mlserver(bm: BenchModel, ctx: Context, workers: int) -> ServerRun | None:
    key = "mlserver" if workers == 1 else "mlserver-inproc"
    if not _selected(ctx.plan, key):
        return None
    label = f"MLServer pw={workers}"
    run = ServerRun(bm.name, label)
    env = ctx.envs.get("mlserver")
    if not isinstance(env, Path):
        run.note = f"peer unavailable: {env}"
        return run
    repo = ctx.work / "mlserver" / bm.name
    port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    settings = {
        "debug": False,
        "parallel_workers": workers,
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
    }
    (repo / "settings.json").write_text(json.dumps(settings, indent=2))
    try:
        with running(
            [str(env / "bin" / "mlserver"), "start", str(repo)],
            env={},
            base=f"http://127.0.0.1:{port}",
            ready_path=f"/v2/models/{bm.name}/ready",
            log=LOGS / f"mlserver-pw{workers}-{bm.name}.log",
            cwd=repo,
        ) as server:
            server.grpc = f"127.0.0.1:{grpc_port}"
            run.ready_s, run.idle_rss_mib = server.ready_s, server.rss_mib("VmRSS")
            try:
                run.points += http_points(server, oip_route(bm.name), bm, ctx.plan, ctx.work, label)
                if ctx.plan.grpc:
                    run.points += grpc_points(server, bm, ctx.plan, ctx.work, label)
            except WrongAnswer as exc:
                _wrong(run, exc)
            run.peak_rss_mib = server.rss_mib("VmHWM")
    except Unavailable as exc:
        run.note = f"peer unavailable: {exc}"
    return run


def bench_mlflow(bm: BenchModel, ctx: Context) -> ServerRun | None:
    if not _selected(ctx.plan, "mlflow"):
        return None
    run = ServerRun(bm.name, "mlflow serve")
    mlflow = ctx.envs.get("mlflow")
    if not isinstance(mlflow, Path):
        run.note = f"peer unavailable: {mlflow}"
        return run
    port = free_port()
    cmd = [
        str(mlflow), "models", "serve", "-m", str(ctx.work / "mlflow" / bm.name),
        "--env-manager", "local", "-w", "1", "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    try:
        with running(
            cmd,
            env={"UVICORN_ACCESS_LOG": "false"},
            base=f"http://127.0.0.1:{port}",
            ready_path="/ping",
            log=LOGS / f"mlflow-{bm.name}.log",
            cwd=ctx.work,
        ) as server:
            run.ready_s, run.idle_rss_mib = server.ready_s, server.rss_mib("VmRSS")
            try:
                run.points += http_points(server, INVOCATIONS, bm, ctx.plan, ctx.work, run.server)
            except WrongAnswer as exc:
                _wrong(run, exc)
            run.peak_rss_mib = server.rss_mib("VmHWM")
    except Unavailable as exc:
        run.note = f"peer unavailable: {exc}"
    return run


def _wrong(run: ServerRun, exc: Exception) -> None:
    run.wrong_answer = True
    run.note = f"WRONG ANSWER: {exc}"
    console.print(f"[bold red]{escape(run.server)} / {run.model}: {escape(str(exc))}")


# -- targets and report ----------------------------------------------------------------------
def _point(runs: list[ServerRun], model: str, server: str, route: str, c: int) -> Point | None:
    for run in runs:
        if run.server != server:
            continue
        for p in run.points:
            if (p.model, p.route, p.concurrency) == (model, route, c) and p.rps is not None:
                return p
    return None


def _check(name: str, value: float | None, unit: str, op: str, bound: float) -> Check:
    if value is None:
        return Check(name, None, unit, f"{op} {bound:g}", None, "not measured")
    passed = {">=": value >= bound, "<=": value <= bound, "<": value < bound}[op]
    return Check(name, value, unit, f"{op} {bound:g}", passed)


def evaluate(runs: list[ServerRun], models: list[BenchModel], plan: Plan) -> list[Check]:
    me = "stand-in" if plan.standin else "modelyard"
    top = max(plan.concurrencies)
    checks: list[Check] = []
    null = next(
        (p for r in runs for p in r.points if r.server == f"{me} null" and p.concurrency == top),
        None,
    )
    for bm in models:
        ours = _point(runs, bm.name, me, "OIP v2", top)
        peers = [
            p
            for s in ("MLServer pw=1", "MLServer pw=0")
            if (p := _point(runs, bm.name, s, "OIP v2", top)) is not None
        ]
        best = max(peers, key=lambda p: p.rps or 0.0) if peers else None
        want = TARGET_LOGREG_VS_MLSERVER if "logreg" in bm.name else TARGET_FOREST_VS_MLSERVER
        checks.append(
            _check(
                f"{bm.name} c={top}: {me} / best MLServer req/s",
                ours.rps / best.rps if ours and best and ours.rps and best.rps else None,
                "x",
                ">=",
                want,
            )
        )
        floor = _point(runs, bm.name, FLOOR, "OIP v2", top)
        floor_null = _point(runs, bm.name, f"{FLOOR} null", "null", top)
        if floor is not None and floor.rps and floor_null is not None and floor_null.rps:
            checks.append(Check(f"{bm.name} c={top}: {FLOOR} / its null route req/s",
                                floor.rps / floor_null.rps, "x", f">= {TARGET_VS_NULL:g}",
                                None, reference=True))
        if floor is not None and floor.rps and ours is not None and ours.rps:
            checks.append(Check(f"{bm.name} c={top}: {me} / {FLOOR} req/s",
                                ours.rps / floor.rps, "x", "1", None, reference=True))
        bare = next((r for r in runs if r.server == FLOOR and r.model == bm.name), None)
        if bare is not None and bare.points:
            checks.append(Check(f"{bm.name}: {FLOOR} idle RSS", bare.idle_rss_mib, "MiB",
                                f"< {TARGET_IDLE_RSS_MIB:g}", None, reference=True))
            checks.append(Check(f"{bm.name}: {FLOOR} ready after start", bare.ready_s, "s",
                                f"<= {TARGET_READY_S:g}", None, reference=True))
        if "logreg" in bm.name:
            checks.append(
                _check(
                    f"{bm.name} c={top}: {me} / null route req/s",
                    ours.rps / null.rps if ours and null and ours.rps and null.rps else None,
                    "x",
                    ">=",
                    TARGET_VS_NULL,
                )
            )
            checks.append(
                _check(
                    f"{bm.name} c={top}: {me} p99",
                    ours.p99_ms if ours else None,
                    "ms",
                    "<",
                    TARGET_P99_MS,
                )
            )
        ours1 = _point(runs, bm.name, me, "OIP v2", 1)
        checks.append(
            _check(
                f"{bm.name} c=1: {me} p50 - raw predict ({bm.raw_predict_ms:.3f} ms)",
                ours1.p50_ms - bm.raw_predict_ms if ours1 and ours1.p50_ms is not None else None,
                "ms",
                "<=",
                TARGET_OVERHEAD_MS,
            )
        )
        off = _point(runs, bm.name, LOG_OFF, "OIP v2", top)
        if off is not None:
            checks.append(
                _check(
                    f"{bm.name} c={top}: {me} log on / log off req/s",
                    ours.rps / off.rps if ours and ours.rps and off.rps else None,
                    "x",
                    ">=",
                    TARGET_LOG_ON_VS_OFF,
                )
            )
        run = next((r for r in runs if r.server == me and r.model == bm.name), None)
        checks.append(
            _check(
                f"{bm.name}: {me} idle RSS",
                run.idle_rss_mib if run else None,
                "MiB",
                "<",
                TARGET_IDLE_RSS_MIB,
            )
        )
        checks.append(
            _check(
                f"{bm.name}: {me} ready after start",
                run.ready_s if run else None,
                "s",
                "<=",
                TARGET_READY_S,
            )
        )
        twin = next((r for r in runs if r.server == ONNX and r.model == bm.name), None)
        if twin is not None and twin.points:
            checks.append(_check(f"{bm.name}: {ONNX} idle RSS", twin.idle_rss_mib, "MiB", "<",
                                 TARGET_IDLE_RSS_MIB))
            checks.append(_check(f"{bm.name}: {ONNX} ready after start", twin.ready_s, "s",
                                 "<=", TARGET_READY_S))
            twin1 = _point(runs, bm.name, ONNX, "OIP v2", 1)
            checks.append(_check(
                f"{bm.name} c=1: {ONNX} p50 - raw predict ({bm.raw_predict_ms:.3f} ms)",
                twin1.p50_ms - bm.raw_predict_ms if twin1 and twin1.p50_ms is not None else None,
                "ms", "<=", TARGET_OVERHEAD_MS))
    return checks


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def render_points(runs: list[ServerRun]) -> Table:
    table = Table(title="modelyard serving benchmark (single-row requests, one server core)")
    for col in ("model", "server", "route", "c", "req/s", "p50 ms", "p99 ms", "errors", "peak MiB"):
        table.add_column(col, justify="left" if col in {"model", "server", "route"} else "right")
    for run in runs:
        if run.note and not run.points:
            style = "red" if run.wrong_answer else "yellow"
            table.add_row(run.model, run.server, f"[{style}]{escape(run.note[:150])}", *[""] * 6)
            continue
        for p in run.points:
            if p.rps is None:
                c = str(p.concurrency) if p.concurrency else ""
                table.add_row(p.model, p.server, p.route, c, f"[yellow]{escape(p.note[:150])}")
                continue
            table.add_row(
                p.model,
                p.server,
                p.route,
                str(p.concurrency),
                _num(p.rps),
                _num(p.p50_ms, 2),
                _num(p.p99_ms, 2),
                f"[red]{p.errors}" if p.errors else "0",
                _num(p.peak_rss_mib),
            )
        if run.note:
            table.add_row(run.model, run.server, f"[red]{escape(run.note[:150])}", *[""] * 6)
    return table


def render_servers(runs: list[ServerRun], models: list[BenchModel]) -> Table:
    table = Table(title="server processes (RSS of the whole process tree)")
    for col in ("model", "server", "ready s", "idle RSS MiB", "peak RSS MiB", "raw predict ms"):
        table.add_column(col, justify="left" if col in {"model", "server"} else "right")
    raw = {bm.name: bm.raw_predict_ms for bm in models}
    for run in runs:
        if run.ready_s is None:
            continue
        table.add_row(
            run.model,
            run.server,
            f"{run.ready_s:.2f}",
            _num(run.idle_rss_mib),
            _num(run.peak_rss_mib),
            f"{raw[run.model]:.3f}",
        )
    return table


def render_checks(checks: list[Check]) -> Table:
    table = Table(title="targets (issue 3)")
    for col in ("check", "value", "target", "result"):
        table.add_column(col, justify="left" if col == "check" else "right")
    for c in checks:
        verdict = "[cyan]reference" if c.reference else {
            True: "[green]pass", False: "[red]FAIL", None: "[yellow]n/a"}[c.passed]
        value = f"{_num(c.value, 2)} {c.unit}" if c.value is not None else c.note
        table.add_row(c.name, value, f"{c.target} {c.unit}", verdict)
    return table


def write_json(
    runs: list[ServerRun],
    models: list[BenchModel],
    checks: list[Check],
    plan: Plan,
    seconds: float,
    load: dict[str, float],
) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "serving",
        "finished_at": datetime.now(UTC).isoformat(),
        "seconds": round(seconds, 1),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "server_core": SERVER_CORE,
            "load_core": LOAD_CORE,
            "load_average_1min": load,
        },
        "versions": {
            p: _pkg(p) for p in ("modelyard", "mlflow", "scikit-learn", "uvicorn", "tritonclient")
        }
        | {"mlserver": MLSERVER_VERSION},
        "plan": {**asdict(plan), "servers": sorted(plan.servers)},
        "raw_predict_ms": {bm.name: bm.raw_predict_ms for bm in models},
        "servers": [asdict(r) for r in runs],
        "checks": [asdict(c) for c in checks],
    }
    RESULTS.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


# -- main ------------------------------------------------------------------------------------
ALL_KEYS = (
    "modelyard", "modelyard-invocations", "null", "modelyard-nolog", "modelyard-onnx",
    "floor", "mlserver", "mlserver-inproc", "mlflow",
)  # fmt: skip


def _parse_only(text: str | None) -> frozenset[str]:
    if not text:
        return frozenset(ALL_KEYS)
    names = {n.strip() for n in text.split(",") if n.strip()}
    unknown = {n for n in names if not any(k == n or k.startswith(n + "-") for k in ALL_KEYS)}
    if unknown:
        raise SystemExit(f"--only: unknown {sorted(unknown)}; choose from {', '.join(ALL_KEYS)}")
    return frozenset(k for k in ALL_KEYS if any(k == n or k.startswith(n + "-") for n in names))


def parse_args(argv: list[str] | None) -> Plan:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        epilog=f"--only takes any of: {', '.join(ALL_KEYS)} (a prefix selects a family: "
        "'mlserver' is both MLServer configurations, 'modelyard' both modelyard routes)",
    )
    parser.add_argument("--quick", action="store_true", help="c=1 and 64 only, 3 s runs")
    parser.add_argument("--only", help="comma-separated servers to run (see below)")
    parser.add_argument("--models", default="cancer-logreg,cancer-forest")
    parser.add_argument("--seconds", type=float, help="measured seconds per point")
    parser.add_argument("--repeat", type=int, default=1, help="runs per point (median)")
    parser.add_argument("--no-grpc", action="store_true", help="skip the gRPC points")
    parser.add_argument(
        "--mlserver-batch-ms", type=float, default=2.0, help="MLServer's max_batch_time (ms)"
    )
    parser.add_argument(
        "--standin", action="store_true", help="bench/serving/standin.py instead of modelyard serve"
    )
    args = parser.parse_args(argv)
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    for m in models:
        if m not in {"cancer-logreg", "cancer-forest"}:
            raise SystemExit(f"--models: unknown {m!r}")
    quick = args.quick
    return Plan(
        concurrencies=(1, 64) if quick else (1, 16, 64),
        grpc_concurrencies=(64,) if quick else (16, 64),
        seconds=args.seconds or (3.0 if quick else 8.0),
        warmup=1.0 if quick else 2.0,
        grpc_seconds=3.0 if quick else 5.0,
        repeat=max(1, args.repeat),
        servers=_parse_only(args.only),
        grpc=not args.no_grpc,
        mlserver_batch_time=args.mlserver_batch_ms / 1e3,
        models=models,
        standin=args.standin,
    )


def _on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every ``finally``: servers are stopped


def peer_envs(plan: Plan) -> dict[str, Path | Exception]:
    """The peers' environments (created on first use), or why one is unavailable."""
    envs: dict[str, Path | Exception] = {}
    wanted: list[tuple[str, Callable[[], Path]]] = []
    if plan.servers & {"mlserver", "mlserver-inproc"}:
        wanted.append(("mlserver", mlserver_env))
    if "mlflow" in plan.servers:
        wanted.append(("mlflow", mlflow_bin))
    for name, make in wanted:
        try:
            envs[name] = make()
        except (Unavailable, OSError, subprocess.SubprocessError) as exc:
            envs[name] = exc
            console.print(f"[yellow]{name} unavailable: {escape(str(exc))}")
    return envs


def main(argv: list[str] | None = None) -> int:
    plan = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    if shutil.which("wrk") is None:
        console.print("[red]wrk is not installed: apt-get install -y wrk")
        return 2
    if len(os.sched_getaffinity(0)) < 2:
        console.print("[red]needs two CPU cores (server on core 0, load on core 1)")
        return 2
    began = time.perf_counter()
    load_before = os.getloadavg()[0]
    if load_before > 0.5:
        console.print(
            f"[yellow]load average {load_before:.2f} before starting: something else is running "
            "on this machine, expect noisy numbers (--repeat 3 takes medians)"
        )
    envs = peer_envs(plan)

    with console.status("training and saving the models"):
        models = train_models(plan.models)
    for bm in models:
        bm.raw_predict_ms = measure_raw_predict(bm)
        console.print(f"raw predict {bm.name}, 1 row: {bm.raw_predict_ms:.3f} ms (median of 1000)")

    runs: list[ServerRun] = []
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-serving-") as tmp:
        work = Path(tmp)
        ctx = Context(plan, work, work / "home", envs)
        with console.status("saving the models for every server"):
            if plan.servers & {"modelyard", "modelyard-invocations", "null", "modelyard-nolog",
                                "modelyard-onnx", "floor"}:
                save_for_modelyard(models, ctx.home)
            for bm in models:
                if isinstance(envs.get("mlserver"), Path):
                    save_for_mlserver(bm, work / "mlserver" / bm.name, plan.mlserver_batch_time)
                if isinstance(envs.get("mlflow"), Path):
                    save_for_mlflow(bm, work / "mlflow" / bm.name)
        for i, bm in enumerate(models):
            console.rule(bm.name)
            runs += bench_modelyard(bm, ctx, first_model=i == 0)
            if (run := bench_modelyard_log_off(bm, ctx)) is not None:
                runs.append(run)
            if (run := bench_modelyard_onnx(bm, ctx)) is not None:
                runs.append(run)
            if i == 0:
                runs += bench_floor(bm, ctx)
            for workers in (1, 0):
                if (run := bench_mlserver(bm, ctx, workers)) is not None:
                    runs.append(run)
            if (run := bench_mlflow(bm, ctx)) is not None:
                runs.append(run)

    checks = evaluate(runs, models, plan)
    console.print(render_points(runs))
    console.print(render_servers(runs, models))
    console.print(render_checks(checks))
    load = {"before": load_before, "after": os.getloadavg()[0]}
    write_json(runs, models, checks, plan, time.perf_counter() - began, load)
    console.print(f"results: {RESULTS.relative_to(ROOT)}; server logs: {LOGS.relative_to(ROOT)}/")
    failed = any(r.wrong_answer for r in runs) or any(c.passed is False for c in checks)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
