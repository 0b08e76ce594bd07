"""What the inference log costs a busy server: log on against log off, interleaved.

Run it with ``make bench-log`` (or ``.venv/bin/python bench/serving/log_overhead.py``;
``--rounds``, ``--seconds``, ``--concurrency``, ``--help``). It prints one table and writes
``bench/results/log_overhead.json``.

Why a benchmark of its own: the main serving benchmark (``run.py``) measures each server in
its own time slot, and on a shared 2-core machine the load of the moment moved the log on/off
ratio between 0.75 and 1.10 from one run to the next. Here both servers run at once, pinned
to the same server core, and wrk (pinned to the other core) alternates between them: round
*i* measures log on and then log off (and the next round the other way round), so slow
moments of the machine hit both alike. The ratio reported is the median over rounds of
``on / off`` req/s.

Both servers serve the same registered ``cancer-logreg`` (``run.py``'s model: a scaler and a
logistic regression on breast_cancer) on OIP v2 with single-row JSON requests, as the issue's
target reads: throughput at concurrency 64 with logging on within 10% of logging off. The
log-on server writes Parquet under ``MODELYARD_HOME`` with the default settings (every
request logged, flushed every second); at the end, the rows it wrote are counted against the
requests it answered, so a log that silently drops is caught.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from rich.table import Table  # noqa: E402
from run import (  # noqa: E402
    LOGS,
    ROOT,
    TARGET_LOG_ON_VS_OFF,
    VENV_BIN,
    WRK_SCRIPT,
    Server,
    check_answers,
    console,
    free_port,
    oip_body,
    oip_route,
    running,
    save_for_modelyard,
    train_models,
    wrk,
)

RESULTS = ROOT / "bench" / "results" / "log_overhead.json"
MODEL = "cancer-logreg"
ON, OFF = "log on", "log off"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6, help="on/off pairs (default 6)")
    parser.add_argument("--seconds", type=float, default=5.0, help="each wrk run (default 5)")
    parser.add_argument("--warmup", type=float, default=2.0, help="per server (default 2)")
    parser.add_argument("--concurrency", type=int, default=64, help="connections (default 64)")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 2 s")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.warmup = 2, 2.0, 1.0
    return args


def logged_requests(home: Path) -> int:
    """Requests in the inference log under ``home`` (rows whose index in their request is 0),
    read through modelyard's own log store."""
    import pyarrow.compute as pc

    from modelyard.monitoring.log_store import open_log_store

    table = open_log_store(str(home / "logs")).read_inferences(MODEL)
    if table.num_rows == 0:
        return 0
    return int(pc.sum(pc.equal(table.column("row"), 0)).as_py() or 0)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bm = train_models((MODEL,))[0]
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-log-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        homes = {ON: work / "on", OFF: work / "off"}
        for home in homes.values():
            save_for_modelyard([bm], home)
        servers: dict[str, Server] = {}
        for label, flags in ((ON, []), (OFF, ["--no-log"])):
            port = free_port()
            servers[label] = stack.enter_context(running(
                [str(VENV_BIN / "modelyard"), "serve", f"models:/{MODEL}@production",
                 "--host", "127.0.0.1", "--port", str(port), "--no-grpc", *flags],
                env={"MODELYARD_HOME": str(homes[label]), "MODELYARD_USER": "bench"},
                base=f"http://127.0.0.1:{port}", ready_path="/v2/health/ready",
                log=LOGS / f"log-overhead-{label.replace(' ', '-')}.log", cwd=ROOT))
        route = oip_route(MODEL)
        script = work / "oip.lua"
        script.write_text(WRK_SCRIPT.format(body=oip_body(bm.row).decode()))
        for server in servers.values():
            check_answers(server.base, route, bm)
            wrk(server.base + route.path, script, args.concurrency, args.warmup)
        answered = dict.fromkeys(servers, 0)
        rounds: list[dict[str, dict[str, float]]] = []
        for i in range(args.rounds):
            order = (ON, OFF) if i % 2 == 0 else (OFF, ON)
            result: dict[str, dict[str, float]] = {}
            for label in order:
                result[label] = wrk(servers[label].base + route.path, script,
                                    args.concurrency, args.seconds)
                answered[label] += int(result[label]["requests"])
            rounds.append(result)
            console.print(f"round {i + 1}/{args.rounds}: on {result[ON]['rps']:,.0f} req/s, "
                          f"off {result[OFF]['rps']:,.0f} req/s, "
                          f"ratio {result[ON]['rps'] / result[OFF]['rps']:.3f}")
        rss = {label: server.rss_mib("VmHWM") for label, server in servers.items()}
        stack.close()  # SIGTERM: the log-on server flushes what it holds
        written = logged_requests(homes[ON])
    ratios = [r[ON]["rps"] / r[OFF]["rps"] for r in rounds]
    ratio = statistics.median(ratios)
    table = Table(title=f"Inference log overhead, {MODEL}, OIP v2, c={args.concurrency}, "
                        f"{args.rounds} interleaved rounds of {args.seconds:g} s")
    for column in ("server", "req/s (median)", "p50 ms", "p99 ms", "errors", "peak RSS MiB"):
        table.add_column(column, justify="left" if column == "server" else "right")
    for label in (ON, OFF):
        runs = [r[label] for r in rounds]
        table.add_row(label, f"{statistics.median(x['rps'] for x in runs):,.0f}",
                      f"{statistics.median(x['p50_ms'] for x in runs):.2f}",
                      f"{statistics.median(x['p99_ms'] for x in runs):.2f}",
                      str(int(sum(x['errors'] for x in runs))), f"{rss[label]:.0f}")
    console.print(table)
    passed = ratio >= TARGET_LOG_ON_VS_OFF
    # The warm-up and the answer checks are logged too: at least every measured request.
    complete = written >= answered[ON]
    colour = "green" if passed else "red"
    console.print(f"[{colour}]log on / log off = {ratio:.3f} (median of "
                  f"{', '.join(f'{r:.3f}' for r in ratios)}; target >= {TARGET_LOG_ON_VS_OFF})")
    console.print(f"[{'green' if complete else 'red'}]logged {written:,} requests; the log-on "
                  f"server answered {answered[ON]:,} measured requests (plus warm-up)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "model": MODEL, "concurrency": args.concurrency, "seconds": args.seconds,
        "rounds": rounds, "ratios": ratios, "ratio": ratio, "target": TARGET_LOG_ON_VS_OFF,
        "logged_requests": written, "answered_measured": answered[ON], "peak_rss_mib": rss,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count(),
    }, indent=2))
    return 0 if passed and complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
