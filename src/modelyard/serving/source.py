"""Where the server gets models: anything that can resolve references and load versions.

:class:`modelyard.Client` satisfies this protocol; tests may pass a fake. :class:`SignedSource`
wraps one so that only versions that pass a check (a signature by a trusted key) are loaded.

A source that also follows rollouts (:class:`RolloutSource`: the Client does) lets the server
route a share of the traffic to a challenger and drive the rollout; :func:`rollout_source`
says whether a source can. Sources without it (most test fakes) simply get no rollouts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from modelyard.core.entities import ModelVersion
from modelyard.core.references import ModelRef
from modelyard.errors import ModelyardError
from modelyard.runtimes.model import Model

if TYPE_CHECKING:
    from modelyard.core.rollout import Decision, Rollout

__all__ = ["ModelSource", "RolloutSource", "SignedSource", "rollout_source"]


log = logging.getLogger("modelyard.serving")


class ModelSource(Protocol):
    def resolve(self, ref: str | ModelRef) -> ModelVersion: ...

    def load(self, ref: str | ModelRef) -> Model: ...


@runtime_checkable
class RolloutSource(Protocol):
    """Reads a model's active rollout and applies the server's decisions to it (both do I/O:
    the pool and the controller call them in threads)."""

    def active_rollout(self, name: str) -> Rollout | None: ...

    def decide_rollout(self, rollout: Rollout, decision: Decision, *,
                       actor: str | None = None) -> Rollout | None: ...


def rollout_source(source: object) -> RolloutSource | None:
    """``source`` as a :class:`RolloutSource`, or None if it cannot follow rollouts.

    >>> rollout_source(object()) is None
    True
    """
    if isinstance(source, SignedSource):
        return source if rollout_source(source.source) is not None else None
    return source if isinstance(source, RolloutSource) else None


class SignedSource:
    """A :class:`ModelSource` that loads a version only after ``check(version)`` passed.

    ``check`` raises to refuse (``Client.verify`` with the trusted keys does, when
    ``security.require_signed`` is on). It runs before a single byte of the model is read, in
    the pool's loader thread: a refused version leaves its deployment UNAVAILABLE with the
    reason, or, on an alias move, the old version serving. A rollout's challenger is loaded
    through the same check. Rollouts are forwarded to the wrapped source when it has them.

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

    def onnx_twin(self, version: ModelVersion) -> ModelVersion | None:
        """The wrapped source's ONNX export of ``version``, if both pass the check (an
        unsigned export is not used: the version is then served by its own runtime)."""
        finder = getattr(self.source, "onnx_twin", None)
        twin: ModelVersion | None = None if finder is None else finder(version)
        if twin is None:
            return None
        self.check(version)  # refused as it would be without the export
        try:
            self.check(twin)
        except ModelyardError as exc:
            log.warning("Not serving %s through %s: %s", version.uri, twin.uri, exc)
            return None
        return twin

    def active_rollout(self, name: str) -> Rollout | None:
        inner = rollout_source(self.source)
        return None if inner is None else inner.active_rollout(name)

    def decide_rollout(self, rollout: Rollout, decision: Decision, *,
                       actor: str | None = None) -> Rollout | None:
        inner = rollout_source(self.source)
        return None if inner is None else inner.decide_rollout(rollout, decision, actor=actor)
