"""``python -m modelyard`` runs the CLI."""

from __future__ import annotations

from modelyard.cli.main import run

run()
