"""The ``modelyard`` command line: parse -> Settings -> service -> render."""

from __future__ import annotations

from modelyard.cli.main import app, main

__all__ = ["app", "main"]
