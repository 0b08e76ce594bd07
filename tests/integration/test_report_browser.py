"""A monitoring report opened in a real headless Chromium: no errors, charts drawn, a screenshot.

Uses Debian's Chromium at /usr/bin/chromium through Playwright (no browser download). Without
it the test skips, except under CI=true, where it fails.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelyard.monitoring.drift import dataset_drift
from modelyard.monitoring.objectives import evaluate_objectives, parse_objective
from modelyard.monitoring.profile import compute_profile
from modelyard.monitoring.quality import check_quality
from modelyard.monitoring.report import ReportData, write_report

CHROMIUM = Path("/usr/bin/chromium")
# --no-sandbox: Chromium's sandbox needs user namespaces, which a root container lacks;
# --disable-dev-shm-usage: /dev/shm is tiny in containers.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]
T0 = 1_750_000_000.0


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"The browser check must run under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is absent; install Debian's chromium package "
                     "(apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _unavailable(f"playwright is not installed: {exc}")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                     headless=True)
        try:
            yield browser
        finally:
            browser.close()


def _report_data() -> ReportData:
    rng = np.random.default_rng(42)
    n_ref, n_cur = 5_000, 4_000
    cities = np.array(["paris", "rome", "oslo", "lima", "kyiv", "cairo"], dtype=object)
    devices = np.array(["ios", "android", "web"], dtype=object)
    reference = {
        "amount": rng.lognormal(3.0, 0.6, n_ref),
        "age": rng.normal(40.0, 12.0, n_ref),
        "city": rng.choice(cities, n_ref, p=[0.3, 0.25, 0.2, 0.1, 0.1, 0.05]),
        "device": rng.choice(devices, n_ref, p=[0.5, 0.3, 0.2]),
    }
    city_now = rng.choice(cities, n_cur, p=[0.1, 0.1, 0.2, 0.25, 0.3, 0.05])
    city_now[rng.random(n_cur) < 0.04] = "tokyo"  # a category the reference never had
    current = {
        "amount": rng.lognormal(3.0, 0.6, n_cur),  # unchanged
        "age": rng.normal(46.0, 15.0, n_cur),  # shifted by half a standard deviation, wider
        "city": city_now,
        "device": rng.choice(devices, n_cur, p=[0.5, 0.3, 0.2]),  # unchanged
    }
    current["amount"][:40] = np.nan
    kinds = {"amount": "numeric", "age": "numeric", "city": "categorical",
             "device": "categorical"}
    drift = dataset_drift(reference, current, kinds=kinds)
    profile, _ = compute_profile(reference)
    quality = check_quality(current, profile)

    hours = np.arange(72.0)
    ts = T0 + hours * 3600.0
    history = {
        "accuracy": (ts, 0.95 - 0.0006 * hours + rng.normal(0, 0.004, hours.size)),
        "f1": (ts, 0.92 - 0.0005 * hours + rng.normal(0, 0.004, hours.size)),
        "latency.p50_ms": (ts, 9.0 + rng.normal(0, 0.6, hours.size)),
        "latency.p99_ms": (ts, 32.0 + 0.2 * hours + rng.normal(0, 2.0, hours.size)),
        "error_rate": (ts, np.abs(rng.normal(0.003, 0.002, hours.size))),
        "drift.share": (ts, np.clip(hours / 100.0, 0, 1)),
    }
    performance = {"accuracy": float(history["accuracy"][1][-1]),
                   "f1": float(history["f1"][1][-1])}
    current_values = {**performance, "latency.p99_ms": float(history["latency.p99_ms"][1][-1]),
                      "error_rate": float(history["error_rate"][1][-1])}
    objectives = evaluate_objectives(
        [parse_objective(text) for text in
         ("accuracy >= 0.9", "latency_p99_ms <= 50", "error_rate <= 0.01", "f1 >= 0.9")],
        current_values,
    )
    alerts = [{"rule": "drift-share-high", "metric": "drift.share", "value": drift.share,
               "op": ">", "threshold": 0.3, "severity": "warning"}]
    return ReportData(
        model="fraud-detector", version=7, generated_at=T0 + 72 * 3600.0, window="last 24h",
        n_rows=n_cur, drift=drift, quality=quality, reference=reference, current=current,
        kinds=kinds, history=history, performance=performance, objectives=objectives,
        alerts=alerts,
    )


@pytest.mark.slow  # about 6 s: a real browser starts, lays out and screenshots the page
def test_report_renders_in_chromium(browser: Any, tmp_path: Path) -> None:
    from PIL import Image

    data = _report_data()
    assert data.drift is not None
    drifted = {c.column for c in data.drift.columns if c.drifted}
    assert drifted == {"age", "city"}, "the data should drift in age and city only"
    path = tmp_path / "report.html"
    write_report(data, path)

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri(), wait_until="load")

    assert errors == []
    assert requests == [path.as_uri()], "the page must load nothing but itself"
    assert page.title() == "Monitoring report: fraud-detector v7"
    assert page.locator("h1").inner_text() == "fraud-detector v7"
    assert page.locator("h2").all_inner_texts() == [
        "Objectives", "Firing alerts", "Performance and latency over time", "Data quality",
        "Drift", "Features",
    ]
    features = [t.split(" ")[0] for t in page.locator("article.feature h3").all_inner_texts()]
    assert features[:2] == ["age", "city"]  # drifted first
    assert sorted(features) == ["age", "amount", "city", "device"]
    verdict = page.locator("#verdict").inner_text()
    assert "Dataset drift: 2 of 4 features drifted" in verdict

    charts = page.locator("svg.chart")
    assert charts.count() == 4 + 5  # one per feature; accuracy, f1, latency, errors, drift
    for i in range(charts.count()):
        box = charts.nth(i).bounding_box()
        assert box is not None
        assert box["width"] > 300
        assert box["height"] > 100
    # nothing sticks out sideways at a laptop's width
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    shot = tmp_path / "report.png"
    png = page.screenshot(path=str(shot), full_page=True)
    page.close()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(png)).convert("RGB")
    width, height = image.size
    assert width == 1280
    assert height > 3000  # the whole page, not the viewport
    pixels = np.asarray(image, dtype=np.int16)
    assert pixels.std() > 10, "the screenshot is blank"
    # the charts' reference blue (#0072B2) and current orange (#E69F00) are on the page
    for rgb in ((0x00, 0x72, 0xB2), (0xE6, 0x9F, 0x00)):
        close = np.abs(pixels - np.array(rgb)).sum(axis=2) < 30
        assert close.sum() > 500, f"no chart colour {rgb} in the screenshot"
