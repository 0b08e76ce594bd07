"""Where the server gets models: anything that can resolve references and load versions.

:class:`modelyard.Client` satisfies this protocol; tests may pass a fake. :class:`SignedSource`
wraps one so that only versions that pass a check (a signature by a trusted key) are loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from modelyard.core.entities import ModelVersion
from modelyard.core.references import ModelRef
from modelyard.runtimes.model import Model

__all__ = ["ModelSource", "SignedSource"]


class ModelSource(Protocol):
    def resolve(self, ref: str | ModelRef) -> ModelVersion: ...

    def load(self, ref: str | ModelRef) -> Model: ...


class SignedSource:
    """A :class:`ModelSource` that loads a version only after ``check(version)`` passed.

    ``check`` raises to refuse (``Client.verify`` with the trusted keys does, when
    ``security.require_signed`` is on). It runs before a single byte of the model is read, in
    the pool's loader thread: a refused version leaves its deployment UNAVAILABLE with the
    reason, or, on an alias move, the old version serving.

    >>> source = SignedSource(client, lambda v: client.verify(v.uri, keys))  # doctest: +SKIP
    """

    def __init__(self, source: ModelSource, check: Callable[[ModelVersion], object]) -> None:
        self.source = source
        self.check = check

    def resolve(self, ref: str | ModelRef) -> ModelVersion:
        return self.source.resolve(ref)

    def load(self, ref: str | ModelRef) -> Model:
        version = self.source.resolve(ref)
        self.check(version)
        # Load exactly the version that was checked, even if an alias moved meanwhile.
        return self.source.load(version.uri)
