"""``modelyard pipeline run|watch|runs|show``: retraining pipelines (docs/pipelines.md)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from modelyard.cli.context import client_of
from modelyard.cli.render import console, err_console, print_json, print_table

if TYPE_CHECKING:
    from modelyard.pipelines.run import RunOutcome
    from modelyard.pipelines.spec import PipelineSpec
    from modelyard.registry.sql.pipeline_store import PipelineRun, SqlPipelineStore

__all__ = ["app"]

app = typer.Typer(help="Retrain models: run a pipeline once, watch its triggers, list runs.",
                  no_args_is_help=True)

_SPEC = typer.Argument(..., help="The pipeline.yaml file.")
_STATUS_STYLE = {"passed": "green", "rejected": "yellow", "failed": "bold red",
                 "running": "cyan"}
REJECTED_EXIT = 1


def _spec(path: Path) -> PipelineSpec:
    from modelyard.pipelines.spec import load_spec

    return load_spec(path)


def _store(ctx: typer.Context) -> SqlPipelineStore:
    from modelyard.registry.sql.pipeline_store import SqlPipelineStore

    return SqlPipelineStore(client_of(ctx).store.engine)


@contextmanager
def _spinner(name: str) -> Iterator[Any]:
    """A spinner on stderr naming the run's current step (quiet when not a terminal)."""
    with err_console.status(f"{escape(name)}: starting") as status:
        yield lambda step: status.update(f"{escape(name)}: {escape(step)}")


@app.command("run")
def run(
    ctx: typer.Context,
    path: Path = _SPEC,
    trigger: str = typer.Option("manual", "--trigger",
                                help="Why this run happens, as recorded with it."),
    json: bool = typer.Option(False, "--json", help="Print the run as JSON."),
) -> None:
    """Run the pipeline once: load data, train, gate against the champion, register and
    release on pass. Exit code 0: passed; 1: rejected by a gate; 2 or more: failed.

    Example: modelyard pipeline run pipelines/fraud.yaml
    """
    from modelyard.pipelines.watch import run_once

    spec = _spec(path)
    client = client_of(ctx)
    with _spinner(spec.name) as progress:
        outcome = run_once(spec, client, trigger=trigger, progress=progress)
    _finish(outcome, json=json)


def _finish(outcome: RunOutcome, *, json: bool) -> None:
    from modelyard.errors import ModelyardError

    run = outcome.run
    if json:
        print_json(run.to_dict())
    else:
        _render_run(run, with_log=False)
    if run.status == "rejected":
        raise typer.Exit(REJECTED_EXIT)
    if run.status == "failed":
        error = outcome.error
        err_console.print(f"Run {run.id} failed; its log: modelyard pipeline show {run.id}")
        if isinstance(error, ModelyardError):
            raise error
        raise RuntimeError(run.error or "the run failed") from error


@app.command("watch")
def watch(
    ctx: typer.Context,
    path: Path = _SPEC,
    poll: float | None = typer.Option(None, "--poll", min=0.01,
                                      help="Seconds between looks at the triggers; default: "
                                           "the triggers' poll_s."),
    max_runs: int | None = typer.Option(None, "--max-runs", min=1,
                                        help="Stop after this many runs."),
    timeout: str | None = typer.Option(None, "--timeout",
                                       help="Stop after this long (30s, 10m, 2h)."),
) -> None:
    """Run the pipeline whenever a trigger fires (new files, an alert, a schedule), one run
    at a time even across processes. A failed run is recorded and watching goes on;
    SIGTERM or Ctrl-C stops after the current run.

    Example: modelyard pipeline watch pipelines/fraud.yaml --poll 30
    """
    from modelyard.monitoring.windows import parse_duration
    from modelyard.pipelines.watch import watch as watch_pipeline

    spec = _spec(path)
    timeout_s = parse_duration(timeout) if timeout else None
    client = client_of(ctx)
    console.print(f"Watching pipeline [bold]{escape(spec.name)}[/] (model "
                  f"{escape(spec.model)}); Ctrl-C stops after the current run.")

    def started(reason: str) -> None:
        console.print(f"{_clock()} run starts: {escape(reason)}", highlight=False, soft_wrap=True)

    def finished(outcome: RunOutcome) -> None:
        console.print(f"{_clock()} {_one_line(outcome.run)}", highlight=False, soft_wrap=True)

    result = watch_pipeline(spec, client, poll_s=poll, max_runs=max_runs, timeout_s=timeout_s,
                            on_start=started, on_run=finished)
    counts = {s: sum(1 for o in result.outcomes if o.run.status == s)
              for s in ("passed", "rejected", "failed")}
    console.print(f"Stopped ({result.stopped_by}) after {len(result.outcomes)} run(s): "
                  + ", ".join(f"{n} {s}" for s, n in counts.items()),
                  highlight=False, soft_wrap=True)


@app.command("runs")
def runs(
    ctx: typer.Context,
    pipeline: str | None = typer.Option(None, "--pipeline", "-p", help="Only this pipeline."),
    model: str | None = typer.Option(None, "--model", "-m", help="Only this model's."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="Newest runs shown."),
    json: bool = typer.Option(False, "--json", help="Print JSON (logs included)."),
) -> None:
    """The recorded runs, newest first: trigger, status, data, versions, what failed.

    Example: modelyard pipeline runs --pipeline fraud-retrain
    """
    found = _store(ctx).list_runs(pipeline=pipeline, model=model, limit=limit)
    if json:
        print_json([r.to_dict() for r in found])
        return
    if not found:
        err_console.print("No pipeline runs yet.")
        return
    print_table("Pipeline runs",
                ["run", "pipeline", "status", "started", "rows", "version", "champion", "note"],
                [(r.id, r.pipeline, r.status, _time(r.started_at, short=True), _rows(r),
                  _version(r.version), _version(r.champion_version), _short(_note(r), 50))
                 for r in found])


@app.command("show")
def show(
    ctx: typer.Context,
    run_id: int = typer.Argument(..., help="The run's id (see 'modelyard pipeline runs')."),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """One run in full: data fingerprint, parameters, metrics of the candidate and the
    champion, every gate, the version made, and the run's log.

    Example: modelyard pipeline show 12
    """
    run_ = _store(ctx).get_run(run_id)
    if json:
        print_json(run_.to_dict())
        return
    _render_run(run_, with_log=True)


# -- rendering --------------------------------------------------------------------------------
def _render_run(run: PipelineRun, *, with_log: bool) -> None:
    style = _STATUS_STYLE.get(run.status, "")
    console.print(f"Run [bold]{run.id}[/] of [bold]{escape(run.pipeline)}[/] (model "
                  f"{escape(run.model)}): [{style}]{run.status}[/]",
                  highlight=False, soft_wrap=True)
    console.print(f"  trigger: {escape(run.trigger)}", highlight=False, soft_wrap=True)
    console.print(f"  started {_time(run.started_at)}, took {_took(run)}",
                  highlight=False, soft_wrap=True)
    data = run.data or {}
    fp = data.get("fingerprint") or {}
    if data:
        console.print(f"  data: {escape(_source(data))}, {fp.get('rows', '?')} rows, sha256 "
                      f"{str(fp.get('sha256', ''))[:16]}", highlight=False, soft_wrap=True)
    if run.params:
        console.print(f"  params: {escape(str(run.params))}", highlight=False, soft_wrap=True)
    if run.candidate_metrics or run.champion_metrics:
        names = list(dict.fromkeys([*run.candidate_metrics, *run.champion_metrics]))
        print_table(None, ["metric", "candidate", f"champion {_version(run.champion_version)}"],
                    [(n, _num(run.candidate_metrics.get(n)), _num(run.champion_metrics.get(n)))
                     for n in names])
    checks = run.gates.get("checks") or []
    if checks:
        print_table(None, ["gate", "result", "detail"],
                    [(c["name"], "passed" if c["passed"] else "FAILED", c["detail"])
                     for c in checks])
    if run.version is not None:
        console.print(f"  registered: models:/{escape(run.model)}/{run.version}",
                      highlight=False, soft_wrap=True)
    if run.error:
        err_console.print(f"  [bold red]error:[/] {escape(run.error)}",
                          highlight=False, soft_wrap=True)
    if with_log and run.log:
        console.rule("log")
        console.print(escape(run.log.rstrip()), highlight=False, soft_wrap=True)


def _one_line(run: PipelineRun) -> str:
    style = _STATUS_STYLE.get(run.status, "")
    return (f"run {run.id} [{style}]{run.status}[/]"
            f"{'' if run.version is None else f' -> version {run.version}'}: "
            f"{escape(_outcome(run))} ({_took(run)})")


def _outcome(run: PipelineRun) -> str:
    if run.status == "failed":
        return run.error or "failed"
    if run.status == "rejected":
        failed = [c["name"] for c in run.gates.get("checks") or [] if not c["passed"]]
        return "failed gates: " + ", ".join(failed)
    if run.status == "passed":
        return f"registered version {run.version}"
    return "running"


def _note(run: PipelineRun) -> str:
    """The trigger of a passed run; what went wrong otherwise."""
    return run.trigger if run.status in ("passed", "running") else _outcome(run)


def _source(data: dict[str, Any]) -> str:
    kind = data.get("kind")
    if kind == "path":
        return f"{data.get('path')} ({len(data.get('files') or [])} file(s))"
    if kind == "sql":
        return f"query on {data.get('url')}"
    if kind == "feedback":
        return f"feedback of {data.get('model')}"
    return str(kind)


def _rows(run: PipelineRun) -> str:
    fp = (run.data or {}).get("fingerprint") or {}
    return str(fp.get("rows", "")) if fp else ""


def _version(version: int | None) -> str:
    return "-" if version is None else f"v{version}"


def _num(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4g}"


def _time(ts: float, *, short: bool = False) -> str:
    return time.strftime("%m-%d %H:%M:%S" if short else "%Y-%m-%d %H:%M:%S",
                         time.localtime(ts))


def _clock() -> str:
    return time.strftime("%H:%M:%S")


def _took(run: PipelineRun) -> str:
    duration = run.duration_s
    return "-" if duration is None else f"{duration:.1f} s"


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"
