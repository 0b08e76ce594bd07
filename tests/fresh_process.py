"""Run a script in a fresh Python: for what a process imports, which an imported test process
cannot show (its modules are already loaded)."""

from __future__ import annotations

import subprocess
import sys


def run_fresh(script: str) -> None:
    """Run ``script`` with this interpreter; it must exit 0 and print exactly ``ok``."""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok", done.stdout
