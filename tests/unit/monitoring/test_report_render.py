"""Monitoring reports: self-contained escaped HTML, the verdict, the JSON form, atomic writes."""

from __future__ import annotations

import dataclasses
import html
import math
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from modelyard.errors import InvalidInputError
from modelyard.monitoring.drift import ColumnDrift, DatasetDrift
from modelyard.monitoring.objectives import ObjectiveStatus, evaluate_objectives, parse_objective
from modelyard.monitoring.quality import QualityCheck, QualityReport
from modelyard.monitoring.report import (
    ReportData,
    render_html,
    report_dict,
    verdict,
    write_report,
)

T0 = 1_700_000_000.0
EVIL = "<script>alert('x')</script>"


def _column(name: str, *, drifted: bool, kind: str = "numeric", p: float | None = None,
            statistic: float = 0.05) -> ColumnDrift:
    return ColumnDrift(
        column=name, kind=kind, method="wasserstein" if kind == "numeric" else "psi",  # type: ignore[arg-type]
        statistic=statistic, p_value=p, threshold=0.1, drifted=drifted,
        scores={"ks": 0.04, "psi": float("nan")}, n_reference=500, n_current=400,
    )


def _data(
    *,
    columns: Sequence[ColumnDrift] | None = None,
    share_threshold: float = 0.5,
    checks: Sequence[QualityCheck] = (),
    objectives: Sequence[ObjectiveStatus] = (),
    alerts: Sequence[Mapping[str, Any]] = (),
    history: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    performance: Mapping[str, float] | None = None,
    model: str = "fraud",
    with_drift: bool = True,
    with_quality: bool = True,
) -> ReportData:
    rng = np.random.default_rng(3)
    if columns is None:
        columns = [_column("amount", drifted=False), _column("city", drifted=False,
                                                             kind="categorical")]
    reference: dict[str, np.ndarray] = {}
    current: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    for c in columns:
        kinds[c.column] = c.kind
        if c.kind == "numeric":
            reference[c.column], current[c.column] = rng.normal(0, 1, 500), rng.normal(0, 1, 400)
        else:
            cats = np.array(["a", "b", "c"], dtype=object)
            reference[c.column], current[c.column] = rng.choice(cats, 500), rng.choice(cats, 400)
    share = sum(c.drifted for c in columns) / len(columns) if columns else 0.0
    drift = DatasetDrift(columns=tuple(columns), share=share, threshold=share_threshold,
                         drifted=share >= share_threshold and share > 0)
    return ReportData(
        model=model, version=3, generated_at=T0, window="1h", n_rows=400,
        drift=drift if with_drift else None,
        quality=QualityReport(n_rows=400, checks=tuple(checks)) if with_quality else None,
        reference=reference, current=current, kinds=kinds,
        history=history if history is not None else {},
        performance=performance if performance is not None else {},
        objectives=list(objectives), alerts=list(alerts),
    )


def _status(expression: str, value: float | None) -> ObjectiveStatus:
    objective = parse_objective(expression)
    values = {} if value is None else {objective.metric: value}
    return evaluate_objectives([objective], values)[0]


def _check(name: str, *, passed: bool, column: str | None = None) -> QualityCheck:
    return QualityCheck(name=name, column=column, value=0.2 if not passed else 0.0,
                        threshold=0.05, passed=passed, detail=f"{name} detail")


# -- verdict --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "status", "reason"),
    [
        ({}, "healthy", None),
        ({"objectives": [_status("accuracy >= 0.9", 0.99)]}, "healthy", None),
        ({"objectives": [_status("accuracy >= 0.9", None)]}, "healthy", None),
        ({"objectives": [_status("accuracy >= 0.9", 0.905)]}, "warning",
         "Objective accuracy >= 0.9 is at risk (now 0.905)."),
        ({"objectives": [_status("latency_p99_ms <= 50", 80.0)]}, "critical",
         "Objective latency_p99_ms <= 50 is breached (now 80)."),
        ({"columns": [_column("a", drifted=True), _column("b", drifted=False)]}, "warning",
         "Dataset drift: 1 of 2 features drifted (50%, threshold 50%)."),
        ({"columns": [_column("a", drifted=True), _column("b", drifted=False)],
          "share_threshold": 0.6}, "healthy", None),
        ({"checks": [_check("missing", passed=False), _check("range", passed=False)]},
         "warning", "2 data-quality checks failed."),
        ({"alerts": [{"rule": "slow", "metric": "latency.p99_ms", "value": 90.0,
                      "severity": "critical"}]}, "critical",
         "Alert slow is firing (latency.p99_ms = 90)."),
        ({"alerts": [{"rule": "hint", "metric": "x", "value": 1, "severity": "info"}]},
         "healthy", None),
        ({"alerts": [{"rule": "r", "metric": "x", "value": 1}]}, "warning",
         "Alert r is firing (x = 1)."),
    ],
    ids=["nothing", "objective-met", "objective-unknown", "objective-at-risk",
         "objective-breached", "dataset-drift", "drift-below-threshold", "quality-failed",
         "critical-alert", "info-alert", "alert-without-severity"],
)
def test_verdict(kwargs: dict[str, Any], status: str, reason: str | None) -> None:
    data = _data(**kwargs)
    result = verdict(data)
    assert result.status == status
    if reason is None:
        assert result.reasons == ()
    else:
        assert reason in result.reasons
    page = render_html(data)
    assert f'class="verdict {status}"' in page
    if reason is not None:
        assert html.escape(reason) in page


# -- HTML -----------------------------------------------------------------------------------


def test_user_strings_are_escaped_everywhere() -> None:
    data = _data(
        model=EVIL,
        columns=[_column(EVIL, drifted=True), _column("c" + EVIL, drifted=False,
                                                      kind="categorical")],
        checks=[QualityCheck(name=EVIL, column=EVIL, value=1.0, threshold=0.0, passed=False,
                             detail=EVIL)],
        alerts=[{"rule": EVIL, "metric": EVIL, "value": 1.0, "severity": EVIL}],
        history={EVIL: (np.array([T0, T0 + 60]), np.array([1.0, 2.0]))},
        performance={EVIL: 1.0},
    )
    data = dataclasses.replace(
        data, window=EVIL,
        current={**data.current, "c" + EVIL: np.array([EVIL, "a"], dtype=object)},
    )
    page = render_html(data)
    assert "<script" not in page
    assert "alert('x')" not in page
    escaped = html.escape(EVIL, quote=True)
    # model (title, header), window, features, quality, alerts, history caption
    assert page.count(escaped) >= 10


def test_page_is_self_contained() -> None:
    data = _data(
        history={"accuracy": (T0 + np.arange(5) * 60.0, np.linspace(0.9, 0.95, 5))},
        performance={"accuracy": 0.95},
    )
    page = render_html(data)
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    assert "@import" not in page
    assert "url(http" not in page
    targets = re.findall(r'\b(?:src|href|xlink:href)\s*=\s*"([^"]*)"', page)
    assert targets, "the navigation links to the sections"
    assert all(t.startswith("#") for t in targets), targets
    # every in-page link lands on an element of the page
    ids = set(re.findall(r'\bid="([^"]+)"', page))
    assert {t[1:] for t in targets} <= ids


def test_sections_and_features_in_order() -> None:
    data = _data(
        columns=[_column("steady", drifted=False), _column("moved", drifted=True),
                 _column("color", drifted=True, kind="categorical")],
        checks=[_check("missing_rate", passed=True, column="steady")],
        objectives=[_status("accuracy >= 0.9", 0.95)],
        history={"accuracy": (T0 + np.arange(3) * 60.0, np.array([0.94, 0.95, 0.96]))},
        performance={"accuracy": 0.96},
    )
    page = render_html(data)
    headings = re.findall(r"<h2>(.*?)</h2>", page)
    assert headings == ["Objectives", "Performance and latency over time", "Data quality",
                        "Drift", "Features"]
    features = re.findall(r'<article class="feature" id="(feature-\d+)">\n<h3>(\w+)', page)
    assert [name for _, name in features] == ["moved", "color", "steady"]
    for anchor, _ in features:
        assert f'href="#{anchor}"' in page
    assert "2 of 3 features drifted" in page
    # one distribution chart per feature, one history chart
    assert page.count('<svg xmlns:xlink="http://www.w3.org/1999/xlink" class="chart"') == 4


@pytest.mark.parametrize(
    ("expression", "value", "css", "label"),
    [
        ("accuracy >= 0.9", 0.99, "good", "met"),
        ("accuracy >= 0.9", 0.905, "warn", "at risk"),
        ("accuracy >= 0.9", 0.5, "bad", "breached"),
        ("accuracy >= 0.9", None, "neutral", "unknown"),
    ],
    ids=["met", "at-risk", "breached", "unknown"],
)
def test_objective_rows_carry_a_coloured_status(
    expression: str, value: float | None, css: str, label: str
) -> None:
    page = render_html(_data(objectives=[_status(expression, value)]))
    row = re.search(r"<tr><td><code>accuracy &gt;= 0.9</code></td>.*?</tr>", page)
    assert row is not None
    assert f'<span class="badge {css}">{label}</span>' in row.group(0)
    assert ("—" if value is None else f"{value:g}") in row.group(0)


def test_history_groups_latencies_and_draws_each_other_metric_alone() -> None:
    ts = T0 + np.arange(4) * 300.0
    data = _data(
        history={
            "accuracy": (ts, np.array([0.9, 0.91, 0.92, 0.93])),
            "latency.p50_ms": (ts, np.array([5.0, 6, 5, 6])),
            "latency.p99_ms": (ts, np.array([40.0, 41, 45, 48])),
            "error_rate": (ts, np.zeros(4)),
            "drift.share": (ts, np.array([0.0, 0.1, 0.1, 0.2])),
            "empty": (np.array([]), np.array([])),
        },
        objectives=[_status("latency_p99_ms <= 50", 48.0)],
    )
    page = render_html(data)
    captions = re.findall(r"<figcaption>([^<]*)", page)
    assert captions == ["accuracy", "Latency", "error_rate", "drift.share"]
    assert "Also recorded" not in page
    # dashed lines (each drawn twice: on the axes and in the legend): the latency objective's
    # target, and the dataset-drift threshold on the drift share
    figures = dict(re.findall(r"<figcaption>([^<]*)</figcaption>(.*?)</figure>", page, re.S))
    dashed = {title: svg.count("stroke-dasharray") for title, svg in figures.items()}
    assert dashed == {"accuracy": 0, "Latency": 2, "error_rate": 0, "drift.share": 2}


def test_history_leaves_out_per_feature_scores_and_caps_the_charts() -> None:
    ts = T0 + np.arange(3) * 60.0
    series = (ts, np.array([1.0, 2.0, 3.0]))
    history = {
        "feature.amount.psi": series, "drift.n_drifted": series, "drift.share": series,
        **{f"quality.check_{i:02d}": series for i in range(14)},
    }
    page = render_html(_data(history=history))
    captions = re.findall(r"<figcaption>([^<]*)", page)
    assert captions == ["drift.share"] + [f"quality.check_{i:02d}" for i in range(11)]
    assert "Also recorded, not drawn: quality.check_11, quality.check_12, quality.check_13." \
        in page
    assert "feature.amount.psi" not in page


def test_empty_report_says_what_is_missing() -> None:
    data = _data(columns=[], with_drift=False, with_quality=False)
    page = render_html(data)
    for text in ("No objectives are defined for this model.",
                 "No metric history was recorded for this model yet.",
                 "No data-quality checks were run.",
                 "Drift was not computed for this window."):
        assert text in page
    assert "<svg" not in page


def test_features_without_drift_scores_or_raw_values() -> None:
    data = _data(columns=[_column("scored", drifted=False)])
    assert data.drift is not None
    data = dataclasses.replace(
        data,
        drift=dataclasses.replace(data.drift, skipped=("empty<col>",)),
        reference={"scored": np.array([]), "words": np.array(["x", "y"], dtype=object)},
        current={"scored": np.array([]), "words": np.array(["y"], dtype=object),
                 "mislabeled": np.array(["not", "numbers"], dtype=object)},
        kinds={"scored": "numeric", "mislabeled": "numeric"},
    )
    page = render_html(data)
    assert "No raw values to draw." in page
    assert "Not tested, for lack of values on one side: empty&lt;col&gt;." in page
    assert re.search(r"<h3>words <span class=\"kind\">categorical</span>", page)
    # a column declared numeric whose values are text is drawn as categories
    block = page[page.index("<h3>mislabeled"):]
    assert "Category shares of mislabeled" in block[: block.index("</article>")]


def test_rejects_inconsistent_data() -> None:
    with pytest.raises(InvalidInputError, match="'n_rows' parameter of ReportData must be >= 0"):
        dataclasses.replace(_data(), n_rows=-1)
    with pytest.raises(InvalidInputError, match="History of metric 'accuracy' has 2 timestamps"):
        dataclasses.replace(_data(), history={"accuracy": (np.zeros(2), np.zeros(3))})
    with pytest.raises(InvalidInputError, match=r"'generated_at' parameter .* finite unix time"):
        dataclasses.replace(_data(), generated_at=math.nan)


# -- JSON -----------------------------------------------------------------------------------


def test_report_dict_is_json_with_nan_as_null_and_no_raw_columns() -> None:
    ts = T0 + np.arange(3) * 60.0
    data = _data(
        columns=[_column("amount", drifted=True, p=0.001), _column("city", drifted=False,
                                                                  kind="categorical")],
        checks=[_check("missing_rate", passed=False, column="amount")],
        objectives=[_status("accuracy >= 0.9", 0.95)],
        alerts=[{"rule": "r", "metric": "drift.share", "value": np.float32(0.5),
                 "severity": "warning", "at": np.int64(7)}],
        history={"accuracy": (ts, np.array([0.9, np.nan, 0.95]))},
        performance={"accuracy": 0.95, "log_loss": math.inf},
    )
    out = report_dict(data)
    assert orjson.loads(orjson.dumps(out)) == out
    assert out["model"] == "fraud"
    assert out["generated_at_iso"] == "2023-11-14 22:13:20 UTC"
    assert out["verdict"]["status"] == "warning"
    assert out["performance"] == {"accuracy": 0.95, "log_loss": None}
    assert out["history"]["accuracy"] == {"timestamps": ts.tolist(), "values": [0.9, None, 0.95]}
    assert out["alerts"] == [{"rule": "r", "metric": "drift.share", "value": 0.5,
                              "severity": "warning", "at": 7}]
    assert out["objectives"] == [{"expression": "accuracy >= 0.9", "metric": "accuracy",
                                  "op": ">=", "target": 0.9, "value": 0.95, "status": "met"}]
    drift = out["drift"]
    assert (drift["n_columns"], drift["n_drifted"], drift["share"]) == (2, 1, 0.5)
    assert drift["skipped"] == []
    assert drift["columns"][0] == {
        "column": "amount", "kind": "numeric", "method": "wasserstein", "statistic": 0.05,
        "p_value": 0.001, "threshold": 0.1, "drifted": True,
        "scores": {"ks": 0.04, "psi": None}, "n_reference": 500, "n_current": 400,
    }
    assert out["quality"]["passed"] is False
    assert out["quality"]["checks"][0]["name"] == "missing_rate"
    assert out["kinds"] == {"amount": "numeric", "city": "categorical"}
    assert "reference" not in out
    assert "current" not in out


def test_report_dict_without_drift_or_quality() -> None:
    out = report_dict(_data(with_drift=False, with_quality=False))
    assert (out["drift"], out["quality"], out["version"]) == (None, None, 3)


# -- writing --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["html", "json"], ids=["html", "json"])
def test_write_report_is_atomic_and_creates_folders(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "out" / f"report.{fmt}"
    data = _data()
    write_report(data, path, fmt=fmt)  # type: ignore[arg-type]
    text = path.read_text(encoding="utf-8")
    if fmt == "html":
        assert text == render_html(data)  # reproducible: same data, same page
    else:
        assert orjson.loads(text) == report_dict(data)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_write_report_keeps_the_old_file_when_rendering_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "report.html"
    path.write_text("old report")

    def boom(data: ReportData) -> str:
        raise RuntimeError("render failed")

    monkeypatch.setattr("modelyard.monitoring.report.render_html", boom)
    with pytest.raises(RuntimeError, match="render failed"):
        write_report(_data(), path)
    assert path.read_text() == "old report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_write_report_rejects_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="Report format 'pdf' is not supported"):
        write_report(_data(), tmp_path / "r.pdf", fmt="pdf")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


# -- speed ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_twenty_features_of_100k_rows_render_in_seconds() -> None:
    rng = np.random.default_rng(0)
    n = 100_000
    cats = np.array([f"cat{i}" for i in range(40)], dtype=object)
    columns, reference, current, kinds = [], {}, {}, {}
    for i in range(20):
        kind = "numeric" if i < 14 else "categorical"
        name = f"f{i}"
        columns.append(_column(name, drifted=i % 5 == 0, kind=kind))
        kinds[name] = kind
        if kind == "numeric":
            reference[name], current[name] = rng.normal(0, 1, n), rng.normal(0.1, 1, n)
        else:
            reference[name], current[name] = rng.choice(cats, n), rng.choice(cats, n)
    ts = T0 + np.arange(500) * 60.0
    data = dataclasses.replace(
        _data(columns=columns), reference=reference, current=current, kinds=kinds,
        history={"accuracy": (ts, rng.random(500)), "latency.p99_ms": (ts, rng.random(500)),
                 "latency.p50_ms": (ts, rng.random(500)), "drift.share": (ts, rng.random(500))},
    )
    start = time.perf_counter()
    page = render_html(data)
    elapsed = time.perf_counter() - start
    # measured about 1.6 s on one core; generous for a loaded 2-core CI machine
    assert elapsed < 12.0, f"rendering took {elapsed:.1f} s"
    assert page.count("<svg") == 23
    assert len(page) < 2_500_000
