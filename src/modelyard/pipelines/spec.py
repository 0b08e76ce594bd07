"""The ``pipeline.yaml`` file: where the training data comes from, how a candidate is trained,
split, gated and released, and what starts a run.

.. code-block:: yaml

    name: fraud-retrain
    model: fraud
    data: {path: "data/*.parquet"}     # or {sql: {url, query}}, or {feedback: fraud, since: 30d}
    target: is_fraud
    train: "train:fit"                       # module:function(train_df, params) -> model
    params: {C: 0.5}
    split: {kind: time, time_column: ts, test_size: 0.2}
    gates: {metrics: {roc_auc: {min: 0.8, min_delta: -0.005}}}
    on_pass: {action: rollout, mode: canary, steps: [0.1, 0.5, 1.0]}
    triggers: {new_data: {poll_s: 60}, alert: any, cron: "0 3 * * *"}

Every key is checked (unknown keys are refused), and every error names the file and the
field. Relative paths resolve against the YAML file's folder; the train function is imported
with that folder and the working directory on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from modelyard.core.names import validate_alias, validate_model_name
from modelyard.core.yaml_files import read_yaml_mapping
from modelyard.errors import InvalidInputError, ModelyardError, NotFoundError
from modelyard.pipelines.gates import GatesConfig, load_gates

__all__ = [
    "AlertTriggerSpec",
    "DataSpec",
    "NewDataTriggerSpec",
    "OnPassSpec",
    "PipelineSpec",
    "SplitSpec",
    "SqlSpec",
    "TrainFunction",
    "TriggersSpec",
    "load_spec",
]

TrainFunction = Callable[[Any, dict[str, Any]], Any]
"""``train(train_df, params) -> model``: the user's training entry point."""

_ENTRYPOINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_EXAMPLE = ("A minimal pipeline.yaml:\n  name: fraud-retrain\n  model: fraud\n"
            "  data: {path: 'data/*.parquet'}\n  target: label\n  train: 'train:fit'")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SqlSpec(_Strict):
    """A SQL query against any SQLAlchemy URL."""

    url: str = Field(min_length=1)
    """SQLAlchemy URL; a relative SQLite path resolves against the YAML file's folder."""

    query: str = Field(min_length=1)
    """The query whose result set is the training frame."""


class DataSpec(_Strict):
    """Exactly one source: ``path`` (a glob, local or any fsspec URI), ``sql``, or
    ``feedback`` (the logged inputs of a model joined with their ground truth)."""

    path: str | None = None
    """Files to read, a glob such as ``data/*.parquet`` or ``s3://bucket/train/*.csv``."""

    format: Literal["parquet", "csv", "jsonl"] | None = None
    """File format; default: from each file's suffix."""

    sql: SqlSpec | None = None

    feedback: str | None = None
    """Model whose inference log and labels become the training frame."""

    since: str | None = None
    """Feedback only: predictions from this long ago (``30d``) or this time (ISO 8601) on."""

    until: str | None = None
    """Feedback only: predictions before this time (a duration ago, or ISO 8601)."""

    version: int | None = Field(default=None, ge=1)
    """Feedback only: the predictions of this version only."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # data: "data/*.parquet" or data: "feedback:fraud"
        if isinstance(data, str):
            if data.startswith("feedback:"):
                return {"feedback": data.removeprefix("feedback:").strip()}
            return {"path": data}
        return data

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        given = [k for k in ("path", "sql", "feedback") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'path', 'sql' or 'feedback'"
                             + (f" (got {', '.join(given)})" if given else ""))
        if self.feedback is None:
            extra = [k for k in ("since", "until", "version") if getattr(self, k) is not None]
            if extra:
                raise ValueError(f"{', '.join(extra)} only apply to a 'feedback' source")
        else:
            validate_model_name(self.feedback)
        if self.format is not None and self.path is None:
            raise ValueError("'format' only applies to a 'path' source")
        return self

    @property
    def kind(self) -> Literal["path", "sql", "feedback"]:
        if self.path is not None:
            return "path"
        return "sql" if self.sql is not None else "feedback"


class SplitSpec(_Strict):
    """The holdout: the last ``test_size`` of the rows by ``time_column`` (``time``), or a
    seeded random share (``random``)."""

    kind: Literal["random", "time"] = "random"
    test_size: float = Field(default=0.2, gt=0, lt=1)
    """Share of the rows held out to evaluate the candidate and the champion."""

    seed: int = 0
    """Seed of the random split (the same data always splits the same way)."""

    time_column: str | None = None
    """Column ordering the rows in time (required for ``kind: time``)."""

    @model_validator(mode="after")
    def _time_needs_column(self) -> SplitSpec:
        if self.kind == "time" and not self.time_column:
            raise ValueError("a time split needs 'time_column'")
        return self


class OnPassSpec(_Strict):
    """What happens to a candidate that passed every gate (it is registered first)."""

    action: Literal["register", "rollout", "promote"] = "register"
    """``register`` only; ``rollout``: start a canary or shadow rollout against the champion;
    ``promote``: move the champion alias to it at once."""

    mode: Literal["canary", "shadow"] = "canary"
    weight: float | None = Field(default=None, gt=0, le=1)
    """Rollout only: the challenger's first share of traffic."""

    steps: list[float] | None = None
    """Rollout only: the challenger's traffic shares, step by step."""

    policy: dict[str, Any] | None = None
    """Rollout only: the rest of the rollout policy (``min_requests``, ``min_duration_s``,
    ``max_error_rate_delta``, ``max_latency_ratio``, ``max_accuracy_drop``, ...); see
    docs/rollouts.md. Unknown fields are refused."""

    @field_validator("policy")
    @classmethod
    def _policy(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            from modelyard.core.rollout import RolloutPolicy

            if "steps" in value:
                raise ValueError("give the steps as on_pass.steps, not inside the policy")
            try:
                RolloutPolicy.from_dict(value)
            except ModelyardError as exc:
                raise ValueError(exc.message) from None
        return value

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (not value or any(not 0 < s <= 1 for s in value)):
            raise ValueError("steps must be a non-empty list of shares in (0, 1]")
        return value

    @model_validator(mode="after")
    def _rollout_options(self) -> OnPassSpec:
        if self.action != "rollout" and (self.weight is not None or self.steps is not None
                                         or self.policy is not None
                                         or "mode" in self.model_fields_set):
            raise ValueError("mode, weight, steps and policy only apply to action: rollout")
        return self


class NewDataTriggerSpec(_Strict):
    """Run when files appear (or change) under ``uri`` that no earlier run has seen."""

    uri: str | None = None
    """A glob, local or fsspec; default: the data source's ``path``."""

    poll_s: float = Field(default=60.0, gt=0)
    """How often to look for new files."""

    settle_s: float = Field(default=2.0, ge=0)
    """A new file must have been left alone this long (not still being copied in)."""


class AlertTriggerSpec(_Strict):
    """Run when an alert of the model starts firing (after the last firing a run handled)."""

    rules: list[str] | Literal["any"] = "any"
    """Alert rule names, or ``any``."""

    poll_s: float = Field(default=30.0, gt=0)
    """How often to read the alert states."""


class TriggersSpec(_Strict):
    """What starts a run under ``modelyard pipeline watch``."""

    new_data: NewDataTriggerSpec | None = None
    alert: AlertTriggerSpec | None = None
    cron: str | None = None
    """A cron schedule, such as ``0 3 * * *`` (03:00 every day, local time)."""

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        # new_data: true | "s3://..."; alert: any | [rule, ...]
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        new_data = data.get("new_data")
        if new_data is True:
            data["new_data"] = {}
        elif new_data is False:
            data.pop("new_data")
        elif isinstance(new_data, str):
            data["new_data"] = {"uri": new_data}
        alert = data.get("alert")
        if alert is True or alert == "any":
            data["alert"] = {}
        elif alert is False:
            data.pop("alert")
        elif isinstance(alert, list):
            data["alert"] = {"rules": alert}
        return data

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron schedule (e.g. '0 3 * * *')")
        return value

    @property
    def any(self) -> bool:
        return self.new_data is not None or self.alert is not None or self.cron is not None


class PipelineSpec(_Strict):
    """One retraining pipeline (see the module docstring for an example)."""

    name: str
    """The pipeline's name: its runs and trigger state are kept under it."""

    model: str
    """The registered model the candidates become versions of."""

    data: DataSpec
    target: str = Field(min_length=1)
    """The label column."""

    features: list[str] | None = None
    """Input columns the model is registered with; default: the columns the trained model
    names (``feature_names_in_``), else every column but the target, the split's time column
    and (for feedback) the log's own columns."""

    train: str
    """``module:function``, called as ``function(train_df, params)``, returning the model."""

    params: dict[str, Any] = Field(default_factory=dict)
    split: SplitSpec = Field(default_factory=SplitSpec)
    gates: GatesConfig | None = None
    gates_file: str | None = None
    """A validation gates YAML (as ``modelyard validate`` reads), instead of ``gates``."""

    on_pass: OnPassSpec = Field(default_factory=OnPassSpec)
    champion_alias: str = "production"
    """The alias of the version candidates are compared against (and that ``promote``
    moves)."""

    triggers: TriggersSpec = Field(default_factory=TriggersSpec)

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source: str = PrivateAttr(default="pipeline spec")

    @field_validator("name", "model")
    @classmethod
    def _names(cls, value: str) -> str:
        try:
            return validate_model_name(value)
        except InvalidInputError as exc:
            raise ValueError(exc.message.replace("The model name", "the name")) from None

    @field_validator("champion_alias")
    @classmethod
    def _alias(cls, value: str) -> str:
        try:
            return validate_alias(value)
        except InvalidInputError as exc:
            raise ValueError(exc.message) from None

    @field_validator("train")
    @classmethod
    def _entrypoint(cls, value: str) -> str:
        if not _ENTRYPOINT.match(value):
            raise ValueError(f"{value!r} is not 'module:function' (e.g. 'train:fit')")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PipelineSpec:
        if self.gates is not None and self.gates_file is not None:
            raise ValueError("give 'gates' or 'gates_file', not both")
        new_data = self.triggers.new_data
        if new_data is not None and new_data.uri is None and self.data.path is None:
            raise ValueError(f"triggers.new_data needs a 'uri' to watch: the data source is "
                             f"{self.data.kind}, not files")
        return self

    # -- resolution against the YAML file's folder -----------------------------------------
    @property
    def base_dir(self) -> Path:
        """The folder relative paths resolve against (the YAML file's)."""
        return self._base_dir

    @property
    def source(self) -> str:
        """Where the spec came from, for messages (the YAML file's path)."""
        return self._source

    def resolve(self, location: str) -> str:
        """A path or URI from the spec, with a relative local path made absolute against
        the YAML file's folder (URIs such as ``s3://...`` are left alone).

        >>> spec.resolve("data/*.parquet")                          # doctest: +SKIP
        '/srv/pipelines/fraud/data/*.parquet'
        """
        if "://" in location:
            return location
        path = Path(location).expanduser()
        return str(path if path.is_absolute() else self._base_dir / path)

    def gates_config(self) -> GatesConfig:
        """The gates: inline, from ``gates_file``, or none but that the candidate works; the
        target is the pipeline's unless the gates name one."""
        if self.gates_file is not None:
            config = load_gates(Path(self.resolve(self.gates_file)))
        elif self.gates is not None:
            config = self.gates
        else:
            config = GatesConfig()
        if getattr(config, "target", None) is None:
            config = config.model_copy(update={"target": self.target})
        return config

    def train_function(self) -> TrainFunction:
        """Import ``train`` afresh (edits between watched runs take effect) and return it."""
        module_name, _, attr = self.train.partition(":")
        where = f"The pipeline {self._source!r}: train {self.train!r}"
        with self.user_code_path():
            _forget_user_module(module_name, self._search_path())
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name is not None and module_name.startswith(exc.name):
                    raise NotFoundError(
                        f"{where}: there is no module {module_name!r}.",
                        hint=f"Put {module_name.replace('.', '/')}.py next to the YAML file "
                             f"({self._base_dir}) or in the working directory.") from None
                raise InvalidInputError(f"{where}: importing it failed: {exc}",
                                        hint="Install the package it needs.") from exc
            except ModelyardError:
                raise
            except Exception as exc:
                raise InvalidInputError(
                    f"{where}: importing {module_name!r} raised {type(exc).__name__}: {exc}",
                    hint="Fix the module; it must import without errors.") from exc
        function = getattr(module, attr, None)
        if not callable(function):
            raise InvalidInputError(
                f"{where}: module {module_name!r} has no function {attr!r}.",
                hint="Define def " + attr + "(train_df, params): ... returning the model.")
        return function  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def user_code_path(self) -> Iterator[None]:
        """The YAML file's folder and the working directory on ``sys.path`` for the block
        (the train function may import its siblings while it runs)."""
        added = [p for p in self._search_path() if p not in sys.path]
        sys.path[:0] = added
        try:
            yield
        finally:
            for p in added:
                with contextlib.suppress(ValueError):
                    sys.path.remove(p)

    def _search_path(self) -> list[str]:
        return list(dict.fromkeys([str(self._base_dir), str(Path.cwd())]))


def _forget_user_module(module_name: str, search_path: list[str]) -> None:
    """Drop a user module found in ``search_path`` from ``sys.modules``, so the next import
    reads the file again: a watcher picks up edits, and two pipelines whose modules share a
    name (``train``) do not get each other's."""
    top = module_name.split(".", 1)[0]
    found = importlib.machinery.PathFinder.find_spec(top, search_path)
    if found is None:
        return  # an installed package: imported (and cached) as usual
    for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
        del sys.modules[name]
    importlib.invalidate_caches()


def load_spec(path: str | Path) -> PipelineSpec:
    """Read and check a ``pipeline.yaml``.

    >>> spec = load_spec("pipelines/fraud.yaml")                   # doctest: +SKIP
    >>> spec.model, spec.split.kind                                 # doctest: +SKIP
    ('fraud', 'time')
    """

    file = Path(path).expanduser()
    data = read_yaml_mapping(file, what="pipeline file", contents="keys", hint=_EXAMPLE)
    return parse_spec(data, base_dir=file.resolve().parent, source=str(file))


def parse_spec(data: Mapping[str, Any], *, base_dir: Path | None = None,
               source: str = "pipeline spec") -> PipelineSpec:
    """A spec from an already-parsed mapping (``load_spec`` reads the file).

    >>> parse_spec({"name": "p", "model": "m", "data": "d/*.csv", "target": "y",
    ...             "train": "train:fit"}).data.path
    'd/*.csv'
    """
    try:
        spec = PipelineSpec.model_validate(dict(data))
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise InvalidInputError(f"The pipeline file {source!r} is invalid: {problems}.",
                                hint="See docs/pipelines.md for every key.") from None
    spec._base_dir = (base_dir or Path.cwd()).resolve()
    spec._source = source
    return spec


def _describe(error: Mapping[str, Any]) -> str:
    field = ".".join(str(p) for p in error["loc"]) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{field}: unknown key"
    if kind == "missing":
        return f"{field}: required"
    message = str(error["msg"]).removeprefix("Value error, ")
    shown = error.get("input")
    if kind != "value_error" and not isinstance(shown, Mapping | list) and shown is not None:
        message += f" (got {shown!r})"
    return f"{field}: {message}"

