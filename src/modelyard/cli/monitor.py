"""``modelyard monitor run|status|report`` and ``modelyard feedback``."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer
from rich.markup import escape

from modelyard.cli.context import State, client_of
from modelyard.cli.render import console, err_console, print_json, print_table

if TYPE_CHECKING:
    from modelyard.monitoring.log_store import LogStore
    from modelyard.monitoring.metric_store import MetricStore
    from modelyard.monitoring.monitor import MonitorConfig, MonitorResult

__all__ = ["app", "feedback"]

app = typer.Typer(help="Watch served models: drift, data quality, performance, alerts.",
                  no_args_is_help=True)

_CONFIG = typer.Option(None, "--config", "-c", exists=False,
                       help="Monitoring YAML (rules, sinks, objectives, drift, quality); "
                            "default: monitoring.config.")
_WINDOW = typer.Option(None, "--window", "-w",
                       help="Window to look at: 1h, 1d, 30m or '5000 rows'; default: "
                            "the config's, else monitoring.window.")


def log_store(ctx: typer.Context) -> LogStore:
    from modelyard.monitoring.log_store import open_log_store
    from modelyard.security.encryption import keyring_from_settings

    state: State = ctx.obj
    uri = state.settings.resolved_log_uri()
    return open_log_store(uri, engine=client_of(ctx).store.engine if uri == "sql" else None,
                          keyring=keyring_from_settings(state.settings.security))


def metric_store(ctx: typer.Context) -> MetricStore:
    from modelyard.monitoring.metric_store import MetricStore

    return MetricStore(client_of(ctx).store.engine)


def monitor_config(ctx: typer.Context, path: Path | None, window: str | None) -> MonitorConfig:
    from modelyard.monitoring.monitor import load_monitor_config

    state: State = ctx.obj
    path = path or state.settings.monitoring.config
    config = load_monitor_config(path, window=window)
    if window is None and path is None:
        config = config.model_copy(update={"window": state.settings.monitoring.window})
    return config


@app.command("run")
def run(
    ctx: typer.Context,
    names: list[str] = typer.Argument(None, help="Models to monitor; default: every model "
                                                 "with an inference log."),
    config_path: Path | None = _CONFIG,
    window: str | None = _WINDOW,
    every: str | None = typer.Option(None, "--every", help="Repeat this often (5m, 1h) "
                                                           "until interrupted."),
    count: int | None = typer.Option(None, "--count", min=1,
                                     help="Stop after this many runs (with --every)."),
    notify: bool = typer.Option(True, "--notify/--no-notify",
                                help="Send alert notifications to the rules' sinks."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Compute drift, data quality, performance, latency and errors over the window, store
    every value, evaluate alert rules and objectives, and notify.

    Example: modelyard monitor run fraud --window 1h --every 5m
    """
    from modelyard.monitoring.monitor import monitor_model, monitored_models
    from modelyard.monitoring.windows import parse_duration

    config = monitor_config(ctx, config_path, window)
    period = parse_duration(every) if every else None
    logs, metrics, source = log_store(ctx), metric_store(ctx), client_of(ctx)
    done = 0
    while True:
        started = time.monotonic()
        models = monitored_models(logs, names)
        if not models:
            err_console.print("No model has an inference log yet; serve one first.")
        results = [monitor_model(m, logs=logs, source=source, config=config, metrics=metrics,
                                 notify=notify) for m in models]
        if json:
            print_json([summary(r) for r in results])
        else:
            for result in results:
                render_result(result)
        done += 1
        if period is None or (count is not None and done >= count):
            return
        time.sleep(max(0.0, period - (time.monotonic() - started)))


def summary(result: MonitorResult) -> dict[str, Any]:
    return {
        "model": result.model, "version": result.version, "window": result.window,
        "window_start": result.window_start, "window_end": result.window_end,
        "requests": result.n_requests, "rows": result.n_rows,
        "values": {k: _num(v) for k, v in sorted(result.values.items())},
        "drift": None if result.drift is None else {
            "share": result.drift.share, "drifted": result.drift.drifted,
            "columns": {c.column: {"method": c.method, "statistic": _num(c.statistic),
                                   "p_value": _num(c.p_value), "drifted": c.drifted}
                        for c in result.drift.columns}},
        "quality": None if result.quality is None else {
            "passed": result.quality.passed,
            "failed": [{"check": c.name, "column": c.column, "value": _num(c.value),
                        "threshold": c.threshold} for c in result.quality.failed()]},
        "objectives": [{"objective": s.objective.expression, "value": _num(s.value),
                        "status": s.status} for s in result.objectives],
        "alerts": [e.to_dict() for e in result.events],
        "firing": result.firing,
        "notes": result.notes,
    }


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def _fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.4g}"


_STATUS_STYLE = {"met": "green", "at_risk": "yellow", "breached": "bold red", "unknown": "dim"}


def render_result(result: MonitorResult) -> None:
    v = result.values
    version = "-" if result.version is None else f"v{result.version}"
    console.print(
        f"[bold]{escape(result.model)}[/] {version}  window {result.window}: "
        f"{result.n_requests} requests, {result.n_rows} rows, "
        f"p99 {_fmt(v.get('latency.p99_ms'))} ms, error rate {_fmt(v.get('error_rate'))}",
        highlight=False)
    if result.drift is not None:
        verdict = "[bold red]DRIFT[/]" if result.drift.drifted else "[green]no drift[/]"
        console.print(f"  drift: {verdict} ({result.drift.share:.0%} of columns, threshold "
                      f"{result.drift.threshold:.0%})")
        drifted = [c for c in result.drift.columns if c.drifted]
        if drifted:
            print_table(None, ["column", "method", "statistic", "threshold"],
                        [(c.column, c.method, _fmt(c.statistic), _fmt(c.threshold))
                         for c in drifted])
    if result.quality is not None and not result.quality.passed:
        print_table("  data quality: failed checks", ["check", "column", "value", "threshold"],
                    [(c.name, c.column or "", _fmt(c.value), _fmt(c.threshold))
                     for c in result.quality.failed()])
    perf = {k: x for k, x in result.performance.items() if math.isfinite(x)}
    if perf:
        console.print("  performance: " + ", ".join(f"{k} {_fmt(x)}" for k, x in perf.items()),
                      highlight=False)
    for status in result.objectives:
        style = _STATUS_STYLE[status.status]
        console.print(f"  objective {escape(status.objective.expression)}: "
                      f"[{style}]{status.status}[/] (now {_fmt(status.value)})",
                      highlight=False)
    for event in result.events:
        console.print(f"  [bold]alert {event.kind}[/]: {escape(event.message)}",
                      highlight=False)
    for note in result.notes:
        console.print(f"  [dim]{escape(note)}[/]", highlight=False)


@app.command("status")
def status(
    ctx: typer.Context,
    names: list[str] = typer.Argument(None, help="Models; default: every monitored model."),
    config_path: Path | None = _CONFIG,
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Each objective as met, at risk or breached, with its latest value, and the alerts
    firing now (from the latest monitoring run).

    Example: modelyard monitor status fraud
    """
    from modelyard.monitoring.objectives import evaluate_objectives

    config = monitor_config(ctx, config_path, None)
    metrics = metric_store(ctx)
    models = list(names) if names else metrics.models()
    objectives = config.alerts.parsed_objectives()
    out: list[dict[str, Any]] = []
    for model in models:
        end, values = metrics.latest(model)
        statuses = evaluate_objectives(objectives.get(model, []), values)
        firing = [s for s in metrics.alert_states(model).values() if s.status == "firing"]
        out.append({"model": model, "as_of": end,
                    "objectives": [{"objective": s.objective.expression,
                                    "value": _num(s.value), "status": s.status}
                                   for s in statuses],
                    "firing": [{"rule": s.rule, "value": _num(s.value), "since": s.since}
                               for s in firing]})
    if json:
        print_json(out)
        return
    rows = []
    for item in out:
        for o in item["objectives"]:
            rows.append((item["model"], o["objective"], _fmt(o["value"]), o["status"]))
        for f in item["firing"]:
            rows.append((item["model"], f"alert {f['rule']}", _fmt(f["value"]), "firing"))
        if not item["objectives"] and not item["firing"]:
            rows.append((item["model"], "(no objectives)", "", "as of " + (
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(item["as_of"]))
                if item["as_of"] else "never")))
    print_table("Objectives and alerts", ["model", "objective", "value", "status"], rows)


@app.command("report")
def report(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    output: Path = typer.Option(..., "--output", "-o", help="File to write (.html or .json)."),
    config_path: Path | None = _CONFIG,
    window: str | None = _WINDOW,
    json: bool = typer.Option(False, "--json", help="Write JSON instead of HTML."),
    history: str = typer.Option("7d", "--history", help="How far back the trend charts go."),
) -> None:
    """Write one self-contained HTML report (or JSON): distributions, drift, quality,
    performance and latency over time, objectives.

    Example: modelyard monitor report fraud -o fraud.html
    """
    from modelyard.monitoring.monitor import monitor_model
    from modelyard.monitoring.report import ReportData, write_report
    from modelyard.monitoring.windows import parse_duration

    config = monitor_config(ctx, config_path, window)
    metrics = metric_store(ctx)
    result = monitor_model(name, logs=log_store(ctx), source=client_of(ctx), config=config,
                           metrics=metrics, notify=False)
    since = result.window_end - parse_duration(history)
    data = ReportData(
        model=name, version=result.version, generated_at=time.time(), window=result.window,
        n_rows=result.n_rows, drift=result.drift, quality=result.quality,
        reference=result.reference, current=result.current, kinds=result.kinds,
        history=metrics.history(name, since=since), performance=result.performance,
        objectives=result.objectives, alerts=result.firing)
    fmt: Literal["html", "json"] = (
        "json" if json or output.suffix.lower() == ".json" else "html")
    write_report(data, output, fmt=fmt)
    console.print(f"Wrote {output} ({fmt}, {result.n_rows} rows in the window).")


def feedback(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model the predictions came from."),
    path: Path = typer.Argument(..., help="CSV, Parquet or JSON-lines file of labels."),
    id_column: str = typer.Option("id", "--id-column", help="Column with request ids."),
    label_column: str = typer.Option("label", "--label-column", help="Column with labels."),
    row_column: str | None = typer.Option(
        None, "--row-column", help="Column with the row inside the request (default 0)."),
    time_column: str | None = typer.Option(
        None, "--time-column", help="Column with when each label was known (epoch seconds "
                                    "or timestamps); default: now."),
) -> None:
    """Record ground truth for earlier predictions, joined with the log by request id.

    Example: modelyard feedback fraud labels.csv --id-column request_id
    """
    from modelyard.cli.datafiles import read_table
    from modelyard.errors import InvalidInputError
    from modelyard.monitoring.feedback import feedback_from_columns

    frame = read_table(path)
    wanted = [c for c in (id_column, label_column, row_column, time_column) if c]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise InvalidInputError(
            f"{str(path)!r} has no column(s) {missing}; it has {list(frame.columns)}.",
            hint="Name the columns with --id-column / --label-column.")
    times = None
    if time_column:
        import pandas as pd

        column = frame[time_column]
        times = (pd.to_datetime(column, utc=True).astype("int64") / 1e9).tolist() \
            if not pd.api.types.is_numeric_dtype(column) else column.astype(float).tolist()
    table = feedback_from_columns(
        frame[id_column].tolist(), frame[label_column].tolist(),
        rows=frame[row_column].tolist() if row_column else None, timestamps=times)
    log_store(ctx).write_feedback(name, table)
    console.print(f"Recorded {table.num_rows} labels for {name}.")
