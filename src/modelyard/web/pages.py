"""Dashboard pages as HTML strings: pure functions of what :mod:`modelyard.web.views` read.

Every value that comes from the registry (names, descriptions, reasons, actors) is escaped;
trend lines are small inline SVG drawn here (a polyline needs no plotting library, and a page
of forty of them renders in microseconds). Pages carry no script and load nothing from
elsewhere.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

import numpy as np

if TYPE_CHECKING:
    from modelyard.core.entities import AliasChange, ModelVersion
    from modelyard.core.rollout import Rollout
    from modelyard.monitoring.alerts import AlertState
    from modelyard.registry.sql.pipeline_store import PipelineRun
    from modelyard.security.audit import AuditEntry
    from modelyard.web.views import ModelPage, ModelRow, Trend

__all__ = ["REFRESH_S", "audit_page", "error_page", "model_page", "overview_page", "sparkline"]

REFRESH_S = 60
"""The overview and model pages reload themselves this often (seconds)."""

_CSS = """
:root{--fg:#1d2433;--muted:#5b6478;--line:#dde1ea;--bg:#f6f7fb;--card:#fff;--ok:#1a7f37;
--warn:#9a6700;--bad:#cf222e;--accent:#0b5cad}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",
Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{background:#14213d;color:#fff;padding:10px 24px;display:flex;gap:24px;
align-items:baseline}header a{color:#fff;text-decoration:none}header .brand{font-weight:700;
font-size:16px}header nav a{opacity:.85;margin-right:16px}header nav a:hover{opacity:1}
main{max-width:1200px;margin:0 auto;padding:20px 24px 40px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:16px;margin:28px 0 8px}
.muted{color:var(--muted)}.card{background:var(--card);border:1px solid var(--line);
border-radius:8px;padding:12px 16px;margin:12px 0}
table{border-collapse:collapse;width:100%;background:var(--card)}
th,td{text-align:left;padding:5px 10px;border-bottom:1px solid var(--line);
vertical-align:middle}
th{font-weight:600;color:var(--muted);font-size:12px;text-transform:uppercase;
letter-spacing:.03em}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
a{color:var(--accent)}.badge{display:inline-block;padding:1px 8px;border-radius:10px;
font-size:12px;background:#e8ecf4;margin:1px 4px 1px 0;white-space:nowrap}
.badge.ok{background:#dafbe1;color:var(--ok)}.badge.warn{background:#fff8c5;color:var(--warn)}
.badge.bad{background:#ffebe9;color:var(--bad)}.stats{display:flex;gap:12px;flex-wrap:wrap}
.stat{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 16px;
min-width:140px}.stat b{display:block;font-size:22px}
svg.spark{display:block}.empty{color:var(--muted);font-style:italic}
tr.group td{background:var(--bg);font-weight:600;color:var(--muted);font-size:12px;
text-transform:uppercase;letter-spacing:.03em}.charts{display:grid;
grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:12px}figure.chart{margin:0}
figure.chart svg{max-width:100%;height:auto}figcaption{font-weight:600;margin-bottom:4px}
details summary{cursor:pointer;font-weight:600;margin:16px 0 8px}
footer{color:var(--muted);font-size:12px;text-align:center;padding:16px}.nw{white-space:nowrap}
"""


# -- shared pieces ---------------------------------------------------------------------------
def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _u(name: str) -> str:
    return quote(name, safe="")


def _when(ts: float | datetime | None) -> str:
    if ts is None:
        return "never"
    moment = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _nw(html_text: str) -> str:
    """Keep a short cell (a time, a move) on one line."""
    return f'<span class="nw">{html_text}</span>'


def _ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    seconds = max(0.0, now - ts)
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def _num(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.3g}"
    return f"{value:,.4g}"


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def _badge(text: object, kind: str = "") -> str:
    return f'<span class="badge {kind}">{_e(text)}</span>'


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], *,
           numeric: Sequence[int] = (), empty: str = "Nothing yet.") -> str:
    body = "".join("<tr>" + "".join(
        f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
        for i, cell in enumerate(row)) + "</tr>" for row in rows)
    if not body:
        return f'<p class="empty">{_e(empty)}</p>'
    head = "".join(f'<th class="num">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>"
                   for i, h in enumerate(headers))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _layout(title: str, body: str, *, now: float, version: str, refresh_s: int = 0) -> str:
    # Pages that watch something refresh themselves (no script: a meta refresh).
    refresh = f'<meta http-equiv="refresh" content="{refresh_s}">\n' if refresh_s else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n" + refresh +
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{_e(title)} · modelyard</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        "<header><a class=\"brand\" href=\"/\">modelyard</a><nav><a href=\"/\">Models</a>"
        "<a href=\"/audit\">Audit log</a></nav></header>\n"
        f"<main>\n{body}\n</main>\n<footer>modelyard {_e(version)} · {_e(_when(now))}"
        "</footer>\n</body>\n</html>\n")


def _alert_badges(alerts: Iterable[AlertState]) -> str:
    return "".join(_badge(f"{a.rule}: firing", "bad") for a in alerts if a.status == "firing")


def _rollout_text(r: Rollout) -> str:
    share = "shadow" if r.mode == "shadow" else f"{r.mode} {r.weight:.0%}"
    steps = r.policy.n_steps(r.mode)
    return (f"v{r.challenger} vs v{r.champion} · {share} · step {r.step + 1}/{steps}")


# -- sparkline ---------------------------------------------------------------------------------
def sparkline(timestamps: np.ndarray, values: np.ndarray, *, width: int = 180,
              height: int = 26, label: str = "") -> str:
    """A small SVG line of ``values`` over ``timestamps`` (non-finite values are gaps).

    >>> sparkline(np.array([0.0, 1.0, 2.0]), np.array([1.0, 3.0, 2.0])).startswith("<svg")
    True
    """
    ts = np.asarray(timestamps, dtype=float)
    vs = np.asarray(values, dtype=float)
    keep = np.isfinite(ts) & np.isfinite(vs)
    title = f"<title>{_e(label)}</title>" if label else ""
    head = (f'<svg class="spark" xmlns="http://www.w3.org/2000/svg" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{_e(label or "trend")}">{title}')
    if not keep.any():
        return head + "</svg>"
    t0, t1 = float(ts[keep].min()), float(ts[keep].max())
    v0, v1 = float(vs[keep].min()), float(vs[keep].max())
    pad = 3.0

    def x(t: float) -> float:
        return pad + (width - 2 * pad) * ((t - t0) / (t1 - t0) if t1 > t0 else 0.5)

    def y(v: float) -> float:
        return height - pad - (height - 2 * pad) * ((v - v0) / (v1 - v0) if v1 > v0 else 0.5)

    runs: list[list[str]] = [[]]
    for t, v, ok in zip(ts, vs, keep, strict=True):
        if not ok:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append(f"{x(float(t)):.1f},{y(float(v)):.1f}")
    lines = "".join(
        f'<polyline fill="none" stroke="#0b5cad" stroke-width="1.6" points="{" ".join(r)}"/>'
        for r in runs if len(r) > 1)
    last = next((r[-1] for r in reversed(runs) if r), None)
    dot = ""
    if last is not None:
        cx, cy = last.split(",")
        dot = f'<circle cx="{cx}" cy="{cy}" r="2.4" fill="#0b5cad"/>'
    return head + lines + dot + "</svg>"


# -- pages ---------------------------------------------------------------------------------------
def overview_page(rows: Sequence[ModelRow], *, version: str, now: float | None = None) -> str:
    """The list of registered models with their aliases, rollouts and alert state."""
    now = time.time() if now is None else now
    firing = sum(len(r.firing) for r in rows)
    rolling = sum(r.rollout is not None for r in rows)
    stats = (
        '<div class="stats">'
        f'<div class="stat"><b>{len(rows)}</b>models</div>'
        f'<div class="stat"><b>{sum(r.versions for r in rows)}</b>versions</div>'
        f'<div class="stat"><b>{rolling}</b>active rollouts</div>'
        f'<div class="stat"><b>{firing}</b>alerts firing</div></div>')
    table_rows = []
    for r in rows:
        m = r.model
        aliases = "".join(_badge(f"@{a} → v{v}", "ok" if a == "production" else "")
                          for a, v in sorted(m.aliases.items()))
        rollout = _e(_rollout_text(r.rollout)) if r.rollout is not None else ""
        monitoring = _e(_ago(r.monitored_at, now)) + " " + _alert_badges(r.firing)
        table_rows.append([
            f'<a href="/models/{_u(m.name)}">{_e(m.name)}</a>'
            + (f'<div class="muted">{_e(m.description)}</div>' if m.description else ""),
            str(r.versions), f"v{m.latest_version}" if m.latest_version else "",
            aliases, rollout, monitoring])
    table = _table(["Model", "Versions", "Latest", "Aliases", "Rollout", "Last monitored"],
                   table_rows, numeric=(1,),
                   empty="No model is registered yet: modelyard register model.skops --name NAME.")
    body = f"<h1>Models</h1>{stats}<h2>Registered models</h2>{table}"
    return _layout("Models", body, now=now, version=version, refresh_s=REFRESH_S)


def model_page(page: ModelPage, *, version: str, now: float | None = None) -> str:
    """One model: monitoring trends, alerts, versions, rollouts, alias moves, pipeline runs."""
    now = time.time() if now is None else now
    m = page.model
    aliases = "".join(_badge(f"@{a} → v{v}", "ok" if a == "production" else "")
                      for a, v in sorted(m.aliases.items()))
    tags = "".join(_badge(f"{k}={v}") for k, v in sorted(m.tags.items()))
    head = (f"<h1>{_e(m.name)}</h1>"
            + (f'<p class="muted">{_e(m.description)}</p>' if m.description else "")
            + f"<p>{aliases}{tags}</p>"
            f'<p><a href="/models/{_u(m.name)}/report">Monitoring report (computed now)</a>'
            f' · last monitored {_e(_ago(page.monitored_at, now))}</p>')
    sections = [
        head,
        "<h2>Alerts</h2>" + _alerts(page.alerts),
        "<h2>Monitoring over the last 7 days</h2>" + _monitoring(page.trends),
        "<h2>Versions</h2>" + _versions(page.versions),
        "<h2>Rollouts</h2>" + _rollouts(page.rollouts),
        "<h2>Alias moves</h2>" + _alias_moves(page.alias_history),
        "<h2>Retraining runs</h2>" + _runs(page.runs),
    ]
    return _layout(m.name, "\n".join(sections), now=now, version=version,
                   refresh_s=REFRESH_S)


_GROUPS = (
    ("Performance (labelled)", ("accuracy", "f1", "precision", "recall", "roc_auc",
                                "log_loss", "mae", "rmse", "r2", "mape", "labelled_rows")),
    ("Performance (estimated, no labels)", ("estimated_",)),
    ("Traffic and latency", ("requests", "rows", "error_rate", "invalid_input_rate",
                             "latency.")),
    ("Drift", ("drift.", "prediction.")),
    ("Data quality", ("quality.",)),
)
_HEADLINES = (
    ("Accuracy", ("accuracy", "estimated_accuracy"), ""),
    ("Latency p50 and p99", ("latency.p50_ms", "latency.p99_ms"), "ms"),
    ("Share of drifted features", ("drift.share",), ""),
    ("Error rate", ("error_rate",), ""),
)
_FEATURE_SCORES = ("wasserstein", "jensenshannon", "psi")


def _group_of(metric: str) -> str:
    for title, prefixes in _GROUPS:
        if any(metric == p or (p.endswith((".", "_")) and metric.startswith(p))
               for p in prefixes):
            return title
    return "Other"


def _monitoring(trends: Sequence[Trend]) -> str:
    """Headline charts, then every dataset-level metric by group, then one row per feature."""
    if not trends:
        return ('<p class="empty">No monitoring run recorded yet: modelyard monitor run, or '
                "serve with --monitor-every.</p>")
    by_name = {t.metric: t for t in trends}
    return (_headline_charts(by_name) + _metric_table([t for t in trends
                                                       if not t.metric.startswith("feature.")])
            + _feature_table(by_name))


def _headline_charts(by_name: dict[str, Trend]) -> str:
    from modelyard.monitoring.charts import ChartRenderer, Series

    charts, figures = None, []
    for title, names, unit in _HEADLINES:
        series = [Series(n, by_name[n].timestamps, by_name[n].values) for n in names
                  if n in by_name and np.isfinite(by_name[n].values).sum() >= 2]
        if not series:
            continue
        charts = charts or ChartRenderer(prefix="dash")
        svg = charts.time_series(series, ylabel=unit, label=f"{title} over time")
        figures.append(f'<figure class="card chart"><figcaption>{_e(title)}</figcaption>'
                       f"{svg}</figure>")
    return f'<div class="charts">{"".join(figures)}</div><br>' if figures else ""


def _metric_table(trends: Sequence[Trend]) -> str:
    order = {title: i for i, (title, _) in enumerate(_GROUPS)}
    grouped = sorted(trends, key=lambda t: (order.get(_group_of(t.metric), len(order)),
                                            t.metric))
    rows, current = [], None
    for t in grouped:
        group = _group_of(t.metric)
        if group != current:
            rows.append(f'<tr class="group"><td colspan="4">{_e(group)}</td></tr>')
            current = group
        rows.append(
            f"<tr><td>{_e(t.metric)}</td><td class=\"num\">{_e(_num(t.latest))}</td><td>"
            f"{sparkline(t.timestamps, t.values, label=f'{t.metric} over time')}</td>"
            f'<td class="num">{int(np.isfinite(t.values).sum())}</td></tr>')
    head = ('<tr><th>Metric</th><th class="num">Latest</th><th>Trend</th>'
            '<th class="num">Runs</th></tr>')
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _feature_table(by_name: dict[str, Trend]) -> str:
    features = sorted({m[len("feature."):].rsplit(".", 1)[0] for m in by_name
                       if m.startswith("feature.")})
    if not features:
        return ""
    rows = []
    for feature in features:
        def trend(stat: str, feature: str = feature) -> Trend | None:
            return by_name.get(f"feature.{feature}.{stat}")

        drifted = trend("drifted")
        now_drifted = drifted is not None and drifted.latest == 1.0
        score_name = next((s for s in _FEATURE_SCORES if trend(s) is not None), None)
        score = trend(score_name) if score_name else None
        missing, out_of_range = trend("missing_rate"), trend("out_of_range_rate")
        rows.append((not now_drifted, feature, [
            _e(feature), _badge("drifted", "bad") if now_drifted else _badge("stable", "ok"),
            f"{_e(score_name or '')} {_e(_num(score.latest if score else None))}",
            sparkline(score.timestamps, score.values, label=f"{feature} {score_name}")
            if score else "",
            _e(_num(missing.latest if missing else None)),
            _e(_num(out_of_range.latest if out_of_range else None))]))
    rows.sort(key=lambda r: (r[0], r[1]))
    n_drifted = sum(not r[0] for r in rows)
    table = _table(["Feature", "Now", "Drift score", "Trend", "Missing", "Out of range"],
                   [r[2] for r in rows], numeric=(4, 5))
    return (f"<details open><summary>Per feature: {len(rows)} features, {n_drifted} drifted "
            f"in the last run</summary>{table}</details>")


def _alerts(alerts: Sequence[AlertState]) -> str:
    rows = [[_e(a.rule), _badge(a.status, "bad" if a.status == "firing" else "ok"),
             _e(_num(a.value)), _e(_when(a.since))] for a in alerts]
    return _table(["Rule", "Status", "Last value", "Since"], rows, numeric=(2,),
                  empty="No alert rule has been evaluated for this model.")


def _versions(versions: Sequence[ModelVersion]) -> str:
    rows = []
    for v in versions:
        lineage = v.lineage
        metrics = ", ".join(f"{k}={_num(x)}" for k, x in sorted(lineage.metrics.items()))
        parent = f"v{lineage.parent_version}" if lineage.parent_version else ""
        rows.append([
            f"v{v.version}", "".join(_badge("@" + a) for a in v.aliases), _e(v.format),
            _e(str(v.status)), _nw(_e(_when(v.created_at))), _e(v.created_by),
            _nw(_size(v.size_bytes)), _e(metrics), _lineage(v), parent])
    return _table(["Version", "Aliases", "Format", "Status", "Created", "By", "Size",
                   "Metrics", "Params, data, code", "Parent"], rows, numeric=(6,))


def _lineage(v: ModelVersion) -> str:
    """Params, the training data's fingerprint and the code commit, as registered."""
    lineage = v.lineage
    parts = []
    if lineage.params:
        parts.append(_e(", ".join(f"{k}={x}" for k, x in sorted(lineage.params.items()))))
    if lineage.data is not None:
        parts.append(f'<span class="muted">data</span> <code>{_e(lineage.data.sha256[:12])}'
                     f"</code> ({lineage.data.rows:,} rows)")
    if lineage.code is not None:
        dirty = " + local changes" if lineage.code.dirty else ""
        parts.append(f'<span class="muted">code</span> <code>{_e(lineage.code.commit[:12])}'
                     f"</code>{_e(dirty)}")
    return "<br>".join(parts)


def _rollouts(rollouts: Sequence[Rollout]) -> str:
    kinds = {"active": "warn", "promoted": "ok", "rolled_back": "bad", "aborted": "bad"}
    rows = [[f"#{r.id}", _e(r.mode), f"v{r.champion} → v{r.challenger}",
             _badge(str(r.state), kinds.get(str(r.state), "")),
             f"{r.weight:.0%}", _nw(_e(_when(r.started_at))), _e(r.actor), _e(r.reason)]
            for r in rollouts]
    return _table(["Rollout", "Mode", "Champion → challenger", "State", "Weight", "Started",
                   "By", "Last reason"], rows, numeric=(4,), empty="No rollout yet.")


def _alias_moves(changes: Sequence[AliasChange]) -> str:
    def v(n: int | None) -> str:
        return "none" if n is None else f"v{n}"

    rows = [[_nw(_e(_when(c.at))), "@" + _e(c.alias),
             _nw(f"{v(c.from_version)} → {v(c.to_version)}"), _e(c.actor), _e(c.reason)]
            for c in changes]
    return _table(["When", "Alias", "Move", "By", "Reason"], rows, empty="No alias moves.")


def _runs(runs: Sequence[PipelineRun]) -> str:
    kinds = {"succeeded": "ok", "passed": "ok", "failed": "bad", "rejected": "warn"}
    rows = []
    for r in runs:
        duration = r.duration_s
        rows.append([f"#{r.id}", _e(r.pipeline), _e(r.trigger),
                     _badge(r.status, kinds.get(r.status, "")), _e(_when(r.started_at)),
                     "" if duration is None else f"{duration:.1f} s",
                     f"v{r.version}" if r.version else "", _e(r.error or "")])
    return _table(["Run", "Pipeline", "Trigger", "Status", "Started", "Took", "Version",
                   "Error"], rows, numeric=(5,), empty="No retraining run yet.")


def audit_page(entries: Sequence[AuditEntry], *, version: str,
               now: float | None = None) -> str:
    """The newest audit entries (``modelyard audit verify`` checks the chain)."""
    now = time.time() if now is None else now
    rows = [[str(a.seq), _nw(_e(_when(a.ts))), _e(a.actor), _e(a.action), _e(a.target),
             _e(a.model or "")] for a in entries]
    body = ("<h1>Audit log</h1><p class=\"muted\">The newest entries first. "
            "<code>modelyard audit verify</code> checks that none was edited or removed.</p>"
            + _table(["#", "When", "Actor", "Action", "Target", "Model"], rows, numeric=(0,),
                     empty="The audit log is empty."))
    return _layout("Audit log", body, now=now, version=version)


def error_page(status: int, message: str, hint: str = "", *, version: str,
               now: float | None = None) -> str:
    now = time.time() if now is None else now
    body = (f"<h1>{status}</h1><div class=\"card\"><p>{_e(message)}</p>"
            + (f"<p class=\"muted\">{_e(hint)}</p>" if hint else "") + "</div>"
            '<p><a href="/">Back to the models</a></p>')
    return _layout(f"Error {status}", body, now=now, version=version)

