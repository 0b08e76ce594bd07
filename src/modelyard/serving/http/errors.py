"""HTTP status codes for modelyard errors, mapped at the edge."""

from __future__ import annotations

from modelyard.errors import (
    ConflictError,
    IntegrityError,
    InvalidInputError,
    ModelyardError,
    NotFoundError,
    OverloadedError,
    PredictionError,
    RequestTimeoutError,
    UnavailableError,
    UnsafeModelError,
    UnsupportedModelError,
)

__all__ = ["status_of"]

_STATUS: list[tuple[type[ModelyardError], int]] = [
    (InvalidInputError, 400),
    (UnsupportedModelError, 400),
    (NotFoundError, 404),
    (ConflictError, 409),
    (UnsafeModelError, 409),  # a version the server may not serve (unsigned, untrusted types)
    (IntegrityError, 409),  # its artifacts changed since registration
    (OverloadedError, 503),
    (UnavailableError, 503),
    (RequestTimeoutError, 504),
    (PredictionError, 500),
]


def status_of(error: ModelyardError) -> int:
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 500
