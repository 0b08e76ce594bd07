"""Alert rules over monitoring metrics: a YAML config, and a pure evaluation step.

A rule compares one metric of one model (or of every model matching a pattern) with a
threshold. :func:`evaluate` is pure: it takes the rules, the current metric values, the time
and the previous states, and returns the new states and the events to send. Sending them is
:mod:`modelyard.monitoring.notify`'s job; persisting the states is the caller's.

The config file::

    sinks:
      ops-hook: {type: webhook, url: "https://hooks.example.com/ml", secret: "s3cr3t"}
      pager: {type: command, argv: ["/usr/local/bin/page", "--team", "ml"]}
    rules:
      - name: drift-high
        model: fraud                    # or "*" (the default), or a pattern such as "fraud-*"
        condition: drift.share > 0.3    # or: metric: drift.share, op: ">", threshold: 0.3
        window: 1h                      # the span of data the metric is computed over
        for: 10m                        # how long the condition must hold before firing
        cooldown: 1h                    # quiet time after a resolve (see evaluate)
        severity: critical
        sinks: [log, ops-hook]          # "log" always exists
    objectives:
      fraud: ["latency_p99_ms <= 50", "accuracy >= 0.9"]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from modelyard.errors import InvalidInputError
from modelyard.monitoring.objectives import (
    Objective,
    canonical_metric,
    compare,
    parse_comparison,
    parse_objective,
)
from modelyard.monitoring.windows import parse_duration

__all__ = [
    "AlertEvent",
    "AlertRule",
    "AlertState",
    "AlertsConfig",
    "CommandSinkConfig",
    "LogSinkConfig",
    "SinkConfig",
    "WebhookSinkConfig",
    "evaluate",
    "load_alerts",
]

Severity = Literal["info", "warning", "critical"]
AlertStatus = Literal["ok", "pending", "firing"]
EventKind = Literal["firing", "resolved"]

_STATUSES: tuple[str, ...] = ("ok", "pending", "firing")
_KINDS: tuple[str, ...] = ("firing", "resolved")
_RULE_EXAMPLE = (
    "A rule looks like: {name: drift-high, model: fraud, condition: 'drift.share > 0.3', "
    "for: 10m, sinks: [log]}."
)
_SINK_EXAMPLE = (
    "A sink looks like: {type: webhook, url: 'https://hooks.example.com/ml', secret: '...'}, "
    "{type: log, level: warning} or {type: command, argv: [/usr/local/bin/page]}."
)
_OBJECTIVE_EXAMPLE = "Objectives look like: {fraud: ['latency_p99_ms <= 50', 'accuracy >= 0.9']}."


def _duration(value: Any) -> Any:
    """Accept a bare number of seconds as well as "30s"; check that the text parses."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        parse_duration(value)  # raises InvalidInputError, a ValueError pydantic reports
    return value


class AlertRule(BaseModel):
    """One alert rule: fire when ``metric op threshold`` holds for ``for`` on a model.

    ``condition: "drift.share > 0.3"`` may stand in for ``metric``, ``op`` and ``threshold``.
    Metric names are canonical (``latency_p99_ms`` is read as ``latency.p99_ms``).

    Example:
        >>> AlertRule(name="drift-high", condition="drift.share > 0.3", for_="10m").for_s
        600.0
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True
    )

    name: str = Field(min_length=1)
    """Unique among the rules; names the alert in events and states."""
    model: str = Field(default="*", min_length=1)
    """The model the rule watches: a name, or a shell-style pattern (``*`` is every model)."""
    metric: str = Field(min_length=1)
    """Metric name, e.g. ``drift.share``, ``feature.age.psi``, ``latency.p99_ms``."""
    op: Literal[">", ">=", "<", "<=", "==", "!="]
    """How the value compares with the threshold when the alert should fire."""
    threshold: FiniteFloat
    """The value the metric is compared with."""
    window: str = "1h"
    """The span of data the metric is computed over (the caller computes the values)."""
    for_: str = Field(default="0s", alias="for")
    """How long the condition must hold before the alert fires (``pending`` meanwhile)."""
    cooldown: str = "30m"
    """After a resolve notification, a new firing is not notified within this time."""
    severity: Severity = "warning"
    """Carried in every event; the log sink picks its level from it."""
    sinks: list[str] = Field(default_factory=lambda: ["log"])
    """Names of the sinks that receive this rule's events."""
    description: str = ""
    """Free text appended to the event message: what it means, what to do."""

    @model_validator(mode="before")
    @classmethod
    def _split_condition(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or "condition" not in data:
            return data
        data = dict(data)
        condition = data.pop("condition")
        clash = [key for key in ("metric", "op", "threshold") if key in data]
        if clash:
            raise ValueError(
                f"'condition' replaces {', '.join(map(repr, clash))}; give one form, not both"
            )
        metric, op, threshold = parse_comparison(condition)
        data.update(metric=metric, op=op, threshold=threshold)
        return data

    @field_validator("metric")
    @classmethod
    def _canonical_metric(cls, value: str) -> str:
        return canonical_metric(value)

    @field_validator("window", "for_", "cooldown", mode="before")
    @classmethod
    def _check_duration(cls, value: Any) -> Any:
        return _duration(value)

    @property
    def condition(self) -> str:
        """The rule's comparison in compact form, e.g. ``drift.share > 0.3``."""
        return f"{self.metric} {self.op} {self.threshold:g}"

    @property
    def window_s(self) -> float:
        """``window`` in seconds."""
        return parse_duration(self.window)

    @property
    def for_s(self) -> float:
        """``for`` in seconds."""
        return parse_duration(self.for_)

    @property
    def cooldown_s(self) -> float:
        """``cooldown`` in seconds."""
        return parse_duration(self.cooldown)

    def matches(self, model: str) -> bool:
        """Whether this rule watches ``model`` (exact name or shell-style pattern)."""
        return fnmatchcase(model, self.model)


class WebhookSinkConfig(BaseModel):
    """A JSON POST to ``url``, signed with HMAC-SHA256 when ``secret`` is set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["webhook"]
    url: str
    """``http://`` or ``https://`` address of the receiver."""
    secret: SecretStr | None = None
    """Shared secret of the ``X-Modelyard-Signature`` header; no signature without one."""
    timeout_s: float = Field(default=5.0, gt=0)
    """Timeout of one attempt."""
    retries: int = Field(default=3, ge=0, le=20)
    """Attempts after the first, on connection errors, 5xx and 429."""
    backoff_s: float = Field(default=0.5, ge=0)
    """Wait before the first retry; it doubles for each further retry."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra request headers, e.g. an ``Authorization`` the receiver wants."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value


class LogSinkConfig(BaseModel):
    """Python logging, logger ``modelyard.alerts``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["log"]
    level: Literal["debug", "info", "warning", "error", "critical"] | None = None
    """Fixed level; by default firing events log at the severity's level (critical as
    ERROR) and resolved events at INFO."""


class CommandSinkConfig(BaseModel):
    """A command run with the event JSON on stdin and ``MODELYARD_ALERT_*`` variables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["command"]
    argv: list[str] = Field(min_length=1)
    """Program and arguments, run without a shell."""
    timeout_s: float = Field(default=30.0, gt=0)
    """The command is killed, and the delivery fails, after this long."""


SinkConfig = Annotated[
    WebhookSinkConfig | LogSinkConfig | CommandSinkConfig, Field(discriminator="type")
]


class AlertsConfig(BaseModel):
    """Rules, the sinks they send to, and the objectives of each model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[AlertRule] = Field(default_factory=list)
    sinks: dict[str, SinkConfig] = Field(default_factory=dict)
    """Sinks by name; a ``log`` sink exists without being declared."""
    objectives: dict[str, list[str]] = Field(default_factory=dict)
    """Objectives by model name, e.g. ``{"fraud": ["latency_p99_ms <= 50"]}``."""

    @field_validator("objectives")
    @classmethod
    def _parse_objectives(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for model, texts in value.items():
            for text in texts:
                try:
                    parse_objective(text)
                except InvalidInputError as exc:
                    raise ValueError(f"objectives of model {model!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _check_references(self) -> AlertsConfig:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"two rules are named {rule.name!r}; give each a unique name")
            seen.add(rule.name)
        known = {"log", *self.sinks}
        for rule in self.rules:
            for sink in rule.sinks:
                if sink not in known:
                    raise ValueError(
                        f"rule {rule.name!r} sends to sink {sink!r}, which is not defined; "
                        f"define it under 'sinks:' or use one of: {', '.join(sorted(known))}"
                    )
        return self

    def parsed_objectives(self) -> dict[str, list[Objective]]:
        """The objectives of each model, parsed."""
        return {model: [parse_objective(t) for t in texts]
                for model, texts in self.objectives.items()}


def load_alerts(
    path_or_text: str | Path | Mapping[str, Any], *, source: str | None = None
) -> AlertsConfig:
    """Read an alerts config from a YAML file, YAML text, or an already-parsed mapping.

    A :class:`~pathlib.Path`, or a one-line string naming an existing file (or ending in
    ``.yaml``/``.yml``), is read as a file; any other string is YAML text. Every error names
    the rule, sink or field at fault in one line, and ``source`` (default: the file's path)
    names where the config came from.

    Example:
        >>> load_alerts("rules: [{name: slow, condition: 'latency_p99_ms > 50'}]").rules[0].metric
        'latency.p99_ms'
    """
    if isinstance(path_or_text, Mapping):
        data: Any = dict(path_or_text)
        where = f" {source!r}" if source else ""
    else:
        import yaml

        text, where = _read_source(path_or_text)
        where = f" {source!r}" if source else where
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            detail = " ".join(str(exc).split())
            raise InvalidInputError(
                f"The alerts config{where} is not valid YAML: {detail}",
                hint="Check the indentation and quote conditions that contain ': '.",
            ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidInputError(
            f"The alerts config{where} must be a mapping with 'rules', 'sinks' and "
            f"'objectives'; got a {type(data).__name__}.",
            hint=_RULE_EXAMPLE,
        )
    try:
        return AlertsConfig.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        problems = "; ".join(_describe(error, data).rstrip(".") for error in errors)
        first = errors[0]["loc"][0] if errors and errors[0]["loc"] else "rules"
        hint = {"sinks": _SINK_EXAMPLE, "objectives": _OBJECTIVE_EXAMPLE}.get(
            str(first), _RULE_EXAMPLE
        )
        raise InvalidInputError(
            f"The alerts config{where} is invalid: {problems}.", hint=hint
        ) from None


def _read_source(path_or_text: str | Path) -> tuple[str, str]:
    if isinstance(path_or_text, str) and "\n" not in path_or_text:
        candidate = Path(path_or_text.strip())
        if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
            path_or_text = candidate
    if isinstance(path_or_text, Path):
        try:
            return path_or_text.read_text(encoding="utf-8"), f" {str(path_or_text)!r}"
        except FileNotFoundError:
            raise InvalidInputError(
                f"There is no alerts config at {str(path_or_text)!r}.",
                hint="Check the path, or pass the YAML text itself.",
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(
                f"Cannot read the alerts config {str(path_or_text)!r}: {exc}"
            ) from None
    return path_or_text, ""


def _describe(error: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    """One readable phrase for one pydantic error, naming the rule or sink it is about."""
    loc = tuple(error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    where, field = _where(loc, data)
    kind = error["type"]
    if kind == "extra_forbidden":
        text = f"unknown field {field!r}"
        if where.startswith("rule "):
            names = sorted(n for n in AlertRule.model_fields if n != "for_")
            text += f"; a rule takes {', '.join([*names, 'for', 'condition'])}"
        elif not where:
            text += "; the file takes rules, sinks and objectives"
    elif kind == "missing":
        text = f"field {field!r} is required"
        if where.startswith("rule ") and field in ("metric", "op", "threshold"):
            text += " (or give 'condition', e.g. 'drift.share > 0.3')"
    elif kind == "union_tag_invalid":
        text = f"type {error['input'].get('type')!r} is unknown; use webhook, log or command"
    elif kind == "union_tag_not_found":
        text = "field 'type' is required: webhook, log or command"
    elif field:
        text = f"field {field!r}: {message.rstrip('.')}"
        if kind != "value_error" and not isinstance(error.get("input"), Mapping | list):
            text += f" (got {error.get('input')!r})"
    else:
        text = message
    return f"{where}: {text}" if where else text


def _where(loc: tuple[Any, ...], data: Mapping[str, Any]) -> tuple[str, str]:
    """``("rule 'drift-high'", "threshold")`` for ``("rules", 0, "threshold")``."""
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        index = loc[1]
        rules = data.get("rules")
        raw = rules[index] if isinstance(rules, list) and index < len(rules) else None
        name = raw.get("name") if isinstance(raw, Mapping) else None
        where = f"rule {name!r}" if isinstance(name, str) else f"rule #{index + 1}"
        return where, ".".join(str(p) for p in loc[2:])
    if len(loc) >= 2 and loc[0] == "sinks":
        # loc is ("sinks", name, <type tag>, field) once the tag has matched
        rest = loc[3:] if len(loc) >= 3 and loc[2] in ("webhook", "log", "command") else loc[2:]
        return f"sink {loc[1]!r}", ".".join(str(p) for p in rest)
    if len(loc) >= 2 and loc[0] == "objectives":
        return f"objectives of model {loc[1]!r}", ".".join(str(p) for p in loc[2:])
    if loc and loc[0] == "objectives":
        return "", ""  # the validator's message names the model
    return "", ".".join(str(p) for p in loc)


@dataclass(frozen=True, slots=True)
class AlertState:
    """Where one (rule, model) pair stands.

    ``since`` is when the current ``status`` began (for ``firing``: when it started firing,
    after any ``for``); ``value`` is the last value seen; ``last_notified`` is when the last
    event (firing or resolved) was emitted for this pair.
    """

    rule: str
    model: str
    status: AlertStatus
    since: float | None
    value: float | None
    last_notified: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the fields."""
        return {"rule": self.rule, "model": self.model, "status": self.status,
                "since": self.since, "value": self.value, "last_notified": self.last_notified}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertState:
        """The state :meth:`to_dict` wrote."""
        try:
            rule, model, status = data["rule"], data["model"], data["status"]
            if not (isinstance(rule, str) and isinstance(model, str) and status in _STATUSES):
                raise TypeError("rule and model must be strings, status ok|pending|firing")
            return cls(rule=rule, model=model, status=status,
                       since=_optional_float(data.get("since")),
                       value=_optional_float(data.get("value")),
                       last_notified=_optional_float(data.get("last_notified")))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"Alert state {dict(data)!r} is not valid: {exc}.",
                hint="It was edited by hand or written by another version; remove it and the "
                "alert starts again from 'ok'.",
            ) from None


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A notification to send: an alert started firing, or resolved."""

    rule: str
    model: str
    metric: str
    value: float | None
    op: str
    threshold: float
    severity: str
    kind: EventKind
    at: float
    message: str
    sinks: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the fields (``sinks`` as a list): the webhook body."""
        return {"rule": self.rule, "model": self.model, "metric": self.metric,
                "value": self.value, "op": self.op, "threshold": self.threshold,
                "severity": self.severity, "kind": self.kind, "at": self.at,
                "message": self.message, "sinks": list(self.sinks)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertEvent:
        """The event :meth:`to_dict` wrote (what a webhook receiver gets)."""
        try:
            kind = data["kind"]
            if kind not in _KINDS:
                raise ValueError(f"kind must be firing or resolved, not {kind!r}")
            return cls(rule=str(data["rule"]), model=str(data["model"]),
                       metric=str(data["metric"]), value=_optional_float(data.get("value")),
                       op=str(data["op"]), threshold=float(data["threshold"]),
                       severity=str(data["severity"]), kind=kind, at=float(data["at"]),
                       message=str(data["message"]),
                       sinks=tuple(str(s) for s in data.get("sinks", ())))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"Alert event {dict(data)!r} is not valid: {exc}.") from None


def _optional_float(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number or null, got {value!r}")
    return float(value)


def evaluate(
    rules: Sequence[AlertRule],
    values: Mapping[str, Mapping[str, float]],
    *,
    now: float,
    states: Mapping[tuple[str, str], AlertState],
) -> tuple[dict[tuple[str, str], AlertState], list[AlertEvent]]:
    """One evaluation of every rule: the new states by ``(rule name, model)`` and the events.

    ``values`` holds the current metric values of each model (computed over each rule's
    ``window``; rules with different windows can be evaluated in separate calls and their
    states merged). ``now`` is the evaluation time in seconds and must grow between calls.

    The state machine of one (rule, model) pair:

    * The condition holds: ``ok`` becomes ``pending`` (or ``firing`` at once when ``for`` is
      0); ``pending`` becomes ``firing`` once it has held for ``for``.
    * It does not hold: ``pending`` and ``firing`` become ``ok``.
    * No data (the metric is absent, NaN or infinite; or the model is absent from ``values``):
      nothing changes, neither firing nor resolving; a pair never seen gets no state.

    Notifications: an alert that starts firing emits one ``firing`` event, and one
    ``resolved`` event when it goes back to ``ok``; nothing while it keeps firing. Cooldown:
    a firing that begins less than ``cooldown`` after the last event of the pair (in practice
    the previous resolve) is *not* notified; the state still shows ``firing``. If it is still
    firing when the cooldown has passed, the ``firing`` event is emitted then; if it resolves
    before, no ``resolved`` event is emitted either, since no firing was announced. An
    alert's state records this as ``last_notified < since``.

    A rule whose ``model`` is a pattern (``*``) gets one pair per matching model in
    ``values``. States of rules not in ``rules`` are dropped from the result.

    Example:
        >>> rule = AlertRule(name="drift", condition="drift.share > 0.3")
        >>> states, events = evaluate([rule], {"fraud": {"drift.share": 0.5}}, now=0, states={})
        >>> states["drift", "fraud"].status, [e.kind for e in events]
        ('firing', ['firing'])
    """
    names = [rule.name for rule in rules]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InvalidInputError(
            f"Alert rule names must be unique; {', '.join(map(repr, duplicates))} repeat.",
            hint="Rename the rules so that each has its own name.",
        )
    known: dict[str, set[str]] = {}
    for rule_name, model in states:
        known.setdefault(rule_name, set()).add(model)
    new_states: dict[tuple[str, str], AlertState] = {}
    events: list[AlertEvent] = []
    for rule in rules:
        models = {m for m in values if rule.matches(m)}
        models |= {m for m in known.get(rule.name, ()) if rule.matches(m)}
        for model in sorted(models):
            key = (rule.name, model)
            state, event = _step(rule, model, states.get(key), _value(values, model, rule), now)
            if state is not None:
                new_states[key] = state
            if event is not None:
                events.append(event)
    return new_states, events


def _value(values: Mapping[str, Mapping[str, float]], model: str, rule: AlertRule) -> float | None:
    metrics = values.get(model)
    raw = metrics.get(rule.metric) if metrics is not None else None
    if raw is None:
        return None
    value = float(raw)
    return value if math.isfinite(value) else None


def _announced(state: AlertState) -> bool:
    """Whether the current firing of ``state`` has been notified."""
    return (state.last_notified is not None and state.since is not None
            and state.last_notified >= state.since)


def _step(
    rule: AlertRule, model: str, previous: AlertState | None, value: float | None, now: float
) -> tuple[AlertState | None, AlertEvent | None]:
    if value is None:
        return previous, None
    if previous is None:
        previous = AlertState(rule.name, model, "ok", now, None, None)
    if not compare(value, rule.op, rule.threshold):
        if previous.status == "ok":
            return replace(previous, value=value), None
        if previous.status == "pending" or not _announced(previous):
            return replace(previous, status="ok", since=now, value=value), None
        resolved = replace(previous, status="ok", since=now, value=value, last_notified=now)
        return resolved, _event(rule, model, value, "resolved", now)
    if previous.status == "ok":
        if rule.for_s > 0:
            return replace(previous, status="pending", since=now, value=value), None
        firing = replace(previous, status="firing", since=now, value=value)
    elif previous.status == "pending":
        started = previous.since if previous.since is not None else now
        if now - started < rule.for_s:
            return replace(previous, value=value), None
        firing = replace(previous, status="firing", since=now, value=value)
    else:
        firing = replace(previous, value=value)
    if _announced(firing):
        return firing, None
    last = firing.last_notified
    if last is not None and now - last < rule.cooldown_s:
        return firing, None
    return replace(firing, last_notified=now), _event(rule, model, value, "firing", now)


def _event(rule: AlertRule, model: str, value: float, kind: EventKind, now: float) -> AlertEvent:
    verb = "is firing" if kind == "firing" else "resolved"
    message = (f"[{rule.severity}] Alert {rule.name!r} {verb} for model {model!r}: "
               f"{rule.metric} is {value:.6g} (fires when {rule.condition}).")
    if rule.description:
        message += f" {rule.description}"
    return AlertEvent(rule=rule.name, model=model, metric=rule.metric, value=value, op=rule.op,
                      threshold=rule.threshold, severity=rule.severity, kind=kind, at=now,
                      message=message, sinks=tuple(rule.sinks))
