"""Dashboard pages as pure functions: registry text is always escaped, trend lines keep their
gaps, routes and Basic credentials parse as documented."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from modelyard.core.entities import RegisteredModel, Status
from modelyard.web.app import _basic_password, _route
from modelyard.web.pages import error_page, overview_page, sparkline
from modelyard.web.views import ModelRow


def _model(name: str, description: str) -> RegisteredModel:
    now = datetime.now(UTC)
    return RegisteredModel(name=name, status=Status.READY, created_at=now, updated_at=now,
                           latest_version=1, description=description,
                           tags={"team": description}, aliases={"production": 1})


@given(name=st.text(min_size=1, max_size=30), description=st.text(max_size=60))
def test_registry_text_never_becomes_markup(name: str, description: str) -> None:
    page = overview_page([ModelRow(_model(name, description), 1, None, None, [])],
                         version="t", now=0.0)
    body = page[page.index("<tbody>"):page.index("</tbody>")]
    # Whatever the text, the only tags in the table are the ones the page writes.
    tags = set(re.findall(r"</?([a-zA-Z][a-zA-Z0-9]*)", body))
    assert tags <= {"tbody", "tr", "td", "a", "div", "span"}
    assert "<script" not in page


def test_error_pages_escape_the_message() -> None:
    page = error_page(404, "No model '<img src=x onerror=alert(1)>'.", "Try /.", version="t")
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_sparkline_draws_runs_between_gaps() -> None:
    ts = np.arange(7.0)
    svg = sparkline(ts, np.array([1.0, 2.0, np.nan, 3.0, 4.0, np.nan, 5.0]))
    assert svg.count("<polyline") == 2  # the lone last point is a dot, not a line
    assert svg.count("<circle") == 1
    flat = sparkline(ts[:3], np.array([2.0, 2.0, 2.0]))
    assert 'points="3.0,13.0 90.0,13.0 177.0,13.0"' in flat  # a constant sits mid-height
    assert "<polyline" not in sparkline(ts[:2], np.array([np.nan, np.nan]))


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=50))
def test_sparkline_points_stay_inside_the_box(values: list[float]) -> None:
    svg = sparkline(np.arange(float(len(values))), np.array(values), width=100, height=20)
    for x, y in re.findall(r"(-?[\d.]+),(-?[\d.]+)", svg):
        assert 0.0 <= float(x) <= 100.0
        assert 0.0 <= float(y) <= 20.0


def test_routes() -> None:
    assert _route("/")[:2] == ("dashboard.view", None)  # type: ignore[index]
    assert _route("/audit")[:2] == ("audit.read", None)  # type: ignore[index]
    assert _route("/models/fraud%20v2")[:2] == ("dashboard.view", "fraud v2")  # type: ignore[index]
    assert _route("/models/fraud/report")[:2] == ("dashboard.view", "fraud")  # type: ignore[index]
    for path in ("/models/", "/models/a/b/c", "/models/a/other", "/x"):
        assert _route(path) is None


def test_basic_credentials_carry_the_key_as_password() -> None:
    def basic(text: str) -> bytes:
        return b"Basic " + base64.b64encode(text.encode())

    assert _basic_password(basic("anyone:my_key")) == "my_key"
    assert _basic_password(basic(":my_key")) == "my_key"
    assert _basic_password(basic("user:pa:ss")) == "pa:ss"
    assert _basic_password(basic("user:")) is None
    assert _basic_password(basic("no-colon")) is None
    assert _basic_password(b"Basic !!!not-base64") is None
    assert _basic_password(b"Bearer my_key") is None
    assert _basic_password(None) is None
