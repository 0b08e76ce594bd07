"""Where a version's code came from: the git commit and whether the tree had local changes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from modelyard.core.entities import CodeVersion

__all__ = ["detect_code_version"]


def detect_code_version(directory: str | Path | None = None) -> CodeVersion | None:
    """The git commit of ``directory`` (default: the working directory), or None outside git.

    ``dirty`` is True when tracked files have uncommitted changes.
    """
    cwd = Path(directory) if directory is not None else Path.cwd()
    try:
        commit = _git(cwd, "rev-parse", "HEAD")
        if commit is None:
            return None
        status = _git(cwd, "status", "--porcelain", "--untracked-files=no")
        root = _git(cwd, "rev-parse", "--show-toplevel")
    except (OSError, subprocess.SubprocessError):  # git missing or hanging: no code version
        return None
    return CodeVersion(commit=commit, dirty=bool(status), repository=root)


def _git(cwd: Path, *args: str) -> str | None:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
    )
    return proc.stdout.strip() if proc.returncode == 0 else None
