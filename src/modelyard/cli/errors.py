"""Exit codes for errors, mapped at the edge (the core knows nothing of processes).

| code | meaning |
|------|---------|
| 0 | success |
| 1 | any other modelyard error (a model that raised, a refused unsafe file) |
| 2 | bad usage or input (names, references, data, options) |
| 3 | not found (model, version, alias, file) |
| 4 | conflict with the current state |
| 5 | integrity check failed (an artifact changed) |
| 6 | configuration or database unreachable |
| 70 | internal error (a bug: please report it) |
"""

from __future__ import annotations

from modelyard.errors import (
    ConfigurationError,
    ConflictError,
    IntegrityError,
    InvalidInputError,
    ModelyardError,
    NotFoundError,
    StoreUnavailableError,
    UnsupportedModelError,
)

__all__ = ["INTERNAL", "exit_code"]

INTERNAL = 70

_CODES: list[tuple[type[ModelyardError], int]] = [
    (InvalidInputError, 2),
    (UnsupportedModelError, 2),
    (NotFoundError, 3),
    (ConflictError, 4),
    (IntegrityError, 5),
    (StoreUnavailableError, 6),
    (ConfigurationError, 6),
]


def exit_code(error: ModelyardError) -> int:
    for kind, code in _CODES:
        if isinstance(error, kind):
            return code
    return 1
