"""Rollouts driven by the server itself, under concurrent load, over a real registry: a failing
or slow challenger is rolled back, a good one walks its steps to promotion, a shadow
challenger is logged beside the champion and judged on labels, and ab traffic is sticky.

Nobody runs a command once a rollout started: the server's controller decides, the registry
records why (alias history, rollout state), and every request the champion answers succeeds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier
from tests.integration.serving.rollout_models import FailsOnLiveData, SlowOnLiveData, Zero

from modelyard import Client
from modelyard.core.rollout import Rollout, RolloutPolicy, RolloutState
from modelyard.monitoring.inference_log import InferenceLog
from modelyard.monitoring.log_store import ParquetLogStore
from modelyard.serving.server import build_app
from modelyard.settings import DeploymentSettings, ServingSettings, Settings
from modelyard.testing.server import running_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ROWS = np.zeros((4, 3))  # what the models are registered with
BODY = {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP64", "data": [1, 1, 1]}]}
# Latency is the subject of one test only: elsewhere a loaded CI machine must not decide.
CALM = {"latency_slack_ms": 2000.0}


@dataclass(frozen=True)
class Answer:
    sent: float
    status: int
    version: str  # the body's model_version, or the x-model-version header of a failure
    user: str | None = None


@dataclass
class Load:
    """Client threads posting the same request until stopped, keeping every answer."""

    url: str
    threads: int = 6
    user_of: Callable[[int, int], str | None] = lambda thread, i: None
    answers: list[Answer] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def _hammer(self, thread: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            i = 0
            while not self.stop.is_set():
                user = self.user_of(thread, i)
                headers = {"X-User-ID": user} if user is not None else {}
                sent = time.monotonic()
                r = http.post("/v2/models/m/infer", json=BODY, headers=headers)
                version = (r.json()["model_version"] if r.status_code == 200
                           else r.headers.get("x-model-version", ""))
                self.answers.append(Answer(sent, r.status_code, version, user))
                i += 1

    @contextmanager
    def running(self) -> Iterator[Load]:
        workers = [threading.Thread(target=self._hammer, args=(t,), daemon=True)
                   for t in range(self.threads)]
        for w in workers:
            w.start()
        try:
            yield self
        finally:
            self.stop.set()
            for w in workers:
                w.join(30)


def _server_settings(**extra: object) -> ServingSettings:
    values: dict[str, object] = {"grpc_port": None, **extra}
    return ServingSettings(deployments=[DeploymentSettings(model="models:/m@production")],
                           alias_poll_s=0.2, rollout_check_s=0.2, **values)


def _until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)
    return time.monotonic()


def _finished(client: Client, name: str = "m") -> Rollout | None:
    latest = client.rollout_history(name, limit=1)
    return latest[0] if latest and not latest[0].active else None


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", user="tester")


@pytest.mark.parametrize(("challenger", "reason"), [
    (FailsOnLiveData(), "error rate 100.0% against the champion's 0.0%"),
    (SlowOnLiveData(), "p99 latency"),
], ids=["failing", "slow"])
def test_a_bad_challenger_is_rolled_back_and_the_champion_fails_nothing(
        settings: Settings, challenger: object, reason: str) -> None:
    with Client(settings) as client:
        client.register(Zero(), "m", data=ROWS, alias="production")
        client.register(challenger, "m", data=ROWS)
        policy = RolloutPolicy(steps=(0.5, 1.0), judge_after=10,
                               **({} if reason == "p99 latency" else CALM))
        server = build_app(client, _server_settings(), wait_for_models=True)
        with running_server(server.app) as url, Load(url).running() as load:
            time.sleep(0.3)
            with Client(settings) as other:  # as a person would, from another process
                other.start_rollout("m", 2, mode="canary", weight=0.5, policy=policy,
                                    reason="try version 2")
                started = time.monotonic()
                rolled_back = _until(lambda: _finished(other) is not None, 30, "a rollback")
                time.sleep(1.0)  # load keeps coming after the rollback
                done = _finished(other)
                history = other.alias_history("m", "challenger")
                production = other.resolve("models:/m@production")
        answers = list(load.answers)
    assert rolled_back - started < 20
    assert done is not None
    assert done.state == RolloutState.ROLLED_BACK
    assert reason in done.reason
    dropped = history[-1]
    assert (dropped.from_version, dropped.to_version) == (2, None)
    assert dropped.reason.startswith("rollout #1 rolled back version 2: ")
    assert reason in dropped.reason
    assert dropped.actor.startswith("server:")
    assert production.version == 1
    by_champion = [a for a in answers if a.version == "1"]
    assert by_champion
    assert all(a.status == 200 for a in by_champion)
    assert {a.version for a in answers if a.status != 200} <= {"2"}
    assert any(a.version == "2" for a in answers), "the challenger never got traffic"
    after = [a for a in answers if a.sent > rolled_back + 0.3]
    assert after, "no load after the rollback"
    assert {(a.status, a.version) for a in after} == {(200, "1")}


def test_a_good_challenger_walks_its_steps_and_is_promoted(settings: Settings) -> None:
    with Client(settings) as client:
        client.register(Zero(), "m", data=ROWS, alias="production")
        client.register(Zero(), "m", data=ROWS)
        policy = RolloutPolicy(steps=(0.2, 0.5, 1.0), min_requests=30, judge_after=10, **CALM)
        server = build_app(client, _server_settings(), wait_for_models=True)
        with running_server(server.app) as url, Load(url).running() as load:
            time.sleep(0.3)
            with Client(settings) as other:
                other.start_rollout("m", 2, mode="canary", policy=policy)
                promoted = _until(lambda: _finished(other) is not None, 60, "a promotion")
                time.sleep(1.0)
                done = _finished(other)
                history = other.alias_history("m")
                production = other.resolve("models:/m@production")
        answers = list(load.answers)
    assert done is not None
    assert done.state == RolloutState.PROMOTED
    assert production.version == 2
    assert [a for a in answers if a.status != 200] == []  # nothing failed, ever
    challenger_events = [e.reason for e in history if e.alias == "challenger"]
    assert challenger_events[0].startswith("rollout #1 started: canary with 20% ")
    assert challenger_events[1].startswith("rollout #1 advanced to step 2 of 3 at 50%: the "
                                           "challenger held its objectives over ")
    assert challenger_events[2].startswith("rollout #1 advanced to step 3 of 3 at 100%: ")
    assert challenger_events[3].startswith("rollout #1 promoted version 2: promoted after "
                                           "the last step")
    [moved] = [e for e in history if e.alias == "production" and e.to_version == 2]
    assert moved.from_version == 1
    assert moved.actor.startswith("server:")
    assert {a.version for a in answers} == {"1", "2"}
    after = [a for a in answers if a.sent > promoted + 0.3]
    assert after
    assert {a.version for a in after} == {"2"}


def test_shadow_logs_both_versions_compares_them_and_judges_labels(
        settings: Settings, tmp_path: Path) -> None:
    X, y = load_iris(return_X_y=True)
    store = ParquetLogStore(str(tmp_path / "logs"))
    sink = InferenceLog(store, flush_interval_s=0.05)
    ids = [f"req-{i}" for i in range(90)]
    with Client(settings) as client:
        client.register(LogisticRegression(max_iter=1000).fit(X, y), "m", data=X,
                        alias="production")
        # A stump: right on one class in three less often than the champion.
        client.register(DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y), "m",
                        data=X)
        policy = RolloutPolicy(min_requests=10_000, min_labels=60, judge_after=10, **CALM)
        server = build_app(client, _server_settings(), sink=sink, wait_for_models=True)
        with running_server(server.app) as url, httpx.Client(base_url=url, timeout=30) as http:
            client.start_rollout("m", 2, mode="shadow", policy=policy)
            _until(lambda: http.get("/v2/models/m/rollout").status_code == 200, 10,
                   "the server following the rollout")
            _until(lambda: http.get("/v2/models/m/rollout").json()["challenger_loaded"], 10,
                   "the challenger loading")
            seen = set()
            for i, rid in enumerate(ids):
                row = X[(i * 5) % len(X)]
                r = http.post("/v2/models/m/infer", json={"id": rid, "inputs": [{
                    "name": "input", "shape": [1, 4], "datatype": "FP64",
                    "data": row.tolist()}]})
                assert r.status_code == 200, r.text
                seen.add(r.json()["model_version"])
            assert seen == {"1"}  # clients only ever see the champion
            status = _wait_for_shadows(http, len(ids))
            stats = status["stats"]
            assert stats["challenger"]["compared"] == len(ids)
            assert 0.3 < stats["challenger"]["agreement"] < 1.0
            assert status["rollout"]["mode"] == "shadow"
            # 40 labels (below min_labels): both versions' accuracy on the same requests.
            labels = [{"id": rid, "label": int(y[(i * 5) % len(X)])}
                      for i, rid in enumerate(ids)]
            assert http.post("/v2/models/m/feedback", json=labels[:40]).status_code == 202
            stats = http.get("/v2/models/m/rollout").json()["stats"]
            assert stats["champion"]["labelled"] == stats["challenger"]["labelled"] == 40
            assert stats["champion"]["accuracy"] > stats["challenger"]["accuracy"] + 0.1
            # The rest: past min_labels, the challenger is rolled back for its accuracy.
            assert http.post("/v2/models/m/feedback", json=labels[40:]).status_code == 202
            _until(lambda: http.get("/v2/models/m/rollout").status_code == 404, 10,
                   "the rollback for accuracy")
        done = client.rollout_history("m", limit=1)[0]
        dropped = client.alias_history("m", "challenger")[-1]
    assert done.state == RolloutState.ROLLED_BACK
    assert done.reason.startswith("accuracy ")
    assert "on labelled requests" in dropped.reason
    log = store.read_inferences("m").to_pylist()
    versions: dict[str, set[int]] = {}
    for record in log:
        versions.setdefault(record["request_id"], set()).add(record["version"])
        assert record["route"] == "v2"
        assert record["error"] is None
    assert {rid: versions.get(rid) for rid in ids} == {rid: {1, 2} for rid in ids}


def _wait_for_shadows(http: httpx.Client, n: int) -> dict[str, object]:
    status: dict[str, object] = {}

    def all_compared() -> bool:
        status.update(http.get("/v2/models/m/rollout").json())
        return status["stats"]["challenger"]["compared"] >= n  # type: ignore[index]

    _until(all_compared, 10, "every shadow copy answered")
    return status


def test_ab_traffic_is_sticky_by_header(settings: Settings) -> None:
    with Client(settings) as client:
        client.register(Zero(), "m", data=ROWS, alias="production")
        client.register(Zero(), "m", data=ROWS)
        policy = RolloutPolicy(steps=(0.5,), min_requests=100_000, sticky="header:X-User-ID",
                               **CALM)
        client.start_rollout("m", 2, mode="ab", policy=policy)
        server = build_app(client, _server_settings(grpc_port=0), wait_for_models=True)
        with running_server(server.app) as url:
            load = Load(url, threads=4, user_of=lambda t, i: f"user-{(t * 7 + i) % 40}")
            with load.running():
                _until(lambda: len(load.answers) > 600, 60, "600 answers")
            status = httpx.get(f"{url}/v2/models/m/rollout").json()
            grpc_sides = _grpc_versions(f"127.0.0.1:{server.grpc_port}",
                                        [f"user-{u}" for u in range(40)])
        answers = list(load.answers)
    assert {a.status for a in answers} == {200}
    by_user: dict[str | None, set[str]] = {}
    for a in answers:
        by_user.setdefault(a.user, set()).add(a.version)
    assert len(by_user) == 40
    assert all(len(v) == 1 for v in by_user.values()), by_user
    sides = [next(iter(v)) for v in by_user.values()]
    assert 5 <= sides.count("2") <= 35, sides
    assert status["rollout"]["mode"] == "ab"
    assert status["stats"]["challenger"]["requests"] == sum(a.version == "2" for a in answers)
    # gRPC reads the key from the invocation metadata: each user lands where REST put it.
    assert grpc_sides == {user: next(iter(v)) for user, v in by_user.items()}


def _grpc_versions(address: str, users: list[str]) -> dict[str | None, str]:
    import tritonclient.grpc as grpcclient

    triton = grpcclient.InferenceServerClient(address)
    try:
        sides: dict[str | None, str] = {}
        for user in users:
            for _ in range(3):
                tensor = grpcclient.InferInput("input", [1, 3], "FP64")
                tensor.set_data_from_numpy(np.ones((1, 3)))
                result = triton.infer("m", [tensor], headers={"x-user-id": user})
                version = result.get_response().model_version
                assert sides.setdefault(user, version) == version
        return sides
    finally:
        triton.close()
