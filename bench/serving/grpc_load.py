"""A small, bounded gRPC load generator for the serving benchmark (``run.py`` starts it).

``ghz`` is not a Debian package, so this is the gRPC counterpart of wrk: ``concurrency`` asyncio
tasks share one ``tritonclient.grpc.aio`` client (one HTTP/2 channel, as a real client would)
and each sends the same single-row ``ModelInfer`` request in a closed loop, waiting for every
answer before sending the next. The first answer is checked against ``--expect`` before
anything is timed; then ``--warmup`` seconds are discarded and ``--seconds`` are measured.
Every call has a timeout, so the run always ends. Prints one JSON object on stdout.

It is a Python client: on one core it tops out at a few thousand requests per second, so a
server faster than that is measured as "at least" this fast. run.py pins it to the load core.

    python bench/serving/grpc_load.py --url 127.0.0.1:8081 --model NAME --row-file row.json \
        --expect 1 --concurrency 64 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    import tritonclient.grpc.aio as grpcclient

    row = np.asarray(json.loads(Path(args.row_file).read_text()), dtype=np.float64)
    row = row.reshape(1, -1)
    tensor = grpcclient.InferInput(args.input_name, list(row.shape), "FP64")
    tensor.set_data_from_numpy(row)
    client = grpcclient.InferenceServerClient(url=args.url)
    try:
        first = await client.infer(args.model, [tensor], client_timeout=args.timeout)
        outputs = first.get_response().outputs
        got = first.as_numpy(outputs[0].name)
        if got is None or got.ravel().tolist() != [args.expect]:
            return {"error": f"wrong answer: got {got!r}, expected [{args.expect}]"}

        latencies: list[float] = []
        errors = 0
        measuring = False

        async def worker(deadline: float) -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                try:
                    await client.infer(args.model, [tensor], client_timeout=args.timeout)
                except Exception:
                    if measuring:
                        errors += 1
                    continue
                if measuring:
                    latencies.append(time.perf_counter() - start)

        if args.warmup > 0:
            deadline = time.perf_counter() + args.warmup
            await asyncio.gather(*(worker(deadline) for _ in range(args.concurrency)))
        measuring = True
        started = time.perf_counter()
        deadline = started + args.seconds
        await asyncio.gather(*(worker(deadline) for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        await client.close()

    lat = np.asarray(latencies) * 1e3 if latencies else np.asarray([np.nan])
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="host:port of the gRPC server")
    parser.add_argument("--model", required=True)
    parser.add_argument("--row-file", required=True, help="JSON list: the one row to send")
    parser.add_argument("--input-name", default="input")
    parser.add_argument("--expect", type=int, required=True, help="the expected prediction")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=10.0, help="per call, seconds")
    args = parser.parse_args()
    try:
        result = asyncio.run(_run(args))
    except Exception as exc:  # report, never hang: run.py shows the reason in its table
        result = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
    print(json.dumps(result))
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
