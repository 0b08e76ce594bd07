"""Module-level shortcuts over a default :class:`Client`; each call builds one from Settings()."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelyard.core.entities import ModelVersion
    from modelyard.runtimes.model import Model

__all__ = ["load", "register"]


def register(model: Any, name: str, **kwargs: Any) -> ModelVersion:
    """Register ``model`` as a new version of ``name``; see :meth:`Client.register`.

    >>> import modelyard                                                   # doctest: +SKIP
    >>> mv = modelyard.register(clf, name="iris", data=X, alias="production")  # doctest: +SKIP
    """
    from modelyard._client import Client

    with Client() as client:
        return client.register(model, name, **kwargs)


def load(ref: str) -> Model:
    """Load ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``; see :meth:`Client.load`.

    >>> model = modelyard.load("models:/iris@production")                  # doctest: +SKIP
    """
    from modelyard._client import Client

    with Client() as client:
        return client.load(ref)
