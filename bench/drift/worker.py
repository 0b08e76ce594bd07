"""One contender of the drift benchmark, in its own process: load, compute, report as JSON.

``python worker.py CONTENDER DATA_DIR`` reads ``reference.parquet``, ``current.parquet`` and
``columns.json`` from DATA_DIR, times the computation only (the load is not timed), and prints
one JSON line: seconds, peak RSS (``ru_maxrss``) after loading and at the end, and what it
computed. It runs under modelyard's virtualenv (``modelyard``, ``scipy``) and under
Evidently's (``evidently``), so it imports nothing from modelyard at module level.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

# One thread everywhere: the benchmark compares single-core work. Arrow allocates from the
# C allocator, which returns freed memory, rather than from mimalloc, which keeps it (~20 MiB
# at 100,000 rows); this applies to every contender, Evidently's pandas reads included.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "system"

import numpy as np  # noqa: E402

PSI_EPSILON = 1e-4  # modelyard's documented epsilon for empty bins
NUMERIC_BINS = 10  # modelyard's documented binning: reference deciles


def peak_mib() -> float:
    """Peak resident memory of this process: ``VmHWM`` of /proc/self/status.

    Not ``ru_maxrss``: Linux carries that over fork and exec, so a worker would report at
    least the RSS its parent (the benchmark, holding the generated data) had when it forked.
    ``VmHWM`` is the high-water mark of this process's own address space.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def load_columns(path: Path, categorical: list[str]) -> dict[str, np.ndarray]:
    """Parquet -> numpy columns: float64 straight from Arrow's buffer (no copy), categories as
    object arrays whose rows point at one shared string per category (8 bytes a row).

    One column at a time, without pre-buffering or reader threads: read so, the first column
    costs 8 MiB of reader set-up instead of 45, and only one column's decoding buffers exist
    at once. The buffers are wrapped with ``np.frombuffer``: pyarrow's ``to_numpy`` imports
    pandas (40 MiB), which modelyard does not need.
    """
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path, pre_buffer=False)
    out: dict[str, np.ndarray] = {}
    for name in file.schema_arrow.names:
        chunk = file.read(columns=[name], use_threads=False).column(0).combine_chunks()
        if chunk.null_count:
            raise ValueError(f"column {name!r} has nulls; the benchmark data has none")
        if name in categorical:
            words = np.array(chunk.dictionary.to_pylist(), dtype=object)
            out[name] = words[_values(chunk.indices, np.int32)]
        else:
            out[name] = _values(chunk, np.float64)
        del chunk
    return out


def _values(array: Any, dtype: type) -> np.ndarray:
    """The values of a null-free primitive Arrow array, as a numpy view of its buffer."""
    data = np.frombuffer(array.buffers()[1], dtype=dtype)
    return data[array.offset : array.offset + len(array)]


# -- modelyard --------------------------------------------------------------------------------
def run_modelyard(data: Path, spec: dict[str, Any]) -> dict[str, Any]:
    from modelyard.monitoring.drift import dataset_drift

    ref = load_columns(data / "reference.parquet", spec["categorical"])
    cur = load_columns(data / "current.parquet", spec["categorical"])
    kinds = dict.fromkeys(spec["numeric"], "numeric") | dict.fromkeys(
        spec["categorical"], "categorical"
    )
    loaded = peak_mib()
    start = time.perf_counter()
    result = dataset_drift(ref, cur, kinds=kinds)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "peak_mib_loaded": loaded,
        "peak_mib": peak_mib(),
        "drifted": sorted(c.column for c in result.columns if c.drifted),
        "methods": {c.column: c.method for c in result.columns},
        "scores": {c.column: c.scores for c in result.columns},
        # modelyard imports scipy lazily, only for small samples and rare branches
        "scipy_imported": "scipy" in sys.modules,
    }


# -- a per-column scipy loop ------------------------------------------------------------------
def run_scipy(data: Path, spec: dict[str, Any]) -> dict[str, Any]:
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import chi2_contingency, ks_2samp, wasserstein_distance

    ref = load_columns(data / "reference.parquet", spec["categorical"])
    cur = load_columns(data / "current.parquet", spec["categorical"])
    loaded = peak_mib()
    start = time.perf_counter()
    scores: dict[str, dict[str, float]] = {}
    for name in spec["numeric"]:
        r, c = ref[name], cur[name]
        r, c = r[np.isfinite(r)], c[np.isfinite(c)]
        ks = ks_2samp(r, c)
        edges = np.unique(np.quantile(r, np.arange(1, NUMERIC_BINS) / NUMERIC_BINS))
        rc = np.bincount(np.digitize(r, edges), minlength=len(edges) + 1)
        cc = np.bincount(np.digitize(c, edges), minlength=len(edges) + 1)
        scores[name] = {
            "ks": float(ks.statistic),
            "ks_p_value": float(ks.pvalue),
            "wasserstein": float(wasserstein_distance(r, c) / np.std(r)),
            "psi": psi(rc, cc),
            "jensenshannon": float(jensenshannon(rc, cc, base=2)),
        }
    for name in spec["categorical"]:
        rcount, ccount = Counter(ref[name].tolist()), Counter(cur[name].tolist())
        cats = list(rcount) + [k for k in ccount if k not in rcount]
        rc = np.array([rcount.get(k, 0) for k in cats])
        cc = np.array([ccount.get(k, 0) for k in cats])
        chi2 = chi2_contingency(np.stack((rc, cc)))
        scores[name] = {
            "chi2": float(chi2.statistic),
            "chi2_p_value": float(chi2.pvalue),
            "psi": psi(rc, cc),
            "jensenshannon": float(jensenshannon(rc, cc, base=2)),
        }
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_mib_loaded": loaded, "peak_mib": peak_mib(), "scores": scores}


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    r, c = ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()
    r, c = np.where(r == 0, PSI_EPSILON, r), np.where(c == 0, PSI_EPSILON, c)
    return float(np.sum((c - r) * np.log(c / r)))


# -- Evidently --------------------------------------------------------------------------------
def run_evidently(data: Path, spec: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref = pd.read_parquet(data / "reference.parquet")
    cur = pd.read_parquet(data / "current.parquet")
    loaded = peak_mib()
    start = time.perf_counter()
    definition = DataDefinition(
        numerical_columns=spec["numeric"], categorical_columns=spec["categorical"]
    )
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    seconds = time.perf_counter() - start
    drifted, methods = [], {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            methods[config["column"]] = config["method"]
            value = float(metric["value"])
            if math.isfinite(value) and _evidently_drifted(config, value):
                drifted.append(config["column"])
    return {
        "seconds": seconds,
        "peak_mib_loaded": loaded,
        "peak_mib": peak_mib(),
        "drifted": sorted(drifted),
        "methods": methods,
    }


def _evidently_drifted(config: dict[str, Any], value: float) -> bool:
    # Distances drift at or above the threshold, p-values below it.
    if "p_value" in config["method"].lower():
        return value < config["threshold"]
    return value >= config["threshold"]


RUNNERS = {"modelyard": run_modelyard, "scipy": run_scipy, "evidently": run_evidently}


def main() -> None:
    contender, data = sys.argv[1], Path(sys.argv[2])
    spec = json.loads((data / "columns.json").read_text())
    result = RUNNERS[contender](data, spec)
    print("BENCH_JSON " + json.dumps(result))


if __name__ == "__main__":
    main()
