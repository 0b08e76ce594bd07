"""Rollouts: a champion, at most one challenger, and the pure rule that decides what happens
next from the traffic both have answered.

A rollout is stored in the registry (every server process follows it) and driven by the
serving process that answers its traffic: it feeds :func:`decide` the per-version statistics
it already keeps and writes the decision back. Nothing here does I/O.

Modes:

* ``canary``: a share of the requests (the current step's weight) goes to the challenger.
* ``ab``: the same, but sticky: a request's key (a header or an input column) always lands on
  the same side, so one user sees one model.
* ``shadow``: the champion answers every request; the challenger gets a copy asynchronously
  and its answers are only compared (agreement) and logged.

>>> policy = RolloutPolicy(steps=(0.1, 0.5, 1.0), min_requests=200)
>>> policy.first_weight("canary")
0.1
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

from modelyard.errors import InvalidInputError

__all__ = [
    "CLIENT_ERRORS",
    "Decision",
    "Rollout",
    "RolloutMode",
    "RolloutPolicy",
    "RolloutState",
    "VersionStats",
    "decide",
    "sticky_bucket",
]


CLIENT_ERRORS = frozenset({"InvalidInputError", "SignatureError", "NotFoundError"})
"""Class names of request failures that are the client's fault (bad input): they do not count
against a version's error rate."""


class RolloutMode(StrEnum):
    CANARY = "canary"
    SHADOW = "shadow"
    AB = "ab"


class RolloutState(StrEnum):
    ACTIVE = "active"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"


@dataclass(frozen=True, slots=True)
class RolloutPolicy:
    """When a rollout advances, promotes or rolls back.

    A step advances once the challenger answered ``min_requests`` requests in it and
    ``min_duration_s`` passed, with every objective holding; after the last step the
    challenger is promoted (``auto_promote``). At any time, once the challenger answered
    ``judge_after`` requests, it is rolled back when it is worse than the champion beyond a
    tolerance: error rate, p99 latency, accuracy (with labels) or, in shadow mode, agreement.
    """

    steps: tuple[float, ...] = (0.1, 0.5, 1.0)
    """Traffic weights of the challenger, one per step (canary and ab); shadow has one step."""
    min_requests: int = 200
    """Requests the challenger answers in a step before it advances."""
    min_duration_s: float = 0.0
    """Seconds a step lasts at least."""
    judge_after: int = 20
    """Challenger requests needed before a rollback can be decided."""
    max_error_rate_delta: float = 0.01
    """Roll back when the challenger's error rate exceeds the champion's by more than this."""
    max_latency_ratio: float = 2.0
    """Roll back when the challenger's p99 latency exceeds the champion's times this..."""
    latency_slack_ms: float = 10.0
    """... plus this many milliseconds (so that sub-millisecond noise never decides)."""
    max_accuracy_drop: float = 0.02
    """Roll back when, on labelled requests, the challenger's accuracy is lower by more."""
    min_labels: int = 50
    """Labelled requests per version needed before accuracy is compared."""
    min_agreement: float | None = None
    """Shadow mode: roll back when fewer answers than this share agree with the champion."""
    auto_promote: bool = True
    """Promote after the last step; otherwise hold there until ``rollout promote``."""
    sticky: str | None = None
    """ab mode: ``header:X-User-ID`` or ``column:customer_id``; what keeps a user on one side."""

    def __post_init__(self) -> None:
        if not self.steps or any(not (0.0 < w <= 1.0) for w in self.steps):
            raise InvalidInputError(
                f"Rollout steps must be traffic weights in (0, 1]. Got {list(self.steps)} "
                "instead.", hint="Pass steps such as 0.1,0.5,1.0.")
        if list(self.steps) != sorted(self.steps):
            raise InvalidInputError(
                f"Rollout steps must not decrease. Got {list(self.steps)} instead.",
                hint="List the weights in the order they apply, such as 0.1,0.5,1.0.")
        for name in ("min_requests", "judge_after", "min_labels"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"The rollout policy's {name} must be at least 1. Got "
                                        f"{getattr(self, name)} instead.")
        if self.min_agreement is not None and not 0.0 <= self.min_agreement <= 1.0:
            raise InvalidInputError(
                f"min_agreement must be a share in [0, 1]. Got {self.min_agreement} instead.")
        if self.sticky is not None and not self.sticky.startswith(("header:", "column:")):
            raise InvalidInputError(
                f"The sticky key must be 'header:NAME' or 'column:NAME'. Got {self.sticky!r} "
                "instead.", hint="For example --sticky header:X-User-ID.")

    def first_weight(self, mode: str) -> float:
        return 0.0 if mode == RolloutMode.SHADOW else self.steps[0]

    def n_steps(self, mode: str) -> int:
        return 1 if mode == RolloutMode.SHADOW else len(self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": list(self.steps), "min_requests": self.min_requests,
            "min_duration_s": self.min_duration_s, "judge_after": self.judge_after,
            "max_error_rate_delta": self.max_error_rate_delta,
            "max_latency_ratio": self.max_latency_ratio,
            "latency_slack_ms": self.latency_slack_ms,
            "max_accuracy_drop": self.max_accuracy_drop, "min_labels": self.min_labels,
            "min_agreement": self.min_agreement, "auto_promote": self.auto_promote,
            "sticky": self.sticky,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RolloutPolicy:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise InvalidInputError(
                f"Unknown rollout policy field(s) {unknown}; the fields are {sorted(known)}.")
        values = dict(d)
        if "steps" in values:
            values["steps"] = tuple(float(w) for w in values["steps"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Rollout:
    """One rollout as stored in the registry."""

    id: int
    name: str
    alias: str
    """The alias the champion holds (and the challenger gets on promotion)."""
    champion: int
    challenger: int
    mode: RolloutMode
    weight: float
    """Current share of traffic to the challenger (0 in shadow mode)."""
    step: int
    policy: RolloutPolicy
    state: RolloutState
    started_at: float
    step_started_at: float
    updated_at: float
    actor: str
    reason: str = ""

    @property
    def active(self) -> bool:
        return self.state == RolloutState.ACTIVE

    @property
    def last_step(self) -> bool:
        return self.step >= self.policy.n_steps(self.mode) - 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "alias": self.alias, "champion": self.champion,
            "challenger": self.challenger, "mode": str(self.mode), "weight": self.weight,
            "step": self.step, "steps": self.policy.n_steps(self.mode),
            "policy": self.policy.to_dict(), "state": str(self.state),
            "started_at": self.started_at, "step_started_at": self.step_started_at,
            "updated_at": self.updated_at, "actor": self.actor, "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class VersionStats:
    """What one version answered during a rollout (or one step of it)."""

    requests: int = 0
    errors: int = 0
    p99_ms: float | None = None
    labelled: int = 0
    correct: int = 0
    compared: int = 0
    """Shadow mode: challenger answers compared with the champion's."""
    agreed: int = 0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.compared if self.compared else None

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors,
                "error_rate": self.error_rate, "p99_ms": self.p99_ms,
                "labelled": self.labelled, "accuracy": self.accuracy,
                "compared": self.compared, "agreement": self.agreement}


Action = Literal["hold", "advance", "promote", "rollback"]


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str
    weight: float | None = None
    """The challenger's weight after an ``advance``."""
    details: dict[str, Any] = field(default_factory=dict)


def decide(rollout: Rollout, champion: VersionStats, challenger: VersionStats, *,
           step_requests: int, now: float) -> Decision:
    """What to do next with an active rollout.

    ``champion`` and ``challenger`` cover the whole rollout so far (the champion keeps a
    baseline even when the challenger takes all the traffic); ``step_requests`` counts the
    challenger's requests in the current step.

    >>> r = Rollout(1, "x", "production", 1, 2, RolloutMode.CANARY, 0.1, 0, RolloutPolicy(
    ...     min_requests=10), RolloutState.ACTIVE, 0.0, 0.0, 0.0, "me")
    >>> decide(r, VersionStats(100, 0, 2.0), VersionStats(30, 9, 2.0), step_requests=30,
    ...        now=1.0).action
    'rollback'
    """
    policy = rollout.policy
    if not rollout.active:
        return Decision("hold", f"the rollout is {rollout.state}")
    worse = _worse(rollout, policy, champion, challenger)
    if worse is not None:
        return Decision("rollback", worse, details={
            "champion": champion.to_dict(), "challenger": challenger.to_dict()})
    elapsed = now - rollout.step_started_at
    if step_requests < policy.min_requests or elapsed < policy.min_duration_s:
        return Decision("hold", f"step {rollout.step + 1}: {step_requests}/"
                                f"{policy.min_requests} requests, {elapsed:.0f}/"
                                f"{policy.min_duration_s:.0f} s")
    held = (f"the challenger held its objectives over {step_requests} requests in "
            f"{elapsed:.0f} s ({_summary(champion, challenger)})")
    if rollout.last_step:
        if not policy.auto_promote:
            return Decision("hold", f"ready to promote: {held}; waiting for "
                                    "'modelyard rollout promote'")
        return Decision("promote", f"promoted after the last step: {held}")
    weight = policy.steps[rollout.step + 1]
    return Decision("advance", f"step {rollout.step + 2} of {policy.n_steps(rollout.mode)} "
                               f"at {weight:.0%}: {held}", weight=weight)


def _worse(rollout: Rollout, policy: RolloutPolicy, champion: VersionStats,
           challenger: VersionStats) -> str | None:
    if challenger.requests < policy.judge_after:
        return None
    if challenger.error_rate > champion.error_rate + policy.max_error_rate_delta:
        return (f"error rate {challenger.error_rate:.1%} against the champion's "
                f"{champion.error_rate:.1%} (tolerance +{policy.max_error_rate_delta:.1%}, "
                f"{challenger.errors} of {challenger.requests} requests failed)")
    if challenger.p99_ms is not None and champion.p99_ms is not None:
        budget = champion.p99_ms * policy.max_latency_ratio + policy.latency_slack_ms
        if challenger.p99_ms > budget:
            return (f"p99 latency {challenger.p99_ms:.1f} ms against the champion's "
                    f"{champion.p99_ms:.1f} ms (budget {budget:.1f} ms = "
                    f"{policy.max_latency_ratio:g}x + {policy.latency_slack_ms:g} ms)")
    if (challenger.labelled >= policy.min_labels and champion.labelled >= policy.min_labels
            and challenger.accuracy is not None and champion.accuracy is not None
            and champion.accuracy - challenger.accuracy > policy.max_accuracy_drop):
        return (f"accuracy {challenger.accuracy:.3f} against the champion's "
                f"{champion.accuracy:.3f} on labelled requests (tolerance "
                f"-{policy.max_accuracy_drop:g})")
    if (rollout.mode == RolloutMode.SHADOW and policy.min_agreement is not None
            and challenger.compared >= policy.judge_after and challenger.agreement is not None
            and challenger.agreement < policy.min_agreement):
        return (f"agreement with the champion {challenger.agreement:.1%} below "
                f"{policy.min_agreement:.1%} over {challenger.compared} shadowed requests")
    return None


def _summary(champion: VersionStats, challenger: VersionStats) -> str:
    parts = [f"errors {challenger.error_rate:.1%} vs {champion.error_rate:.1%}"]
    if challenger.p99_ms is not None and champion.p99_ms is not None:
        parts.append(f"p99 {challenger.p99_ms:.1f} vs {champion.p99_ms:.1f} ms")
    if challenger.accuracy is not None and champion.accuracy is not None:
        parts.append(f"accuracy {challenger.accuracy:.3f} vs {champion.accuracy:.3f}")
    if challenger.agreement is not None:
        parts.append(f"agreement {challenger.agreement:.1%}")
    return ", ".join(parts)


def sticky_bucket(key: str) -> float:
    """A stable number in [0, 1) for a sticky key: the same key lands on the same side.

    >>> sticky_bucket("user-42") == sticky_bucket("user-42")
    True
    """
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def with_state(rollout: Rollout, **changes: Any) -> Rollout:
    """A copy of ``rollout`` with ``changes`` (used by stores and tests)."""
    return replace(rollout, **changes)


def parse_steps(text: str | Sequence[float]) -> tuple[float, ...]:
    """Steps from ``"0.1,0.5,1"`` or ``"10%,50%,100%"`` (or a sequence of numbers)."""
    if not isinstance(text, str):
        return tuple(float(w) for w in text)
    out = []
    for raw in text.split(","):
        part = raw.strip()
        try:
            value = float(part[:-1]) / 100.0 if part.endswith("%") else float(part)
        except ValueError:
            raise InvalidInputError(f"Rollout steps must be numbers. Got {part!r} instead.",
                                    hint="Pass steps such as 0.1,0.5,1 or 10%,50%,100%.") from None
        if math.isnan(value):
            raise InvalidInputError("Rollout steps must be numbers, not NaN.")
        out.append(value)
    return tuple(out)
