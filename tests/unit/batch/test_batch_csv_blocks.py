"""CSV blocks: cut only between records (quotes, newlines in values), parsed as a whole read."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.batch.csv_blocks import CsvBlocks, record_end


@pytest.mark.parametrize(("buf", "end"), [
    (b"a,b\n1,2\n3,", 8),
    (b"1,2\n", 4),
    (b"1,2", 0),
    (b'1,"x\ny"\n2,"open\n', 8),
    (b'1,"say ""hi""\n"\n2,3\n', 20),
    (b'"a\nb\nc', 0),
], ids=["partial-last", "exact", "no-newline", "newline-in-quotes", "doubled-quotes",
        "all-inside-quotes"])
def test_record_end_cuts_after_a_newline_outside_quotes(buf: bytes, end: int) -> None:
    assert record_end(buf) == end


_text = st.text(alphabet=st.sampled_from(list('ab ,"\n\r1.')), max_size=12)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.tuples(st.integers(-5, 5), _text), min_size=1, max_size=40),
       block=st.integers(8, 64), skip=st.integers(0, 45))
def test_blocks_parse_to_what_one_read_of_the_file_gives(
        tmp_path_factory: pytest.TempPathFactory, values: list[tuple[int, str]], block: int,
        skip: int) -> None:
    path = tmp_path_factory.mktemp("csv") / "in.csv"
    table = pa.table({"n": [v[0] for v in values], "s": [v[1] for v in values]})
    pcsv.write_csv(table, path)
    types = {"n": pa.int64(), "s": pa.string()}
    tables = list(CsvBlocks(path, block_bytes=block, threads=2).tables(types=types, skip=skip))
    whole = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(column_types=types))
    got = pa.concat_tables(tables) if tables else whole.slice(0, 0)
    assert got.to_pylist() == whole.slice(min(skip, whole.num_rows)).to_pylist()


@pytest.mark.parametrize(("text", "rows"), [
    ("id,x\n1,a\n2,b\n", [(1, "a"), (2, "b")]),
    ("id,x\n1,a\n2,b", [(1, "a"), (2, "b")]),
    ("id,x\r\n1,a\r\n2,b\r\n", [(1, "a"), (2, "b")]),
    ("id,x\n1,a\n\n2,b\n", [(1, "a"), (2, "b")]),
    ('"i,d",x\n1,"a\nb"\n', [(1, "a\nb")]),
    ("id,x\n", []),
], ids=["plain", "no-final-newline", "crlf", "blank-line", "quoted-header", "header-only"])
def test_small_files_read_like_pyarrow_reads_them(tmp_path: Path, text: str,
                                                  rows: list[tuple[int, str]]) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(text.encode())
    blocks = CsvBlocks(path, block_bytes=4)
    tables = list(blocks.tables(types={blocks.names[1]: pa.string()}))
    got = [tuple(r.values()) for t in tables for r in t.to_pylist()]
    assert got == rows
    assert blocks.names == list(pd.read_csv(path).columns)


def test_resuming_skips_blocks_without_parsing_them(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "in.csv"
    path.write_text("id\n" + "".join(f"{i}\n" for i in range(1000)))
    blocks = CsvBlocks(path, block_bytes=100)
    parsed: list[int] = []
    parse = blocks._parse

    def counting(block: bytes, *args: object) -> pa.Table:
        parsed.append(len(block))
        return parse(block, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(blocks, "_parse", counting)
    tables = list(blocks.tables(skip=990))
    assert [v for t in tables for v in t.column("id").to_pylist()] == list(range(990, 1000))
    assert sum(parsed) < 200  # only the last block or two were parsed


def test_the_first_blocks_types_hold_for_the_others(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("id,x\n" + "".join(f"{i},{i}\n" for i in range(50)) + "50,\n")
    tables = list(CsvBlocks(path, block_bytes=16).tables())
    assert {t.schema.field("x").type for t in tables} == {pa.int64()}
