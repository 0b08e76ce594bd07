"""modelyard: put trained models into production and keep them healthy there.

>>> import modelyard
>>> modelyard.__version__
'0.1.0'

The public surface is small: :func:`register`, :func:`load`, :class:`Client` and the errors.
Heavy libraries (SQLAlchemy, scikit-learn, torch...) load only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelyard._api import load, register
from modelyard.errors import (
    ConfigurationError,
    ConflictError,
    IntegrityError,
    InvalidInputError,
    ModelyardError,
    NotFoundError,
    PredictionError,
    SignatureError,
    StoreUnavailableError,
    UnsafeModelError,
    UnsupportedModelError,
)

if TYPE_CHECKING:
    from modelyard._client import Client
    from modelyard.settings import Settings

__version__ = "0.1.0"

__all__ = [
    "Client",
    "ConfigurationError",
    "ConflictError",
    "IntegrityError",
    "InvalidInputError",
    "ModelyardError",
    "NotFoundError",
    "PredictionError",
    "Settings",
    "SignatureError",
    "StoreUnavailableError",
    "UnsafeModelError",
    "UnsupportedModelError",
    "__version__",
    "load",
    "register",
]


def __getattr__(name: str) -> Any:
    # Client pulls in SQLAlchemy and the runtimes; load them on first use, not on import.
    if name == "Client":
        from modelyard._client import Client

        return Client
    if name == "Settings":
        from modelyard.settings import Settings

        return Settings
    raise AttributeError(f"module 'modelyard' has no attribute {name!r}")
