"""CSV read in blocks of whole records, parsed by pyarrow on two threads at once.

pyarrow's streaming reader (``pyarrow.csv.open_csv``) parses one block after the other; on
this 2-core machine it read the benchmark's 247 MiB file in 1.36 s, slower than pandas'
chunked reader (1.18 s). Cutting the file into 8 MiB blocks that end on a record boundary
and parsing two at a time with ``pyarrow.csv.read_csv`` takes 0.89 s (docs/batch.md), and
makes resuming cheap: a block without quotes or blank lines is skipped by counting its
newlines, without parsing it.

A newline ends a record when it is outside quotes, that is when the number of quote
characters before it (from the start of the block, itself a record boundary) is even:
doubled quotes inside a quoted value keep the count's parity, so values holding newlines
are never cut. The first block's inferred column types are pinned for the others, as the
streaming reader does, so every chunk has the same schema.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "BLOCK_BYTES",
    "PARSE_THREADS",
    "ConversionError",
    "CsvBlocks",
    "csv_options",
    "read_error",
    "record_end",
]

BLOCK_BYTES = 8 << 20
"""Bytes per block: 4 and 16 MiB measured the same; a block is parsed whole in memory."""
PARSE_THREADS = 2
"""Blocks parsed at once (pyarrow parses without the GIL)."""
_QUOTE = b'"'


class ConversionError(InvalidInputError):
    """A value the reader could not convert to its column's type (``abc`` in a float column):
    the engines re-read leniently and let the scorer judge each row."""


def read_error(path: Path, exc: Exception) -> InvalidInputError:
    """pyarrow's complaint about ``path`` as a modelyard error."""
    text = str(exc)
    if "conversion error" in text.lower():
        return ConversionError(f"Cannot read {str(path)!r}: {text}")
    return InvalidInputError(
        f"Cannot read {str(path)!r}: {text}",
        hint="Every row of a CSV file needs as many fields as its header; quote values "
             "that hold the separator.")


def csv_options(types: Mapping[str, pa.DataType], columns: Sequence[str] | None) -> Any:
    """The ``ConvertOptions`` both engines read CSV with: the signature's types for the
    model's columns, only the columns needed."""
    import pyarrow.csv as pcsv

    return pcsv.ConvertOptions(column_types=dict(types),
                               include_columns=list(columns) if columns is not None else None)


def record_end(buf: bytes | bytearray) -> int:
    """Length of the longest prefix of ``buf`` (which starts at a record boundary) that ends
    at a record boundary; 0 when no record ends in ``buf``.

    >>> record_end(b'a,b\\n1,"x\\ny"\\n2,')
    12
    """
    cut = buf.rfind(b"\n") + 1
    if cut == 0 or _QUOTE not in buf:
        return cut
    quotes = buf.count(_QUOTE, 0, cut)
    while cut and quotes % 2:  # that newline is inside a quoted value: try the one before
        previous = buf.rfind(b"\n", 0, cut - 1) + 1
        quotes -= buf.count(_QUOTE, previous, cut)
        cut = previous
    return cut


def _first_record_end(buf: bytes) -> int:
    """Length of the first record (the header) of ``buf``, newline included; 0 if none."""
    pos = buf.find(b"\n")
    while pos >= 0 and buf.count(_QUOTE, 0, pos) % 2:
        pos = buf.find(b"\n", pos + 1)
    return pos + 1


class CsvBlocks:
    """The records of a CSV file after its header, in blocks, and the tables they parse to.

    >>> blocks = CsvBlocks(Path("big.csv"))                     # doctest: +SKIP
    >>> blocks.names                                            # doctest: +SKIP
    ['id', 'age', 'income']
    """

    def __init__(self, path: Path, *, block_bytes: int = BLOCK_BYTES,
                 threads: int = PARSE_THREADS) -> None:
        self.path = path
        self.block_bytes = block_bytes
        self.threads = threads
        with open(path, "rb") as fh:
            head = fh.read(block_bytes)
            while (end := _first_record_end(head)) == 0:
                more = fh.read(block_bytes)
                if not more:
                    end = len(head)
                    break
                head += more
        self._header = head[:end]
        self.names = self._parse_header(self._header)

    @staticmethod
    def _parse_header(header: bytes) -> list[str]:
        import pyarrow.csv as pcsv

        if not header.strip():
            return []
        return list(pcsv.read_csv(io.BytesIO(header)).column_names)

    # -- bytes -------------------------------------------------------------------------------
    def blocks(self) -> Iterator[bytearray]:
        """Blocks of whole records (each ends with a newline), the header left out."""
        with open(self.path, "rb", buffering=0) as fh:
            fh.seek(len(self._header))
            yield from self._split(fh)

    def _split(self, fh: io.FileIO) -> Iterator[bytearray]:
        """Each block is read straight into its own buffer (after the previous block's
        unfinished record) and handed on without a copy: copying the blocks (joining,
        slicing bytes) cost 0.17 s of a 1.8 s run on the benchmark's 247 MiB file."""
        rest = b""
        while True:
            buf = bytearray(len(rest) + self.block_bytes)
            buf[:len(rest)] = rest
            got = fh.readinto(memoryview(buf)[len(rest):])
            del buf[len(rest) + (got or 0):]
            if not got:
                if buf.strip():
                    yield buf if buf.endswith(b"\n") else buf + b"\n"
                return
            cut = record_end(buf)
            if cut == 0:  # one record longer than a block: read on
                rest = bytes(buf)
                continue
            rest = bytes(buf[cut:])
            del buf[cut:]
            yield buf

    # -- tables ------------------------------------------------------------------------------
    def tables(self, *, columns: Sequence[str] | None = None,
               types: Mapping[str, pa.DataType] | None = None,
               skip: int = 0) -> Iterator[pa.Table]:
        """The blocks as tables, in order, after skipping the first ``skip`` records (whole
        blocks by counting newlines where that is exact; the rest are sliced off)."""
        given = dict(types or {})
        blocks = self.blocks()
        first: pa.Table | None = None
        for block in blocks:
            counted = _count_records(block)
            if counted is not None and counted <= skip:
                skip -= counted
                continue
            first = self._parse(block, columns, given)
            break
        if first is None:
            return
        # The first block's inferred types hold for every block, as with the streaming reader.
        pinned = {f.name: f.type for f in first.schema if f.name not in given
                  and str(f.type) != "null"}
        pinned.update(given)
        for table in self._parse_ahead(blocks, columns, pinned, first):
            if skip >= table.num_rows:
                skip -= table.num_rows
                continue
            yield table.slice(skip) if skip else table
            skip = 0

    def _parse_ahead(self, blocks: Iterator[bytearray], columns: Sequence[str] | None,
                     types: Mapping[str, pa.DataType], first: pa.Table) -> Iterator[pa.Table]:
        yield first
        with ThreadPoolExecutor(self.threads, thread_name_prefix="modelyard-csv") as pool:
            window: deque[Future[pa.Table]] = deque()
            try:
                for block in blocks:
                    window.append(pool.submit(self._parse, block, columns, types))
                    if len(window) > self.threads:
                        yield window.popleft().result()
                while window:
                    yield window.popleft().result()
            finally:
                for future in window:
                    future.cancel()

    def _parse(self, block: bytearray, columns: Sequence[str] | None,
               types: Mapping[str, pa.DataType]) -> pa.Table:
        import pyarrow as pa
        import pyarrow.csv as pcsv

        try:
            return pcsv.read_csv(
                pa.BufferReader(pa.py_buffer(block)),
                read_options=pcsv.ReadOptions(column_names=self.names, use_threads=False),
                convert_options=csv_options(types, columns))
        except pa.ArrowInvalid as exc:
            raise read_error(self.path, exc) from exc


def _count_records(block: bytearray) -> int | None:
    """Records in ``block`` when counting newlines gives it exactly (no quotes, no blank
    lines); None when only parsing can tell."""
    if _QUOTE in block or b"\n\n" in block or b"\n\r\n" in block or block.startswith(b"\n"):
        return None
    return block.count(b"\n")
