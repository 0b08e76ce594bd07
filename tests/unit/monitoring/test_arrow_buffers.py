"""numpy <-> Arrow through buffers: the same arrays pa.array builds, without pandas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tests.fresh_process import run_fresh

from modelyard.monitoring.arrow_buffers import column_numpy, primitive, strings

_DTYPES = st.sampled_from(["bool", "int8", "int16", "int32", "int64", "uint8", "uint32",
                           "uint64", "float16", "float32", "float64", ">i4", ">f8"])


@given(hnp.arrays(_DTYPES, st.integers(0, 40)), st.integers(1, 3))
def test_primitive_builds_what_pa_array_builds(values: np.ndarray, step: int) -> None:
    values = values[::step]  # strided views too
    ours = primitive(values)
    ours.validate(full=True)
    theirs = pa.array(values.astype(values.dtype.newbyteorder("=")))
    assert ours.type == theirs.type
    assert ours.null_count == 0
    assert ours.equals(theirs) or np.isnan(values.astype(np.float64)).any()
    # NaN stays NaN (not null), as in pa.array; compared as numpy, where NaN == NaN here.
    np.testing.assert_array_equal(np.array(ours.to_pylist(), dtype=values.dtype),
                                  np.array(theirs.to_pylist(), dtype=values.dtype))


@given(st.lists(st.none() | st.text(), max_size=30))
def test_strings_round_trip(items: list[str | None]) -> None:
    for case in (items, items[:1] * len(items)):  # mixed, and one value throughout
        array = strings(case)
        array.validate(full=True)
        assert array.type == pa.string()
        assert array.to_pylist() == case


@given(hnp.arrays(st.sampled_from(["int32", "int64", "float64", "float32"]),
                  st.integers(0, 30)), st.integers(0, 30))
def test_column_numpy_reads_chunked_and_sliced_columns(values: np.ndarray, cut: int) -> None:
    cut = min(cut, len(values))
    column = pa.chunked_array([pa.array(values[:cut]), pa.array(values[cut:])],
                              type=pa.from_numpy_dtype(values.dtype))
    np.testing.assert_array_equal(column_numpy(column), values)
    if len(values) > 2:
        np.testing.assert_array_equal(column_numpy(column.slice(1, len(values) - 2)),
                                      values[1:-1])


def test_column_numpy_with_nulls_goes_through_pyarrow() -> None:
    column = pa.chunked_array([pa.array([1.0, None, 3.0])])
    assert np.isnan(column_numpy(column)[1])


def test_other_types_fall_back_to_pyarrow() -> None:
    assert primitive(np.array(["a", "b"], dtype="S1")).to_pylist() == [b"a", b"b"]
    stamps = np.array(["2026-12-07T00:00"], dtype="datetime64[s]")
    assert primitive(stamps).type == pa.timestamp("s")


def test_a_logging_server_process_never_imports_pandas(tmp_path: Path) -> None:
    # The writer turns records into Arrow tables and Parquet files; pyarrow's own numpy
    # conversions would import pandas (about 100 MiB) in a process that has no use for it.
    script = f"""
import sys
import numpy as np
from modelyard.core.inference import InferenceRecord
from modelyard.monitoring.inference_log import InferenceLog
from modelyard.monitoring.log_store import ParquetLogStore
store = ParquetLogStore({str(tmp_path)!r})
log = InferenceLog(store, flush_interval_s=60)
log.start()
for i in range(20):
    inputs = np.arange(3.0).reshape(1, 3) + i
    outputs = {{"predict": np.array([i % 2]), "predict_proba": np.array([[0.25, 0.75]])}}
    log.emit(InferenceRecord(f"r{{i}}", "m", 1, 1.7e9 + i, inputs, outputs, 0.5, "v2"))
log.emit(InferenceRecord("bad", "m", 1, 1.7e9, None, {{}}, 0.1, "v2", "InvalidInputError"))
log.close(timeout=10)
assert log.stats.written == 21, log.stats
assert "pandas" not in sys.modules, "writing the log imported pandas"
print("ok")
"""
    run_fresh(script)
    # Read here, not in the child: pyarrow's Parquet reader can abort a process at exit
    # ("terminate called without an active exception", apache/arrow#34314).
    from modelyard.monitoring.log_store import ParquetLogStore

    table = ParquetLogStore(str(tmp_path)).read_inferences("m")
    assert table.num_rows == 21
    ids = table.column("request_id").to_pylist()
    assert sorted(ids)[:3] == ["bad", "r0", "r1"]
    assert table.column("error").to_pylist()[ids.index("bad")] == "InvalidInputError"
    assert table.column("in.2").to_pylist()[ids.index("r3")] == 5.0
    assert table.column("out.predict_proba").to_pylist()[ids.index("r0")] == [0.25, 0.75]
