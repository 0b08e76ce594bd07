"""The one exception tree of modelyard.

Every error a user can cause or meet derives from :class:`ModelyardError`. Messages are
built from fields and say what happened and what to do next. HTTP status codes and CLI exit
codes are mapped at the edges (``cli``, ``serving.http``), never here.

    ModelyardError
    ├── ConfigurationError          settings that cannot work (bad URL, missing extra)
    │   ├── DependencyMissingError  an optional extra is not installed
    │   └── DecryptionError         encrypted data the configured keys cannot open
    ├── StoreUnavailableError       the registry database cannot be reached
    ├── InvalidInputError           a bad name, reference, argument or data set
    │   └── SignatureError          data that does not match a model's signature
    ├── NotFoundError               a model, version or alias that does not exist
    ├── ConflictError               a state change the current state forbids
    ├── UnsupportedModelError       an object or file no runtime can save or load
    ├── UnsafeModelError            a format that could run code on load, without trust
    ├── IntegrityError              an artifact whose bytes changed since it was stored
    ├── PredictionError             the model itself raised while predicting
    └── UnavailableError            a model still loading, or a server over its limits
        └── OverloadedError         a full request queue: retry later
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "ConflictError",
    "DecryptionError",
    "DependencyMissingError",
    "IntegrityError",
    "InvalidInputError",
    "ModelyardError",
    "NotFoundError",
    "OverloadedError",
    "PredictionError",
    "RequestTimeoutError",
    "SignatureError",
    "StoreUnavailableError",
    "UnavailableError",
    "UnsafeModelError",
    "UnsupportedModelError",
]


class ModelyardError(Exception):
    """Root of every modelyard error.

    ``message`` says what happened; ``hint`` says what to do about it. ``str(error)`` joins
    both so that a log line or a CLI message is complete on its own.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} {hint}" if hint else message)


class ConfigurationError(ModelyardError):
    """Settings that cannot work: a malformed URL, an unknown option, a missing extra."""


class DependencyMissingError(ConfigurationError):
    """An optional dependency needed for this model format or engine is not installed."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{purpose} needs the '{package}' package, which is not installed.",
            hint=f"Install it with: pip install 'modelyard[{extra}]'.",
        )


class DecryptionError(ConfigurationError):
    """Data encrypted at rest with a key the settings do not hold (or with no key configured).

    Tampering is an :class:`IntegrityError`; this is the configuration asking for another key.
    """


class StoreUnavailableError(ModelyardError):
    """The registry database (or artifact store) cannot be reached."""


class InvalidInputError(ModelyardError, ValueError):
    """A bad name, reference, argument or data set."""


class SignatureError(InvalidInputError):
    """Data that does not match the signature the model was registered with."""


class NotFoundError(ModelyardError, LookupError):
    """A model, version or alias that does not exist."""


class ConflictError(ModelyardError):
    """A change the current state forbids, such as pointing an alias at a deleted version."""


class UnsupportedModelError(ModelyardError, TypeError):
    """An object or file that no installed runtime knows how to save or load."""


class UnsafeModelError(ModelyardError):
    """A format that can execute code when loaded (pickle, untrusted skops types)."""


class IntegrityError(ModelyardError):
    """An artifact whose bytes no longer match the checksum recorded when it was stored."""


class PredictionError(ModelyardError):
    """The model's own predict raised; the original exception is chained as ``__cause__``."""


class UnavailableError(ModelyardError):
    """A model that is still loading or failed to load; the server answers 503."""


class OverloadedError(UnavailableError):
    """A model's request queue is full; the server answers 503 with Retry-After."""


class RequestTimeoutError(ModelyardError):
    """A model did not answer within the per-request timeout; the server answers 504."""
