"""One run of a retraining pipeline, start to finish, recorded whatever happens.

trigger -> load and fingerprint the data -> split -> the user's train function -> stage the
candidate -> gates against the champion (``models:/NAME@<champion_alias>``) on the same
holdout -> on pass: register with lineage (parent: the champion; data: the training
features; tags: the pipeline and run) -> roll out, promote, or register only.

A model with no champion yet takes its first passing version as the champion directly (there
is nothing to roll out against). A candidate that fails a gate is *not* registered: the run
(``rejected``) keeps its metrics and gate results. Any exception ends the run as ``failed``
with the error and traceback in its log.

What the run logs (logger ``modelyard.pipelines`` and its children) and what the train
function prints is kept as the run's log.

>>> outcome = run_pipeline(load_spec("pipeline.yaml"), client, trigger="manual")  # doctest: +SKIP
>>> outcome.run.status, outcome.run.version                                      # doctest: +SKIP
('passed', 1)
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from modelyard.errors import InvalidInputError, ModelyardError, NotFoundError
from modelyard.pipelines.candidate import model_features, stage_candidate
from modelyard.pipelines.gates import run_gates
from modelyard.pipelines.sources import TrainingData, load_training_data
from modelyard.pipelines.split import split_frame
from modelyard.registry.sql.pipeline_store import PipelineRun, SqlPipelineStore

if TYPE_CHECKING:
    import pandas as pd

    from modelyard._client import Client
    from modelyard.pipelines.report import ValidationReport
    from modelyard.pipelines.spec import PipelineSpec

__all__ = ["RunOutcome", "run_pipeline"]

log = logging.getLogger("modelyard.pipelines.run")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunOutcome:
    """A finished run: its record, the gates' report (when they ran) and the exception that
    failed it (None unless ``run.status == "failed"``)."""

    run: PipelineRun
    report: ValidationReport | None = None
    error: BaseException | None = None


@dataclass
class _Facts:
    """What a run learned so far; recorded even when a later step fails."""

    data: dict[str, Any] | None = None
    candidate_metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] = field(default_factory=dict)
    gates: dict[str, Any] = field(default_factory=dict)
    version: int | None = None
    champion_version: int | None = None
    report: ValidationReport | None = None


def run_pipeline(spec: PipelineSpec, client: Client, *, trigger: str = "manual",
                 store: SqlPipelineStore | None = None, progress: Progress | None = None,
                 on_start: Callable[[int], None] | None = None) -> RunOutcome:
    """Run ``spec`` once and record it; never raises for a failed run (see ``error``).

    ``progress`` is told each step ("loading data", "training", ...); ``on_start`` gets the
    run id as soon as the run is recorded (a watcher notes it in its lease).
    """
    store = store or SqlPipelineStore(client.store.engine)
    actor = client.settings.actor()
    run_id = store.start_run(pipeline=spec.name, model=spec.model, trigger=trigger,
                             params=spec.params)
    if on_start is not None:
        on_start(run_id)
    facts = _Facts()
    capture = _LogCapture()
    status, error = "failed", None
    try:
        with capture:
            log.info("Run %d of pipeline %s (model %s), trigger: %s", run_id, spec.name,
                     spec.model, trigger)
            try:
                status = _execute(spec, client, run_id, trigger, facts, capture,
                                  progress or (lambda _step: None))
            except Exception as exc:
                error = exc
                log.error("Run %d failed: %s\n%s", run_id, _describe(exc),
                          "".join(traceback.format_exception(exc)).rstrip())
    except BaseException as exc:  # interrupted (Ctrl-C): record it, then let it through
        store.finish_run(run_id, status="failed", actor=actor, log=capture.text(),
                         error=f"interrupted ({type(exc).__name__})", **_recorded(facts))
        raise
    run = store.finish_run(run_id, status=status if error is None else "failed", actor=actor,
                           log=capture.text(),
                           error=None if error is None else _describe(error),
                           **_recorded(facts))
    return RunOutcome(run=run, report=facts.report, error=error)


def _execute(spec: PipelineSpec, client: Client, run_id: int, trigger: str, facts: _Facts,
             capture: _LogCapture, progress: Progress) -> str:
    progress("loading data")
    data, train, holdout = _load(spec, client, facts)
    progress("training")
    model = _train(spec, train, run_id, capture)
    exclude = tuple(c for c in (spec.split.time_column,) if c)
    features = model_features(model, train, target=spec.target, exclude=exclude,
                              declared=spec.features, source_features=data.features)
    champion = champion_model = None
    try:
        champion = client.resolve(f"models:/{spec.model}@{spec.champion_alias}")
    except NotFoundError:
        log.info("No champion (models:/%s@%s): the first passing version becomes it",
                 spec.model, spec.champion_alias)
    if champion is not None:
        facts.champion_version = champion.version
        champion_model = client.load(champion.uri)
        log.info("Champion: %s", champion.uri)

    progress("evaluating")
    staged = stage_candidate(client, model, spec.model, train[features], params=spec.params,
                             parent=champion.version if champion else None)
    report = run_gates(staged.version, staged.model, holdout, spec.gates_config(),
                       champion=champion, champion_model=champion_model, target=spec.target)
    facts.report = report
    facts.candidate_metrics = dict(report.candidate_metrics)
    facts.champion_metrics = dict(report.champion_metrics)
    facts.gates = {**report.to_dict(), "candidate": None}
    for check in report.checks:
        log.info("Gate %s: %s (%s)", check.name, "passed" if check.passed else "FAILED",
                 check.detail)
    if not report.passed:
        log.info("Rejected: %s", ", ".join(c.name for c in report.failed()))
        return "rejected"

    progress("registering")
    version = client.register(
        model, spec.model, data=train[features], params=spec.params,
        metrics={k: v for k, v in report.candidate_metrics.items() if math.isfinite(v)},
        parent=champion.version if champion else None,
        tags={"pipeline": spec.name, "pipeline_run": str(run_id),
              "pipeline_data": data.fingerprint.sha256},
        description=f"Trained by pipeline {spec.name}, run {run_id} ({trigger}).")
    facts.version = version.version
    facts.gates["candidate"] = version.uri
    log.info("Registered %s (parent: %s)", version.uri,
             champion.uri if champion else "none")
    _release(spec, client, run_id, version.version, champion is not None, progress)
    return "passed"


def _load(spec: PipelineSpec, client: Client,
          facts: _Facts) -> tuple[TrainingData, pd.DataFrame, pd.DataFrame]:
    """The data, fingerprinted and recorded, and its split."""
    data = load_training_data(spec, client)
    facts.data = data.describe()
    frame = data.frame
    log.info("Loaded %d rows x %d columns (%s), sha256 %s", len(frame), len(frame.columns),
             data.source["kind"], data.fingerprint.sha256[:16])
    if spec.target not in frame.columns:
        raise InvalidInputError(
            f"The training data has no target column {spec.target!r}; its columns are "
            f"{[str(c) for c in frame.columns]}.",
            hint="Fix 'target' in the pipeline (a feedback source's label column is 'label').")
    unlabelled = int(frame[spec.target].isna().sum())
    if unlabelled:
        log.warning("Dropped %d rows without a %s value", unlabelled, spec.target)
        frame = frame[frame[spec.target].notna()].reset_index(drop=True)
    train, holdout = split_frame(frame, spec.split)
    log.info("Split (%s): %d training rows, %d holdout rows", spec.split.kind, len(train),
             len(holdout))
    return data, train, holdout


def _train(spec: PipelineSpec, train: pd.DataFrame, run_id: int, capture: _LogCapture) -> Any:
    """Call the user's train function; what it prints goes to the run's log."""
    train_function = spec.train_function()
    started = time.perf_counter()
    with spec.user_code_path(), capture.stdout():
        try:
            model = train_function(train.copy(), dict(spec.params))
        except ModelyardError:
            raise
        except Exception as exc:
            raise InvalidInputError(
                f"The train function {spec.train} raised {type(exc).__name__}: {exc}",
                hint=f"See the run's log: modelyard pipeline show {run_id}") from exc
    if model is None:
        raise InvalidInputError(f"The train function {spec.train} returned None.",
                                hint="Return the fitted model.")
    log.info("Trained %s in %.2f s", type(model).__name__, time.perf_counter() - started)
    return model


def _release(spec: PipelineSpec, client: Client, run_id: int, version: int,
             has_champion: bool, progress: Progress) -> None:
    """What ``on_pass`` says, once the passing candidate is registered."""
    alias = spec.champion_alias
    why = f"pipeline {spec.name} run {run_id} passed the gates"
    if not has_champion:
        client.set_alias(spec.model, alias, version,
                         reason=f"{why}; first version of {spec.model} to pass")
        log.info("%s@%s -> version %d (no champion before)", spec.model, alias, version)
        return
    action = spec.on_pass.action
    if action == "promote":
        client.set_alias(spec.model, alias, version, reason=why)
        log.info("Promoted: %s@%s -> version %d", spec.model, alias, version)
    elif action == "rollout":
        progress("starting the rollout")
        from modelyard.core.rollout import RolloutPolicy

        policy = RolloutPolicy.from_dict(spec.on_pass.policy or {})
        rollout = client.start_rollout(
            spec.model, version, mode=spec.on_pass.mode, weight=spec.on_pass.weight,
            steps=spec.on_pass.steps, alias=alias, policy=policy, reason=why)
        log.info("Started rollout #%s: %s of version %d against %s", rollout.id,
                 spec.on_pass.mode, version, alias)
    else:
        log.info("Registered only (on_pass: register)")


def _recorded(facts: _Facts) -> dict[str, Any]:
    return {"data": facts.data, "candidate_metrics": facts.candidate_metrics,
            "champion_metrics": facts.champion_metrics, "gates": facts.gates,
            "version": facts.version, "champion_version": facts.champion_version}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ModelyardError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class _LogCapture(logging.Handler):
    """Keeps what a run logs (``modelyard.pipelines``, INFO and up, from the thread running
    it: another watcher's lines are not this run's) and what its train function prints."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self._thread = threading.get_ident()
        self.addFilter(lambda record: record.thread == self._thread)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        self._parts: list[str] = []
        self._guard = threading.Lock()
        self._logger = logging.getLogger("modelyard.pipelines")
        self._level = logging.NOTSET

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._append(self.format(record) + "\n")
        except Exception:  # a log line must never fail the run
            self.handleError(record)

    def _append(self, text: str) -> None:
        with self._guard:
            self._parts.append(text)

    def text(self) -> str:
        with self._guard:
            return "".join(self._parts)

    def __enter__(self) -> _LogCapture:
        self._level = self._logger.level
        if self._logger.getEffectiveLevel() > logging.INFO:
            self._logger.setLevel(logging.INFO)
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)

    @contextlib.contextmanager
    def stdout(self) -> Iterator[None]:
        """Tee ``sys.stdout`` into the log for the block (the train function's prints)."""
        tee = _Tee(sys.stdout, self._append)
        with contextlib.redirect_stdout(tee):  # type: ignore[type-var]
            yield


class _Tee(io.TextIOBase):
    def __init__(self, stream: TextIO, sink: Callable[[str], None]) -> None:
        self._stream = stream
        self._sink = sink

    def write(self, text: str) -> int:
        self._sink(text)
        with contextlib.suppress(Exception):  # a closed or odd stream must not fail training
            self._stream.write(text)
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.flush()
