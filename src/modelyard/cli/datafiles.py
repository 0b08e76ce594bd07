"""Read tabular data files given on the command line (CSV, Parquet, JSON lines)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelyard.errors import InvalidInputError, NotFoundError

__all__ = ["read_table"]


def read_table(path: Path) -> Any:
    """Read a CSV, Parquet or JSON-lines file into a pandas DataFrame."""
    import pandas as pd

    if not path.exists():
        raise NotFoundError(f"There is no data file at {str(path)!r}.", hint="Check the path.")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".jsonl", ".ndjson"):
            return pd.read_json(path, lines=True)
    except (ValueError, OSError) as exc:
        raise InvalidInputError(f"Cannot read {str(path)!r}: {exc}") from exc
    raise InvalidInputError(
        f"Unsupported data file type {suffix!r} for {str(path)!r}.",
        hint="Use .csv, .parquet or .jsonl.",
    )
