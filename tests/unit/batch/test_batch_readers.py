"""Chunked readers: exact chunk sizes, resuming at a row, typed and lenient reading."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from batch_helpers import write
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.batch.readers import (
    ERROR_COLUMN,
    INPUT_COLUMN,
    ConversionError,
    InputFile,
    parse_json_lines,
    rechunk,
)
from modelyard.errors import InvalidInputError, NotFoundError

FORMATS = [".csv", ".parquet", ".jsonl"]


@pytest.mark.parametrize("suffix", FORMATS, ids=["csv", "parquet", "jsonl"])
@pytest.mark.parametrize("chunk_rows", [7, 100, 600, 1000], ids=lambda n: f"chunk{n}")
def test_chunks_hold_exactly_chunk_rows_rows_in_order(
        frame: pd.DataFrame, tmp_path: Path, suffix: str, chunk_rows: int) -> None:
    source = InputFile.open(write(frame, tmp_path / f"in{suffix}"))
    chunks = list(source.chunks(chunk_rows))
    sizes = [c.num_rows for c in chunks]
    full, rest = divmod(len(frame), chunk_rows)
    assert sizes == [chunk_rows] * full + ([rest] if rest else [])
    ids = np.concatenate([c.column("id").to_numpy() for c in chunks])
    np.testing.assert_array_equal(ids, frame["id"].to_numpy())


@pytest.mark.parametrize("suffix", FORMATS, ids=["csv", "parquet", "jsonl"])
@pytest.mark.parametrize("start", [0, 50, 130, 599, 600], ids=lambda n: f"from{n}")
def test_start_row_resumes_at_that_row(frame: pd.DataFrame, tmp_path: Path, suffix: str,
                                       start: int) -> None:
    path = tmp_path / f"in{suffix}"
    if suffix == ".parquet":  # several row groups: resuming skips whole groups unread
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path,
                       row_group_size=64)
    else:
        write(frame, path)
    chunks = list(InputFile.open(path).chunks(50, start_row=start, columns=["id", "f0"]))
    ids = np.concatenate([c.column("id").to_numpy() for c in chunks]) if chunks else []
    np.testing.assert_array_equal(ids, frame["id"].to_numpy()[start:])
    assert all(c.column_names == ["id", "f0"] for c in chunks)


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 40), max_size=12), chunk_rows=st.integers(1, 30),
       skip=st.integers(0, 50))
def test_rechunk_cuts_any_batches_into_exact_chunks(sizes: list[int], chunk_rows: int,
                                                    skip: int) -> None:
    start = np.cumsum([0, *sizes])
    batches = [pa.record_batch({"x": np.arange(a, b)}) for a, b in itertools.pairwise(start)]
    chunks = list(rechunk(batches, chunk_rows, skip=skip))
    total = max(0, int(start[-1]) - skip)
    assert [c.num_rows for c in chunks] == (
        [chunk_rows] * (total // chunk_rows) + ([total % chunk_rows] if total % chunk_rows
                                                else []))
    got = np.concatenate([c.column("x").to_numpy() for c in chunks]) if chunks else []
    np.testing.assert_array_equal(got, np.arange(skip, int(start[-1])))


def test_csv_columns_take_the_types_given(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("id,x\n1,2\n2,3\n")
    chunk = next(InputFile.open(path).chunks(10, types={"x": pa.float64()}))
    assert chunk.schema.field("x").type == pa.float64()
    assert chunk.schema.field("id").type == pa.int64()


@pytest.mark.parametrize(("text", "error", "match"), [
    ("x\n1.5\nabc\n", ConversionError, "conversion error to double: invalid value 'abc'"),
    ("x,y\n1,2\n3,4,5\n", InvalidInputError, "Expected 2 columns, got 3"),
], ids=["text-in-a-float-column", "too-many-fields"])
def test_csv_values_that_do_not_read_say_why(tmp_path: Path, text: str,
                                             error: type[Exception], match: str) -> None:
    path = tmp_path / "in.csv"
    path.write_text(text)
    with pytest.raises(error, match=match):
        list(InputFile.open(path).chunks(10, types={"x": pa.float64()}))


def test_json_lines_that_do_not_parse_become_flagged_rows() -> None:
    lines = [b'{"id": 1, "x": 1.5}\n', b'{"id": 2, "x": "abc"}\n', b"not json\n",
             b"[1, 2]\n", b'{"id": 5, "x": 7}\n']
    table = parse_json_lines(lines, {"x": pa.float64()})
    assert table.num_rows == 5
    assert table.column("x").to_pylist() == ["1.5", "abc", None, None, "7"]  # as text
    assert table.column("id").to_pylist() == [1, 2, None, None, 5]
    errors = table.column(ERROR_COLUMN).to_pylist()
    assert [errors[i] for i in (0, 1, 4)] == [None, None, None]
    assert errors[2] == "the line is not a JSON object (invalid literal, expected 'null')"
    assert errors[3] == "the line is not a JSON object (a JSON list, not an object)"
    assert table.column(INPUT_COLUMN).to_pylist() == [None, None, "not json", "[1, 2]", None]


def test_clean_json_lines_take_the_types_given() -> None:
    table = parse_json_lines([b'{"x": 1, "y": "a"}', b'{"x": 2, "y": "b"}'],
                             {"x": pa.float64()})
    assert table.schema.field("x").type == pa.float64()
    assert ERROR_COLUMN not in table.column_names


@pytest.mark.parametrize(("suffix", "text", "rows"), [
    (".csv", "a,b\n1,2\n3,4\n", 2),
    (".csv", "a,b\n1,2\n3,4", 2),
    (".csv", "a,b\n", 0),
    (".jsonl", '{"a": 1}\n\n{"a": 2}\n', 2),
], ids=["csv", "csv-no-final-newline", "csv-header-only", "jsonl-blank-line"])
def test_count_rows_counts_lines(tmp_path: Path, suffix: str, text: str, rows: int) -> None:
    path = tmp_path / f"in{suffix}"
    path.write_text(text)
    assert InputFile.open(path).count_rows() == rows


def test_count_rows_of_parquet_comes_from_its_metadata(frame: pd.DataFrame,
                                                       tmp_path: Path) -> None:
    assert InputFile.open(write(frame, tmp_path / "in.parquet")).count_rows() == 600


@pytest.mark.parametrize("suffix", FORMATS, ids=["csv", "parquet", "jsonl"])
def test_columns_are_read_without_the_data(frame: pd.DataFrame, tmp_path: Path,
                                           suffix: str) -> None:
    source = InputFile.open(write(frame, tmp_path / f"in{suffix}"))
    assert source.columns() == list(frame.columns)


@pytest.mark.parametrize(("name", "exists", "error", "match"), [
    ("in.csv", False, NotFoundError, "There is no input file at"),
    ("in.txt", True, InvalidInputError, "Unsupported input file type '.txt'"),
    ("in", True, InvalidInputError, r"Unsupported input file type '\(none\)'"),
], ids=["missing", "unknown-suffix", "no-suffix"])
def test_open_refuses_what_it_cannot_read(tmp_path: Path, name: str, exists: bool,
                                          error: type[Exception], match: str) -> None:
    path = tmp_path / name
    if exists:
        path.write_text("a\n1\n")
    with pytest.raises(error, match=match):
        InputFile.open(path)


def test_the_first_json_line_must_be_an_object(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("[1]\n")
    with pytest.raises(InvalidInputError, match="is not a JSON object"):
        InputFile.open(path).columns()
