"""What a validation run found: one :class:`GateCheck` per gate, gathered in a
:class:`ValidationReport` that passes only when every check passed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["GateCheck", "ValidationReport"]


@dataclass(frozen=True)
class GateCheck:
    """One gate's verdict.

    ``value`` is what was measured (a metric, an improvement over the champion, a latency in
    milliseconds, a size in MiB) and ``threshold`` what it was held against; both are None for
    checks without a number (the signature, user checks).
    """

    name: str
    passed: bool
    detail: str
    value: float | None = None
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of the fields (a NaN or infinite number becomes None)."""
        return {"name": self.name, "passed": self.passed, "detail": self.detail,
                "value": _finite(self.value), "threshold": _finite(self.threshold)}


@dataclass(frozen=True)
class ValidationReport:
    """A candidate version judged against the champion (if any) on one holdout of ``rows``.

    >>> report = ValidationReport("models:/m/2", None, True,
    ...                           [GateCheck("signature", True, "no champion")], {}, {}, 10)
    >>> report.to_dict()["checks"][0]["detail"]
    'no champion'
    """

    candidate: str
    champion: str | None
    passed: bool
    checks: list[GateCheck]
    candidate_metrics: dict[str, float]
    champion_metrics: dict[str, float]
    rows: int

    def failed(self) -> list[GateCheck]:
        """The checks that failed, in report order."""
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: the fields, the names of the failed checks, and per metric the
        candidate's value minus the champion's (``deltas``, for metrics both have)."""
        deltas = {name: value - self.champion_metrics[name]
                  for name, value in self.candidate_metrics.items()
                  if name in self.champion_metrics}
        return {
            "candidate": self.candidate,
            "champion": self.champion,
            "passed": self.passed,
            "rows": self.rows,
            "failed": [c.name for c in self.failed()],
            "checks": [c.to_dict() for c in self.checks],
            "candidate_metrics": _finite_values(self.candidate_metrics),
            "champion_metrics": _finite_values(self.champion_metrics),
            "deltas": _finite_values(deltas),
        }


def _finite(value: float | None) -> float | None:
    # JSON has no NaN or Infinity: strict parsers (jq, browsers) refuse them.
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _finite_values(values: dict[str, float]) -> dict[str, float | None]:
    return {name: _finite(value) for name, value in values.items()}
