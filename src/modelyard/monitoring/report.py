"""Monitoring reports: one self-contained HTML page (or its JSON form) about a model's window.

The page has no JavaScript and loads nothing: CSS is inline and every chart is an inline SVG
drawn by :mod:`modelyard.monitoring.charts`. Every string that comes from users (model and
column names, categories, alert fields) is HTML-escaped. Sections, top to bottom: the header
with the overall verdict, objectives, firing alerts, performance and latency over time, data
quality, the drift summary, then one section per feature (reference against current
distribution and its drift scores), drifted features first.
"""

from __future__ import annotations

import html
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from modelyard.errors import InvalidInputError
from modelyard.monitoring.charts import (
    ChartRenderer,
    Series,
    as_float,
    category_shares,
    numeric_histogram,
)

if TYPE_CHECKING:
    from modelyard.monitoring.drift import ColumnDrift, DatasetDrift
    from modelyard.monitoring.objectives import ObjectiveStatus
    from modelyard.monitoring.quality import QualityReport

__all__ = ["ReportData", "Verdict", "render_html", "report_dict", "verdict", "write_report"]

ReportFormat = Literal["html", "json"]
_FORMATS = ("html", "json")


@dataclass(frozen=True)
class ReportData:
    """Everything one report shows about one model over one window.

    ``reference`` and ``current`` hold raw columns (the reference sample and the current
    window) for the distribution charts; ``kinds`` says which columns are ``"numeric"`` (any
    other kind is drawn as categories). ``history`` maps a metric name (``accuracy``,
    ``latency.p99_ms``, ``error_rate``, ``drift.share``...) to ``(timestamps, values)``, unix
    seconds. ``alerts`` are the alerts firing now, each a mapping with ``rule``, ``metric``,
    ``value`` and ``severity`` (and ``op`` and ``threshold`` when known).

    Example:
        >>> data = ReportData(model="fraud", version=3, generated_at=0.0, window="1h",
        ...                   n_rows=0, drift=None, quality=None, reference={}, current={},
        ...                   kinds={}, history={}, performance={}, objectives=[])
        >>> data.model, data.alerts
        ('fraud', ())
    """

    model: str
    version: int | None
    generated_at: float
    window: str
    n_rows: int
    drift: DatasetDrift | None
    quality: QualityReport | None
    reference: Mapping[str, np.ndarray]
    current: Mapping[str, np.ndarray]
    kinds: Mapping[str, str]
    history: Mapping[str, tuple[np.ndarray, np.ndarray]]
    performance: Mapping[str, float]
    objectives: Sequence[ObjectiveStatus]
    alerts: Sequence[Mapping[str, Any]] = field(default=())

    def __post_init__(self) -> None:
        if self.n_rows < 0:
            raise InvalidInputError(
                f"The 'n_rows' parameter of ReportData must be >= 0. Got {self.n_rows} instead.",
                hint="Pass the number of rows in the current window.",
            )
        if not math.isfinite(self.generated_at):
            raise InvalidInputError(
                "The 'generated_at' parameter of ReportData must be a finite unix time. "
                f"Got {self.generated_at} instead.",
                hint="Pass time.time() at the moment the report is built.",
            )
        for metric, pair in self.history.items():
            if len(pair) != 2:
                raise InvalidInputError(
                    f"History of metric '{metric}' must be a (timestamps, values) pair.",
                    hint="Pass two arrays of the same length.",
                )
            n_ts, n_values = np.size(pair[0]), np.size(pair[1])
            if n_ts != n_values:
                raise InvalidInputError(
                    f"History of metric '{metric}' has {n_ts} timestamps but {n_values} values.",
                    hint="Pass one value per timestamp.",
                )


@dataclass(frozen=True, slots=True)
class Verdict:
    """The report's overall state: ``"healthy"``, ``"warning"`` or ``"critical"``, and why."""

    status: Literal["healthy", "warning", "critical"]
    reasons: tuple[str, ...]


_QUIET_SEVERITIES = frozenset({"info"})  # listed with the alerts, but no cause for a warning


def verdict(data: ReportData) -> Verdict:
    """Critical when an objective is breached or a critical alert fires; warning when an
    objective is at risk, the dataset drifted, a quality check failed or a warning alert fires
    (``info`` alerts are listed but change nothing).

    Example:
        >>> data = ReportData(model="fraud", version=3, generated_at=0.0, window="1h",
        ...                   n_rows=0, drift=None, quality=None, reference={}, current={},
        ...                   kinds={}, history={}, performance={}, objectives=[])
        >>> verdict(data)
        Verdict(status='healthy', reasons=())
    """
    critical: list[str] = []
    warning: list[str] = []
    for status in data.objectives:
        text = f"Objective {status.objective.expression} is"
        if status.status == "breached":
            critical.append(f"{text} breached (now {_fmt(status.value)}).")
        elif status.status == "at_risk":
            warning.append(f"{text} at risk (now {_fmt(status.value)}).")
    for alert in data.alerts:
        severity = str(alert.get("severity", "warning")).lower()
        text = (f"Alert {alert.get('rule', '?')} is firing ({alert.get('metric', '?')} = "
                f"{_fmt(alert.get('value'))}).")
        if severity == "critical":
            critical.append(text)
        elif severity not in _QUIET_SEVERITIES:
            warning.append(text)
    if data.drift is not None and data.drift.drifted:
        n = sum(c.drifted for c in data.drift.columns)
        warning.append(
            f"Dataset drift: {n} of {len(data.drift.columns)} features drifted "
            f"({_pct(data.drift.share)}, threshold {_pct(data.drift.threshold)})."
        )
    if data.quality is not None and not data.quality.passed:
        failed = [c for c in data.quality.checks if not c.passed]
        warning.append(f"{len(failed)} data-quality check{_s(len(failed))} failed.")
    if critical:
        return Verdict("critical", tuple(critical + warning))
    if warning:
        return Verdict("warning", tuple(warning))
    return Verdict("healthy", ())


# -- JSON -----------------------------------------------------------------------------------


def report_dict(data: ReportData) -> dict[str, Any]:
    """The report as plain JSON-able data: everything but the raw reference/current columns.

    Non-finite numbers become None; numpy scalars and arrays become Python numbers and lists.

    Example:
        >>> data = ReportData(model="fraud", version=3, generated_at=0.0, window="1h",
        ...                   n_rows=0, drift=None, quality=None, reference={}, current={},
        ...                   kinds={}, history={}, performance={}, objectives=[])
        >>> report_dict(data)["verdict"]
        {'status': 'healthy', 'reasons': []}
    """
    state = verdict(data)
    drift: dict[str, Any] | None = None
    if data.drift is not None:
        drift = {
            "share": data.drift.share,
            "threshold": data.drift.threshold,
            "drifted": data.drift.drifted,
            "n_columns": len(data.drift.columns),
            "n_drifted": sum(c.drifted for c in data.drift.columns),
            "columns": [_column_dict(c) for c in data.drift.columns],
            "skipped": list(data.drift.skipped),
        }
    quality: dict[str, Any] | None = None
    if data.quality is not None:
        quality = {
            "n_rows": data.quality.n_rows,
            "passed": data.quality.passed,
            "checks": [
                {"name": c.name, "column": c.column, "value": c.value,
                 "threshold": c.threshold, "passed": c.passed, "detail": c.detail}
                for c in data.quality.checks
            ],
        }
    out = {
        "model": data.model,
        "version": data.version,
        "generated_at": data.generated_at,
        "generated_at_iso": _iso(data.generated_at),
        "window": data.window,
        "n_rows": data.n_rows,
        "verdict": {"status": state.status, "reasons": list(state.reasons)},
        "objectives": [
            {"expression": s.objective.expression, "metric": s.objective.metric,
             "op": s.objective.op, "target": s.objective.target, "value": s.value,
             "status": s.status}
            for s in data.objectives
        ],
        "alerts": [dict(a) for a in data.alerts],
        "performance": dict(data.performance),
        "drift": drift,
        "quality": quality,
        "kinds": dict(data.kinds),
        "history": {
            metric: {"timestamps": ts, "values": values}
            for metric, (ts, values) in data.history.items()
        },
    }
    result: dict[str, Any] = _jsonable(out)
    return result


def _column_dict(c: ColumnDrift) -> dict[str, Any]:
    return {
        "column": c.column, "kind": c.kind, "method": c.method, "statistic": c.statistic,
        "p_value": c.p_value, "threshold": c.threshold, "drifted": c.drifted,
        "scores": dict(c.scores), "n_reference": c.n_reference, "n_current": c.n_current,
    }


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return str(value)


# -- writing --------------------------------------------------------------------------------


def write_report(data: ReportData, path: Path, *, fmt: ReportFormat = "html") -> None:
    """Write the report to ``path`` as HTML or JSON, atomically (a temporary file, renamed).

    A reader never sees half a report, and a failed render leaves an older report in place.
    Missing parent folders are created.

    Example:
        >>> data = ReportData(model="fraud", version=3, generated_at=0.0, window="1h",
        ...                   n_rows=0, drift=None, quality=None, reference={}, current={},
        ...                   kinds={}, history={}, performance={}, objectives=[])
        >>> write_report(data, Path("report.json"), fmt="json")  # doctest: +SKIP
    """
    if fmt not in _FORMATS:
        raise InvalidInputError(
            f"Report format {fmt!r} is not supported; formats are 'html' and 'json'.",
            hint="Pass fmt='html' or fmt='json'.",
        )
    if fmt == "html":
        payload = render_html(data).encode("utf-8")
    else:
        import orjson

        payload = orjson.dumps(report_dict(data), option=orjson.OPT_INDENT_2) + b"\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- HTML -----------------------------------------------------------------------------------


def render_html(data: ReportData) -> str:
    """The report as one self-contained HTML page: inline CSS and SVG, no script, no links out.

    Example:
        >>> data = ReportData(model="fraud", version=3, generated_at=0.0, window="1h",
        ...                   n_rows=0, drift=None, quality=None, reference={}, current={},
        ...                   kinds={}, history={}, performance={}, objectives=[])
        >>> page = render_html(data)
        >>> page.startswith("<!DOCTYPE html>"), "<script" in page
        (True, False)
    """
    charts = ChartRenderer()
    state = verdict(data)
    features = _features(data)
    title = f"{data.model} v{data.version}" if data.version is not None else data.model
    body = "\n".join(
        [
            _header(data, state, title),
            _nav(data, features),
            _objectives_section(data),
            _alerts_section(data),
            _history_section(data, charts),
            _quality_section(data),
            _drift_section(data, features),
            _features_section(data, features, charts),
        ]
    )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>Monitoring report: {_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n<footer>Generated by modelyard "
        f"{_e(_modelyard_version())} at {_e(_iso(data.generated_at))}.</footer>\n"
        "</body>\n</html>\n"
    )


@dataclass(frozen=True, slots=True)
class _Feature:
    anchor: str
    name: str
    kind: str
    drift: ColumnDrift | None


def _features(data: ReportData) -> list[_Feature]:
    """Every column with drift scores or raw data; drifted first, otherwise in given order."""
    by_name: dict[str, ColumnDrift | None] = {}
    if data.drift is not None:
        for scored in data.drift.columns:
            by_name[scored.column] = scored
    for name in (*data.kinds, *data.reference, *data.current):
        by_name.setdefault(name, None)
    ordered = sorted(
        by_name.items(), key=lambda item: not (item[1] is not None and item[1].drifted)
    )
    out = []
    for i, (name, column) in enumerate(ordered, start=1):
        kind = data.kinds.get(name) or (column.kind if column is not None else None)
        if kind is None:
            values = data.current.get(name, data.reference.get(name))
            numeric = values is not None and as_float(values) is not None
            kind = "numeric" if numeric else "categorical"
        out.append(_Feature(f"feature-{i}", name, kind, column))
    return out


def _header(data: ReportData, state: Verdict, title: str) -> str:
    label = {"healthy": "Healthy", "warning": "Needs attention", "critical": "Critical"}
    reasons = (
        "<ul>" + "".join(f"<li>{_e(r)}</li>" for r in state.reasons) + "</ul>"
        if state.reasons
        else "<p>All objectives are met, no alert is firing, no dataset drift, "
        "and every data-quality check passed.</p>"
    )
    facts = [
        ("Model", data.model),
        ("Version", "—" if data.version is None else str(data.version)),
        ("Window", data.window),
        ("Rows", f"{data.n_rows:,}"),
        ("Generated", _iso(data.generated_at)),
    ]
    dl = "".join(f"<div><dt>{k}</dt><dd>{_e(v)}</dd></div>" for k, v in facts)
    return (
        f"<header class=\"report\">\n<p class=\"eyebrow\">Monitoring report</p>\n"
        f"<h1>{_e(title)}</h1>\n<dl class=\"facts\">{dl}</dl>\n"
        f"<div class=\"verdict {state.status}\" id=\"verdict\">"
        f"<p class=\"verdict-title\"><span class=\"dot\"></span>{label[state.status]}</p>"
        f"{reasons}</div>\n</header>"
    )


def _nav(data: ReportData, features: Sequence[_Feature]) -> str:
    links = [("objectives", "Objectives")]
    if data.alerts:
        links.append(("alerts", f"Alerts ({len(data.alerts)})"))
    links += [("over-time", "Over time"), ("quality", "Data quality"), ("drift", "Drift")]
    if features:
        links.append(("features", f"Features ({len(features)})"))
    items = "".join(f"<a href=\"#{a}\">{t}</a>" for a, t in links)
    return f"<nav aria-label=\"Sections\">{items}</nav>"


def _section(anchor: str, title: str, content: str, *, note: str = "") -> str:
    note_html = f"<p class=\"note\">{note}</p>" if note else ""
    return (
        f"<section id=\"{anchor}\">\n<h2>{title}</h2>\n{note_html}{content}\n</section>"
    )


def _objectives_section(data: ReportData) -> str:
    if not data.objectives:
        return _section("objectives", "Objectives",
                        "<p class=\"empty\">No objectives are defined for this model.</p>")
    rows = "".join(
        f"<tr><td><code>{_e(s.objective.expression)}</code></td>"
        f"<td>{_e(s.objective.metric)}</td>"
        f"<td class=\"num\">{_e(_fmt(s.value))}</td>"
        f"<td class=\"num\">{_e(s.objective.op)} {_e(_fmt(s.objective.target))}</td>"
        f"<td>{_status_badge(s.status)}</td></tr>"
        for s in data.objectives
    )
    table = _table(["Objective", "Metric", "Current value", "Target", "Status"], rows,
                   numeric=(2, 3))
    return _section("objectives", "Objectives", table)


_STATUS_LABELS = {"met": "met", "at_risk": "at risk", "breached": "breached",
                  "unknown": "unknown"}
_STATUS_CLASSES = {"met": "good", "at_risk": "warn", "breached": "bad", "unknown": "neutral"}


def _status_badge(status: str) -> str:
    cls = _STATUS_CLASSES.get(status, "neutral")
    return f"<span class=\"badge {cls}\">{_e(_STATUS_LABELS.get(status, status))}</span>"


def _badge(ok: bool, good: str, bad: str) -> str:
    return f"<span class=\"badge {'good' if ok else 'bad'}\">{good if ok else bad}</span>"


def _alerts_section(data: ReportData) -> str:
    if not data.alerts:
        return ""
    rows = []
    for alert in data.alerts:
        severity = str(alert.get("severity", "warning"))
        cls = {"critical": "bad", "info": "neutral"}.get(severity.lower(), "warn")
        condition = ""
        if alert.get("op") is not None and alert.get("threshold") is not None:
            condition = f"{alert['op']} {_fmt(alert['threshold'])}"
        rows.append(
            f"<tr><td>{_e(alert.get('rule', ''))}</td><td>{_e(alert.get('metric', ''))}</td>"
            f"<td class=\"num\">{_e(_fmt(alert.get('value')))}</td>"
            f"<td class=\"num\">{_e(condition)}</td>"
            f"<td><span class=\"badge {cls}\">{_e(severity)}</span></td></tr>"
        )
    table = _table(["Rule", "Metric", "Value", "Fires when", "Severity"], "".join(rows),
                   numeric=(2, 3))
    return _section("alerts", "Firing alerts", table)


def _metric_key(metric: str) -> str:
    """``latency.p99_ms``, ``latency_p99_ms`` and ``latency.p99`` all name the same metric."""
    from modelyard.monitoring.objectives import canonical_metric

    return canonical_metric(metric)


_MAX_HISTORY_CHARTS = 12


def _history_groups(data: ReportData) -> tuple[list[tuple[str, str, list[str]]], list[str]]:
    """(title, y label, metrics) per chart: each performance metric alone, latencies together,
    then error rate, drift share and anything else; and the metrics left undrawn.

    Per-feature scores (``feature.<col>.<score>``) and the drift counts beside
    ``drift.share`` are not drawn: the feature sections and the drift share say the same.
    """
    perf, latency, errors, drift, other = [], [], [], [], []
    performance_keys = {_metric_key(m) for m in data.performance}
    for metric, (ts, _) in data.history.items():
        key = _metric_key(metric)
        if np.size(ts) == 0 or key.startswith("feature.") or (
            key.startswith("drift.") and key != "drift.share"
        ):
            continue
        if key.startswith("latency."):
            latency.append(metric)
        elif key.startswith("error_rate"):
            errors.append(metric)
        elif key == "drift.share":
            drift.append(metric)
        elif key in performance_keys or key in _KNOWN_PERFORMANCE:
            perf.append(metric)
        else:
            other.append(metric)
    groups = [(m, "", [m]) for m in perf]
    if latency:
        groups.append(("Latency", "milliseconds", latency))
    groups += [(m, "", [m]) for m in (*errors, *drift, *other)]
    left = [m for _, _, metrics in groups[_MAX_HISTORY_CHARTS:] for m in metrics]
    return groups[:_MAX_HISTORY_CHARTS], left


_KNOWN_PERFORMANCE = frozenset({
    "accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "mae", "rmse", "r2",
    "mape", "estimated_accuracy",
})


def _targets(data: ReportData, metrics: Iterable[str]) -> list[tuple[str, float]]:
    keys = {_metric_key(m) for m in metrics}
    out = [
        # beside one metric "target >= 0.9" is enough; beside several, say whose target
        (f"target {s.objective.op} {_fmt(s.objective.target)}" if len(keys) == 1
         else f"target: {s.objective.expression}", float(s.objective.target))
        for s in data.objectives
        if _metric_key(s.objective.metric) in keys
    ]
    if data.drift is not None and "drift.share" in keys:
        out.append((f"drift threshold {_pct(data.drift.threshold)}", float(data.drift.threshold)))
    return out


def _history_section(data: ReportData, charts: ChartRenderer) -> str:
    groups, left = _history_groups(data)
    cards = []
    for title, ylabel, metrics in groups:
        series = [Series(m, np.asarray(data.history[m][0]), np.asarray(data.history[m][1]))
                  for m in metrics]
        svg = charts.time_series(series, targets=_targets(data, metrics), ylabel=ylabel,
                                 label=f"{title} over time")
        current = ""
        if len(metrics) == 1 and metrics[0] in data.performance:
            current = f" <span class=\"muted\">now {_e(_fmt(data.performance[metrics[0]]))}</span>"
        cards.append(f"<figure class=\"card\"><figcaption>{_e(title)}{current}</figcaption>"
                     f"{svg}</figure>")
    perf_table = ""
    if data.performance:
        rows = "".join(
            f"<tr><td>{_e(m)}</td><td class=\"num\">{_e(_fmt(v))}</td></tr>"
            for m, v in data.performance.items()
        )
        perf_table = ("<h3>Current window</h3>"
                      + _table(["Metric", "Value"], rows, numeric=(1,), cls="compact"))
    if not cards and not perf_table:
        content = "<p class=\"empty\">No metric history was recorded for this model yet.</p>"
    else:
        grid = f"<div class=\"grid\">{''.join(cards)}</div>" if cards else ""
        more = ""
        if left:
            more = (f"<p class=\"caption\">Also recorded, not drawn: "
                    f"{_e(', '.join(left))}.</p>")
        content = perf_table + grid + more
    return _section(
        "over-time", "Performance and latency over time", content,
        note="Times in UTC. Dashed lines are objective targets and thresholds." if cards else "",
    )


def _quality_section(data: ReportData) -> str:
    if data.quality is None:
        return _section("quality", "Data quality",
                        "<p class=\"empty\">No data-quality checks were run.</p>")
    q = data.quality
    rows = "".join(
        f"<tr class=\"{'' if c.passed else 'failed'}\"><td>{_e(c.name)}</td>"
        f"<td>{_e(c.column) if c.column is not None else '<span class=muted>all</span>'}</td>"
        f"<td class=\"num\">{_e(_fmt(c.value))}</td>"
        f"<td class=\"num\">{_e(_fmt(c.threshold))}</td>"
        f"<td>{_badge(c.passed, 'passed', 'failed')}</td><td>{_e(c.detail)}</td></tr>"
        for c in sorted(q.checks, key=lambda c: c.passed)
    )
    n_failed = sum(not c.passed for c in q.checks)
    note = (f"{len(q.checks)} checks on {q.n_rows:,} rows: "
            f"{'all passed' if not n_failed else f'{n_failed} failed'}.")
    table = (_table(["Check", "Column", "Value", "Threshold", "Result", "Detail"], rows,
                    numeric=(2, 3))
             if q.checks else "<p class=\"empty\">No checks apply to this data.</p>")
    return _section("quality", "Data quality", table, note=_e(note))


def _drift_section(data: ReportData, features: Sequence[_Feature]) -> str:
    d = data.drift
    if d is None:
        return _section("drift", "Drift",
                        "<p class=\"empty\">Drift was not computed for this window.</p>")
    n_drifted = sum(c.drifted for c in d.columns)
    share = min(max(d.share, 0.0), 1.0) if math.isfinite(d.share) else 0.0
    threshold = min(max(d.threshold, 0.0), 1.0) if math.isfinite(d.threshold) else 0.0
    meter = (
        f"<div class=\"meter {'bad' if d.drifted else 'good'}\" role=\"img\" "
        f"aria-label=\"{_pct(d.share)} of features drifted, threshold {_pct(d.threshold)}\">"
        f"<div class=\"fill\" style=\"width:{share * 100:.2f}%\"></div>"
        f"<div class=\"mark\" style=\"left:{threshold * 100:.2f}%\"></div></div>"
    )
    summary = (
        f"<div class=\"drift-summary\"><p class=\"big\">{n_drifted} of {len(d.columns)} "
        f"features drifted <span class=\"muted\">({_pct(d.share)}; dataset drift when "
        f"≥ {_pct(d.threshold)})</span> "
        f"{_badge(not d.drifted, 'no dataset drift', 'dataset drift')}</p>{meter}</div>"
    )
    rows = "".join(
        f"<tr><td><a href=\"#{f.anchor}\">{_e(f.name)}</a></td><td>{_e(f.kind)}</td>"
        f"<td>{_e(f.drift.method)}</td><td class=\"num\">{_e(_fmt(f.drift.statistic))}</td>"
        f"<td class=\"num\">{_e(_fmt(f.drift.p_value))}</td>"
        f"<td class=\"num\">{_e(_fmt(f.drift.threshold))}</td>"
        f"<td>{_badge(not f.drift.drifted, 'stable', 'drifted')}</td></tr>"
        for f in features
        if f.drift is not None
    )
    table = _table(["Feature", "Kind", "Test", "Statistic", "p-value", "Threshold", "Result"],
                   rows, numeric=(3, 4, 5))
    skipped = ""
    if d.skipped:
        names = ", ".join(_e(name) for name in d.skipped)
        skipped = (f"<p class=\"caption\">Not tested, for lack of values on one side: "
                   f"{names}.</p>")
    return _section("drift", "Drift", summary + table + skipped)


def _features_section(data: ReportData, features: Sequence[_Feature],
                      charts: ChartRenderer) -> str:
    if not features:
        return ""
    blocks = "\n".join(_feature_block(data, f, charts) for f in features)
    return _section(
        "features", "Features", blocks,
        note="The reference sample against the current window, drifted features first. "
        "Histograms span the 0.1st to 99.9th percentiles of both samples together.",
    )


def _feature_block(data: ReportData, feature: _Feature, charts: ChartRenderer) -> str:
    empty = np.empty(0)
    ref = np.asarray(data.reference.get(feature.name, empty))
    cur = np.asarray(data.current.get(feature.name, empty))
    stats: list[tuple[str, str, str]] = []
    chart = "<p class=\"empty\">No raw values to draw.</p>"
    caption = ""
    ref_f = as_float(ref) if feature.kind == "numeric" else None
    cur_f = as_float(cur) if feature.kind == "numeric" else None
    if ref.size + cur.size == 0:
        pass
    elif ref_f is not None and cur_f is not None:
        hist = numeric_histogram(ref_f, cur_f)
        chart = charts.numeric(hist, label=f"Distribution of {feature.name}")
        stats = [
            ("mean", _fmt(_nan_stat(np.nanmean, ref_f)), _fmt(_nan_stat(np.nanmean, cur_f))),
            ("std", _fmt(_nan_stat(np.nanstd, ref_f)), _fmt(_nan_stat(np.nanstd, cur_f))),
            ("median", _fmt(_nan_stat(np.nanmedian, ref_f)),
             _fmt(_nan_stat(np.nanmedian, cur_f))),
            ("missing", _pct(_share(hist.missing_reference, ref_f.size)),
             _pct(_share(hist.missing_current, cur_f.size))),
        ]
    else:
        shares = category_shares(ref, cur)
        chart = charts.categorical(shares, label=f"Category shares of {feature.name}")
        stats = [
            ("categories", f"{shares.n_categories_reference:,}",
             f"{shares.n_categories_current:,}"),
            ("new in current", "", f"{len(shares.unseen):,}"),
        ]
        if shares.unseen:
            shown = ", ".join(shares.unseen[:5]) + (", …" if len(shares.unseen) > 5 else "")
            caption = f"Categories the reference never had: {shown}."
        if shares.n_other:
            caption += (
                f" {shares.n_other:,} smaller categor{'y is' if shares.n_other == 1 else 'ies are'}"
                f" not drawn: {_pct(shares.other_reference)} of reference rows, "
                f"{_pct(shares.other_current)} of current rows."
            )
    stats.append(("rows", f"{ref.size:,}", f"{cur.size:,}"))
    d = feature.drift
    badge = "" if d is None else _badge(not d.drifted, "stable", "drifted")
    scores = ""
    if d is not None:
        scores = _table(
            ["Test", "Statistic", "p-value", "Threshold"],
            f"<tr><td>{_e(d.method)}</td><td class=\"num\">{_e(_fmt(d.statistic))}</td>"
            f"<td class=\"num\">{_e(_fmt(d.p_value))}</td>"
            f"<td class=\"num\">{_e(_fmt(d.threshold))}</td></tr>",
            numeric=(1, 2, 3), cls="kv",
        )
        others = "".join(
            f"<span class=\"score\">{_e(name)} <b>{_e(_fmt(value))}</b></span>"
            for name, value in d.scores.items()
        )
        if others:
            scores += f"<p class=\"scores\"><span class=\"label\">All scores</span>{others}</p>"
    stat_rows = "".join(
        f"<tr><th scope=\"row\">{_e(k)}</th><td class=\"num\">{_e(r)}</td>"
        f"<td class=\"num\">{_e(c)}</td></tr>"
        for k, r, c in stats
    )
    summary = (f"<table class=\"kv\"><thead><tr><th></th>"
               f"<th class=\"num\">reference</th><th class=\"num\">current</th></tr></thead>"
               f"<tbody>{stat_rows}</tbody></table>")
    caption_html = f"<p class=\"caption\">{_e(caption.strip())}</p>" if caption else ""
    return (
        f"<article class=\"feature\" id=\"{feature.anchor}\">\n"
        f"<h3>{_e(feature.name)} <span class=\"kind\">{_e(feature.kind)}</span> {badge}</h3>\n"
        f"<div class=\"feature-body\"><div class=\"feature-chart\">{chart}{caption_html}</div>"
        f"<div class=\"feature-tables\">{scores}{summary}</div></div>\n</article>"
    )


def _nan_stat(fn: Any, values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(fn(finite)) if finite.size else None


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _table(headers: Sequence[str], rows: str, *, numeric: Sequence[int] = (),
           cls: str = "") -> str:
    num = ' class="num"'
    head = "".join(
        f"<th{num if i in numeric else ''}>{h}</th>" for i, h in enumerate(headers)
    )
    cls_attr = f" class=\"{cls}\"" if cls else ""
    return (f"<div class=\"table-wrap\"><table{cls_attr}><thead><tr>{head}</tr></thead>"
            f"<tbody>{rows}</tbody></table></div>")


# -- formatting -----------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: object) -> str:
    """Numbers for people: 4 significant digits, thousands separators, '—' for none/NaN."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return "—"
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        if v == 0:
            return "0"
        if 1e-4 <= abs(v) < 1e6:
            if abs(v) >= 1000:
                return f"{v:,.1f}".removesuffix(".0")
            return f"{v:.4g}"
        return f"{v:.3g}"
    return str(value)


def _pct(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value * 100:.1f}%".replace(".0%", "%")


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _modelyard_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("modelyard")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "(development)"


_CSS = """
:root{--text:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#f6f8fa;--card:#fff;
--good:#1a7f37;--good-bg:#dafbe1;--warn:#9a6700;--warn-bg:#fff8c5;--bad:#cf222e;
--bad-bg:#ffebe9;--neutral:#59636e;--neutral-bg:#eff2f5;--accent:#0969da}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--text);line-height:1.5;
font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue","Noto Sans",
"Liberation Sans",Arial,sans-serif}
main{max-width:1200px;margin:0 auto;padding:28px 28px 12px}
footer{max-width:1200px;margin:0 auto;padding:8px 28px 32px;color:var(--muted);font-size:13px}
header.report,section{background:var(--card);border:1px solid var(--line);border-radius:12px;
padding:22px 26px;margin-bottom:18px}
.eyebrow{margin:0;color:var(--muted);font-size:13px;text-transform:uppercase;
letter-spacing:.06em;font-weight:600}
h1{margin:2px 0 14px;font-size:28px;line-height:1.2;overflow-wrap:anywhere}
h2{margin:0 0 14px;font-size:20px}
h3{margin:18px 0 8px;font-size:16px;overflow-wrap:anywhere}
.facts{display:flex;flex-wrap:wrap;gap:10px 36px;margin:0 0 18px}
.facts div{min-width:90px}
.facts dt{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.05em}
.facts dd{margin:2px 0 0;font-weight:600;overflow-wrap:anywhere}
.verdict{border-radius:10px;padding:12px 18px;border:1px solid}
.verdict.healthy{background:var(--good-bg);border-color:#aceebb}
.verdict.warning{background:var(--warn-bg);border-color:#f5e0a0}
.verdict.critical{background:var(--bad-bg);border-color:#ffcecb}
.verdict-title{margin:0;font-weight:700;font-size:17px;display:flex;align-items:center;gap:8px}
.verdict .dot{width:11px;height:11px;border-radius:50%;display:inline-block}
.verdict.healthy .dot{background:var(--good)}.verdict.warning .dot{background:var(--warn)}
.verdict.critical .dot{background:var(--bad)}
.verdict ul{margin:6px 0 0;padding-left:22px}.verdict p:not(.verdict-title){margin:4px 0 0}
nav{display:flex;flex-wrap:wrap;gap:8px;margin:0 0 18px}
nav a{background:var(--card);border:1px solid var(--line);border-radius:999px;
padding:4px 14px;color:var(--accent);text-decoration:none;font-size:14px}
nav a:hover{border-color:var(--accent)}
.note{color:var(--muted);margin:-6px 0 14px;font-size:14px}
.empty{color:var(--muted);font-style:italic;margin:0}
.muted{color:var(--muted);font-weight:400}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{padding:7px 12px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{color:var(--muted);font-weight:600;font-size:12px;text-transform:uppercase;
letter-spacing:.04em;background:var(--bg);border-bottom-color:var(--line)}
tbody tr:last-child td,tbody tr:last-child th{border-bottom:0}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.failed td{background:#fff8f7}
td a{color:var(--accent);text-decoration:none;font-weight:600}
code{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--bg);
padding:1px 6px;border-radius:6px}
table.compact{width:auto;min-width:280px;margin-bottom:12px}
.badge{display:inline-block;padding:1px 10px;border-radius:999px;font-size:12px;
font-weight:600;white-space:nowrap;border:1px solid transparent;vertical-align:1px}
.badge.good{color:var(--good);background:var(--good-bg);border-color:#aceebb}
.badge.warn{color:var(--warn);background:var(--warn-bg);border-color:#f5e0a0}
.badge.bad{color:var(--bad);background:var(--bad-bg);border-color:#ffcecb}
.badge.neutral{color:var(--neutral);background:var(--neutral-bg);border-color:var(--line)}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:16px}
figure.card{margin:0;border:1px solid var(--line);border-radius:10px;padding:12px 14px 6px}
figcaption{font-weight:600;margin-bottom:4px;overflow-wrap:anywhere}
svg.chart{display:block;width:100%;height:auto}
svg.chart *{stroke-linejoin:round;stroke-linecap:butt}
.drift-summary{margin-bottom:16px}
.drift-summary .big{font-size:17px;font-weight:600;margin:0 0 10px}
.meter{position:relative;height:12px;border-radius:6px;background:var(--neutral-bg);
border:1px solid var(--line);max-width:560px}
.meter .fill{position:absolute;left:0;top:0;bottom:0;border-radius:6px}
.meter.good .fill{background:var(--good)}.meter.bad .fill{background:var(--bad)}
.meter .mark{position:absolute;top:-5px;bottom:-5px;width:2px;margin-left:-1px;
background:var(--text)}
.caption{color:var(--muted);font-size:13px;margin:4px 0 0}
.scores{margin:0 0 14px;display:flex;flex-wrap:wrap;gap:6px;align-items:center;font-size:13px}
.scores .label{color:var(--muted);font-weight:600;text-transform:uppercase;font-size:12px;
letter-spacing:.04em;margin-right:4px}
.score{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:1px 8px}
.score b{font-weight:600;font-variant-numeric:tabular-nums}
.feature{border-top:1px solid var(--line);padding:4px 0 14px}
.feature:first-of-type{border-top:0}
.kind{color:var(--muted);font-weight:400;font-size:13px;border:1px solid var(--line);
border-radius:6px;padding:0 6px;margin:0 4px;vertical-align:1px}
.feature-body{display:grid;grid-template-columns:minmax(0,3fr) minmax(260px,2fr);gap:22px;
align-items:start}
.feature-tables table{margin-bottom:10px}
table.kv th,table.kv td{padding:4px 10px}
table.kv tbody th{color:var(--muted);font-weight:500}
@media (max-width:860px){.feature-body{grid-template-columns:1fr}
.grid{grid-template-columns:1fr}main{padding:16px}}
@media print{body{background:#fff}nav{display:none}
header.report,section{border:0;padding:0;margin-bottom:24px}
.feature{break-inside:avoid}}
""".replace("\n", "")
