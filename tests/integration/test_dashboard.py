"""The web dashboard on a real uvicorn server over a real registry: its pages show the models,
versions, aliases, rollouts, monitoring trends and alerts the stores hold; API keys apply
(Bearer, X-API-Key, or Basic with the key as password for browsers; roles; per-model keys);
and it never answers with a traceback. The browser check is in test_dashboard_browser.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from modelyard import Client
from modelyard.cli.ui import build_dashboard
from modelyard.core.inference import InferenceRecord
from modelyard.errors import ConfigurationError
from modelyard.monitoring.inference_log import InferenceLog
from modelyard.monitoring.log_store import ParquetLogStore
from modelyard.monitoring.metric_store import MetricStore
from modelyard.monitoring.monitor import MonitorConfig, monitor_model
from modelyard.registry.sql.key_store import SqlKeyStore
from modelyard.settings import SecuritySettings, Settings
from modelyard.testing.server import running_server

pytestmark = pytest.mark.timeout(120)

MONITOR = MonitorConfig.model_validate({
    "window": "1d",
    "alerts": {"rules": [{"name": "latency-slow", "metric": "latency.p99_ms", "op": ">",
                          "threshold": 0.0}]},
})


@dataclass(frozen=True)
class Yard:
    url: str
    keys: dict[str, str]
    settings: Settings


def _log_traffic(home: Path, model: LogisticRegression, X: np.ndarray, when: float) -> None:
    """Write what a server would have logged for 300 single-row requests around ``when``."""
    log = InferenceLog(ParquetLogStore(str(home / "logs")))
    rng = np.random.default_rng(0)
    for i, row in enumerate(X[rng.integers(0, len(X), 300)]):
        one = row.reshape(1, -1)
        log.emit(InferenceRecord(
            request_id=f"r{when:.0f}-{i}", model="iris", version=2, timestamp=when - 300 + i,
            inputs=one, outputs={"predict": model.predict(one),
                                 "predict_proba": model.predict_proba(one)},
            latency_ms=1.0 + i % 7, route="v2"))
    log.close()


@pytest.fixture(scope="module")
def yard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Yard]:
    home = tmp_path_factory.mktemp("dashboard") / "home"
    settings = Settings(home=home, user="tester", security=SecuritySettings(auth="auto"))
    X, y = load_iris(return_X_y=True)
    X = np.asarray(X)
    with Client(settings) as client:
        first = LogisticRegression(max_iter=200, C=0.01).fit(X, y)
        second = LogisticRegression(max_iter=1000).fit(X, y)
        client.register(first, "iris", data=X, alias="production",
                        metrics={"accuracy": 0.81}, description="iris <b>classifier</b>")
        client.register(second, "iris", data=X, metrics={"accuracy": 0.97},
                        params={"C": 1.0, "max_iter": 1000})
        client.set_alias("iris", "production", 2, reason="better on the holdout")
        client.update_model("iris", description="flowers <script>alert(1)</script>")
        client.register(first, "other", data=X, alias="production")
        client.register(first, "iris", data=X)  # v3: the challenger
        client.start_rollout("iris", 3, mode="canary", weight=0.2)
        now = time.time()
        metrics = MetricStore(client.store.engine)
        for hours_ago in (30, 20, 10, 0):
            _log_traffic(home, second, X, now - hours_ago * 3600)
            monitor_model("iris", logs=ParquetLogStore(str(home / "logs")), source=client,
                          config=MONITOR, metrics=metrics, now=now - hours_ago * 3600,
                          notify=False)
        store = SqlKeyStore(client.store.engine)
        keys = {role: store.create(name=role, role=role, actor="tester").token
                for role in ("viewer", "admin")}
        keys["other-only"] = store.create(name="o", role="viewer", models=["other"],
                                          actor="tester").token
        app = build_dashboard(settings, host="127.0.0.1", config=None)
        app.views.config = MONITOR
        with running_server(app) as url:
            yield Yard(url, keys, settings)


def _get(yard: Yard, path: str, key: str | None = "viewer", **kw: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {yard.keys[key]}"} if key else {}
    return httpx.get(yard.url + path, headers=headers, timeout=60, **kw)  # type: ignore[arg-type]


def test_overview_lists_models_aliases_and_the_active_rollout(yard: Yard) -> None:
    page = _get(yard, "/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    text = page.text
    assert '<a href="/models/iris">iris</a>' in text
    assert '<a href="/models/other">other</a>' in text
    assert "@production → v2" in text
    assert "v3 vs v2 · canary 20% · step 1/3" in text
    # Registry text is escaped: a description cannot inject markup or script.
    assert "flowers &lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script" not in text
    assert '<meta http-equiv="refresh" content="60">' in text  # it keeps itself current


def test_model_page_shows_versions_moves_rollouts_and_trends(yard: Yard) -> None:
    text = _get(yard, "/models/iris").text
    for version in ("v1", "v2", "v3"):
        assert f"<td>{version}</td>" in text
    assert "better on the holdout" in text  # the alias move's reason
    assert "accuracy=0.97" in text  # lineage metrics
    assert "C=1.0, max_iter=1000" in text  # and params
    assert "(150 rows)" in text  # and the training data's fingerprint
    assert "<td>v2 → v3</td>" in text  # the rollout's champion and challenger
    # Four monitoring runs: every metric has a line with four points, and the latency rule.
    assert text.count('<svg class="spark"') >= 5
    assert "latency.p99_ms" in text
    assert "latency-slow" in text
    assert "firing" in text
    assert '<a href="/models/iris/report">' in text


def test_the_live_report_is_the_monitoring_report(yard: Yard) -> None:
    page = _get(yard, "/models/iris/report")
    assert page.status_code == 200, page.text[-500:]
    assert page.text.startswith("<!DOCTYPE html>")
    assert "Monitoring report: iris v2" in page.text
    assert "<svg" in page.text


def test_keys_roles_and_model_scopes_apply(yard: Yard) -> None:
    anonymous = _get(yard, "/", key=None)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Basic ")
    assert "requires an API key" in anonymous.text
    assert "API key as the password" in anonymous.text
    viewer = yard.keys["viewer"]
    assert httpx.get(yard.url + "/", auth=("anyone", viewer)).status_code == 200  # a browser
    assert httpx.get(yard.url + "/", headers={"X-API-Key": viewer}).status_code == 200
    assert httpx.get(yard.url + "/", auth=("anyone", viewer[:-2] + "xx")).status_code == 401
    assert _get(yard, "/audit").status_code == 403
    audit = _get(yard, "/audit", key="admin")
    assert audit.status_code == 200
    assert "<td>alias.set</td>" in audit.text
    assert "<td>rollout.start</td>" in audit.text
    scoped = _get(yard, "/", key="other-only").text
    assert "/models/other" in scoped
    assert "/models/iris" not in scoped
    assert _get(yard, "/models/iris", key="other-only").status_code == 403
    assert _get(yard, "/models/other", key="other-only").status_code == 200
    assert httpx.get(yard.url + "/healthz").status_code == 200  # probes need no key


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/models/nope", 404),
    ("GET", "/models/nope/report", 404),
    ("GET", "/models/other/report", 404),  # registered, but never logged anything
    ("GET", "/nowhere", 404),
    ("GET", "/models/iris/elsewhere", 404),
    ("POST", "/", 405),
    ("DELETE", "/models/iris", 405),
])
def test_bad_requests_get_a_page_that_says_what_to_do(yard: Yard, method: str, path: str,
                                                      status: int) -> None:
    page = httpx.request(method, yard.url + path,
                         headers={"Authorization": f"Bearer {yard.keys['viewer']}"})
    assert page.status_code == status
    assert "Traceback" not in page.text
    assert '<a href="/">Back to the models</a>' in page.text
    assert _get(yard, "/").status_code == 200  # still serving


def test_a_public_address_without_keys_is_refused(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "empty", user="t")
    with pytest.raises(ConfigurationError, match="without authentication"):
        build_dashboard(settings, host="0.0.0.0")
