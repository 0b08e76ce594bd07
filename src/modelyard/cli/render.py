"""Output: rich tables for people, JSON (``--json``) for scripts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["console", "err_console", "print_json", "print_table", "when"]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    console.file.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col)
    for row in rows:
        # Text, not str: cells hold user text (reasons, tags) that must not parse as markup.
        table.add_row(*(Text("" if v is None else str(v)) for v in row))
    console.print(table)


def when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")
