"""The dashboard in a real headless Chromium, as a user opens it: the browser asks for
credentials (HTTP Basic, the API key as password), every page loads without a console error
or a blocked resource, charts and trend lines are drawn with a size, and screenshots are kept.

Uses Debian's Chromium at /usr/bin/chromium through Playwright (no browser download). Without
it the test skips, except under CI=true, where it fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.integration.test_dashboard import Yard, yard  # noqa: F401  (the shared fixture)
from tests.integration.test_report_browser import browser  # noqa: F401  (the shared fixture)

pytestmark = pytest.mark.timeout(180)


def _open(browser: Any, yard: Yard, key: str | None) -> Any:  # noqa: F811
    credentials = {"username": "someone", "password": yard.keys[key]} if key else None
    return browser.new_context(http_credentials=credentials,
                               viewport={"width": 1280, "height": 900})


def test_pages_render_in_a_real_browser(browser: Any, yard: Yard,  # noqa: F811
                                        tmp_path: Path) -> None:
    context = _open(browser, yard, "admin")
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    try:
        for path, shot in (("/", "overview"), ("/models/iris", "model"), ("/audit", "audit"),
                           ("/models/iris/report", "report")):
            response = page.goto(yard.url + path)
            assert response is not None
            assert response.status == 200, path
            page.screenshot(path=str(tmp_path / f"{shot}.png"), full_page=True)
            assert (tmp_path / f"{shot}.png").stat().st_size > 10_000
        page.goto(yard.url + "/")
        page.click("text=iris")  # the overview links to the model page
        assert page.url.endswith("/models/iris")
        lines = page.eval_on_selector_all(
            "svg.spark polyline", "els => els.map(e => e.getBoundingClientRect().width)")
        assert len(lines) >= 5
        assert min(lines) > 10  # drawn across the cell, not collapsed
        charts = page.eval_on_selector_all(
            "figure.chart svg", "els => els.map(e => e.getBoundingClientRect().height)")
        assert charts
        assert min(charts) > 100
        assert "latency-slow" in page.inner_text("body")
        assert problems == []
    finally:
        context.close()


def test_the_browser_is_asked_for_a_key(browser: Any, yard: Yard) -> None:  # noqa: F811
    """Without credentials the page answers an HTTP Basic challenge, which headless Chromium
    (no one to type a password) reports as an authentication failure, not as a page."""
    context = _open(browser, yard, None)
    try:
        with pytest.raises(Exception, match="AUTH_CREDENTIALS"):
            context.new_page().goto(yard.url + "/")
    finally:
        context.close()
