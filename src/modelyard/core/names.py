"""Validation of model names and aliases."""

from __future__ import annotations

import re

from modelyard.errors import InvalidInputError

__all__ = ["RESERVED_ALIASES", "validate_alias", "validate_model_name"]

_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,63}")
RESERVED_ALIASES = frozenset({"latest"})


def validate_model_name(name: object) -> str:
    """Return ``name`` if it is a valid model name, else raise :class:`InvalidInputError`.

    >>> validate_model_name("fraud-detector.v2")
    'fraud-detector.v2'
    """
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name) or name.endswith("."):
        raise InvalidInputError(
            f"The model name must be 1-128 characters of letters, digits, '_', '-' or '.', "
            f"starting with a letter or digit. Got {name!r} instead.",
            hint="Try a name such as 'fraud-detector'.",
        )
    return name


def validate_alias(alias: object) -> str:
    """Return ``alias`` if it is a valid alias, else raise :class:`InvalidInputError`.

    >>> validate_alias("production")
    'production'
    """
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise InvalidInputError(
            f"The alias must be 1-64 characters of letters, digits, '_' or '-', starting "
            f"with a letter or '_'. Got {alias!r} instead.",
            hint="Try 'production', 'staging' or 'champion'.",
        )
    if alias in RESERVED_ALIASES:
        raise InvalidInputError(
            f"The alias {alias!r} is reserved: 'models:/NAME/latest' always means the newest "
            "version.",
            hint="Pick another alias name.",
        )
    return alias
