"""What the server hands to monitoring for every prediction, and the sink protocol it uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["InferenceRecord", "InferenceSink", "NullSink"]


@dataclass(frozen=True, slots=True)
class InferenceRecord:
    """One answered request: enough to join ground truth later and to detect drift."""

    request_id: str
    model: str
    version: int
    timestamp: float
    """Seconds since the epoch when the request arrived."""
    inputs: Any
    """The validated input: named columns (dict of arrays) or one array."""
    outputs: dict[str, Any]
    latency_ms: float
    route: str


class InferenceSink(Protocol):
    """Receives inference records. ``emit`` is called on the request path: it must not block,
    do I/O or raise (queue the record and return)."""

    def emit(self, record: InferenceRecord) -> None: ...


class NullSink:
    """Drops every record (monitoring disabled)."""

    def emit(self, record: InferenceRecord) -> None:
        return None
