"""gRPC status codes for modelyard errors, mapped at the edge (as ``serving.http.errors``)."""

from __future__ import annotations

import grpc

from modelyard.errors import (
    ConflictError,
    IntegrityError,
    InvalidInputError,
    ModelyardError,
    NotFoundError,
    PredictionError,
    RequestTimeoutError,
    UnavailableError,
    UnsafeModelError,
    UnsupportedModelError,
)

__all__ = ["code_of"]

# The gRPC twin of serving.http.errors._STATUS; first match wins (subclasses come first).
_CODES: list[tuple[type[ModelyardError], grpc.StatusCode]] = [
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),         # 400
    (UnsupportedModelError, grpc.StatusCode.INVALID_ARGUMENT),     # 400
    (NotFoundError, grpc.StatusCode.NOT_FOUND),                    # 404
    (ConflictError, grpc.StatusCode.FAILED_PRECONDITION),          # 409
    (UnsafeModelError, grpc.StatusCode.FAILED_PRECONDITION),       # 409: unsigned, untrusted
    (IntegrityError, grpc.StatusCode.FAILED_PRECONDITION),         # 409: tampered artifact
    (UnavailableError, grpc.StatusCode.UNAVAILABLE),               # 503, OverloadedError too
    (RequestTimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),      # 504
    (PredictionError, grpc.StatusCode.INTERNAL),                   # 500
]


def code_of(error: ModelyardError) -> grpc.StatusCode:
    """The status a client gets for ``error``; INTERNAL for anything not listed."""
    for kind, code in _CODES:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL
