"""Run the modelyard CLI in this process, as the CLI tests do: its exit code and what it
printed on stdout and stderr."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# The module, not the function ``modelyard.cli.main`` re-exports: a test may swap its ``app``.
cli_main = importlib.import_module("modelyard.cli.main")


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        """Stdout as JSON; when it is not, the failure says why (exit code and stderr)."""
        try:
            return json.loads(self.out)
        except json.JSONDecodeError:
            raise AssertionError(f"stdout is not JSON (exit {self.code}); stderr:\n"
                                 f"{self.err}\nstdout:\n{self.out}") from None

    def row(self, word: str) -> str:
        """The first stdout line naming ``word`` (a table row)."""
        rows = [line for line in self.out.splitlines()
                if re.search(rf"\b{re.escape(word)}\b", line)]
        assert rows, f"no row for {word!r} in:\n{self.out}"
        return rows[0]


Run = Callable[..., Result]


def run_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> Result:
    """``modelyard ARGS...`` through ``main()`` (its error handling included)."""
    capsys.readouterr()  # drop what earlier steps printed
    code = cli_main.main([str(a) for a in args])
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)
