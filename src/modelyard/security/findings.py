"""Findings: what ``modelyard scan`` reports, each with a severity and a stable rule id.

A finding says where (a file, ``file:member`` inside an archive, or a setting), what is wrong,
and what to do. Severities, lowest first: ``info`` < ``low`` < ``medium`` < ``high`` <
``critical``; ``modelyard scan`` exits 1 when a finding reaches ``--fail-on`` (``high`` by
default).

>>> f = Finding("high", "pickle.dangerous-global", "model.pkl", "References os.system.")
>>> at_least([f], "medium")
[Finding(severity='high', rule='pickle.dangerous-global', location='model.pkl', \
message='References os.system.', hint='')]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from modelyard.errors import InvalidInputError

__all__ = ["SEVERITIES", "Finding", "Severity", "at_least", "parse_severity", "rank", "sort"]

Severity = Literal["info", "low", "medium", "high", "critical"]

SEVERITIES: tuple[Severity, ...] = ("info", "low", "medium", "high", "critical")
"""Every severity, lowest first."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One weak point: ``rule`` is a stable id scripts can filter on."""

    severity: Severity
    rule: str
    location: str
    message: str
    hint: str = ""

    def as_dict(self) -> dict[str, str]:
        """The finding as JSON-ready fields."""
        return {"severity": self.severity, "rule": self.rule, "location": self.location,
                "message": self.message, "hint": self.hint}


def rank(severity: Severity) -> int:
    """0 for ``info`` up to 4 for ``critical``."""
    return SEVERITIES.index(severity)


def parse_severity(text: str) -> Severity:
    """A severity from user text (any case); InvalidInputError naming the choices otherwise."""
    value = text.strip().lower()
    if value not in SEVERITIES:
        raise InvalidInputError(
            f"The severity must be one of {', '.join(SEVERITIES)}. Got {text!r} instead.")
    return value


def at_least(findings: Iterable[Finding], severity: Severity) -> list[Finding]:
    """The findings at ``severity`` or above."""
    floor = rank(severity)
    return [f for f in findings if rank(f.severity) >= floor]


def sort(findings: Iterable[Finding]) -> list[Finding]:
    """Worst first, then by location and rule, so that reports are stable."""
    return sorted(findings, key=lambda f: (-rank(f.severity), f.location, f.rule, f.message))
