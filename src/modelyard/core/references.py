"""Model references: ``models:/fraud@production``, ``models:/fraud/3``, ``models:/fraud/latest``.

The ``models:/`` prefix is optional on input, so ``fraud@production`` and ``fraud/3`` work too.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelyard.core.names import validate_alias, validate_model_name
from modelyard.errors import InvalidInputError

__all__ = ["ModelRef"]

_PREFIX = "models:/"


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A parsed reference to one version of a registered model.

    Exactly one of ``version`` and ``alias`` is set, or neither, which means the latest version.

    >>> ModelRef.parse("models:/fraud@production")
    ModelRef(name='fraud', version=None, alias='production')
    >>> str(ModelRef.parse("fraud/3"))
    'models:/fraud/3'
    """

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """Parse a reference string; raise :class:`InvalidInputError` with the accepted forms."""
        if not isinstance(text, str) or not text.strip():
            raise _bad(text)
        body = text.strip()
        body = body.removeprefix(_PREFIX)
        if "@" in body:
            name, _, alias = body.partition("@")
            return cls(_name(name, text), alias=_alias(alias, text))
        if "/" in body:
            name, _, tail = body.partition("/")
            if tail == "latest":
                return cls(_name(name, text))
            if not tail.isdigit() or int(tail) < 1:
                raise _bad(text)
            return cls(_name(name, text), version=int(tail))
        return cls(_name(body, text))

    @property
    def is_latest(self) -> bool:
        return self.version is None and self.alias is None

    def __str__(self) -> str:
        if self.alias is not None:
            return f"{_PREFIX}{self.name}@{self.alias}"
        if self.version is not None:
            return f"{_PREFIX}{self.name}/{self.version}"
        return f"{_PREFIX}{self.name}/latest"


def _bad(text: object) -> InvalidInputError:
    return InvalidInputError(
        f"The model reference must look like 'models:/NAME@ALIAS', 'models:/NAME/VERSION' or "
        f"'models:/NAME/latest'. Got {text!r} instead.",
        hint="Run 'modelyard models list' to see registered names.",
    )


def _name(name: str, text: str) -> str:
    try:
        return validate_model_name(name)
    except InvalidInputError:
        raise _bad(text) from None


def _alias(alias: str, text: str) -> str:
    if alias == "latest":
        raise InvalidInputError(
            f"'@latest' is not an alias in {text!r}.",
            hint="Write 'models:/NAME/latest' instead.",
        )
    try:
        return validate_alias(alias)
    except InvalidInputError:
        raise _bad(text) from None

