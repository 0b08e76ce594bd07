"""Watching pipelines: one run at a time per pipeline (the lease in the registry database, on
SQLite and PostgreSQL; two watchers that never run one pipeline at once), and the alert
trigger reading the alert states monitoring keeps."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelyard import Client
from modelyard.errors import ConflictError
from modelyard.monitoring.alerts import AlertState
from modelyard.monitoring.metric_store import MetricStore
from modelyard.pipelines.spec import parse_spec
from modelyard.pipelines.triggers import build_triggers
from modelyard.pipelines.watch import WatchResult, run_once, watch
from modelyard.registry.sql.audit import SqlAuditLog
from modelyard.registry.sql.pipeline_store import SqlPipelineStore
from modelyard.settings import Settings


def test_lease_claim_refusal_renewal_and_takeover(settings: Settings) -> None:
    with Client(settings) as client:
        store = SqlPipelineStore(client.store.engine)
        first = store.claim("p", "a", ttl_s=10, now=100.0, triggers={"cron": {"after": 1.0}})
        assert first.granted
        assert first.state["rev"] == 1
        assert first.state["triggers"] == {"cron": {"after": 1.0}}
        refused = store.claim("p", "b", ttl_s=10, now=105.0)
        assert not refused.granted
        assert refused.holder == "a"
        assert store.renew("p", "a", ttl_s=10, now=108.0)
        assert not store.claim("p", "b", ttl_s=10, now=115.0).granted  # renewed until 118
        assert not store.renew("p", "b", ttl_s=10)
        assert store.release("p", "a", now=116.0)
        second = store.claim("p", "b", ttl_s=10, now=116.5)
        assert second.granted
        assert second.state["triggers"] == {"cron": {"after": 1.0}}

        # Judged on an old revision: another watcher handled the triggers meanwhile.
        stale = store.claim("p", "b", ttl_s=10, now=117.0, expected_rev=1)
        assert not stale.granted
        assert stale.holder is None

        # b dies during a run: once its lease expires, c takes over and fails b's run.
        run_id = store.start_run(pipeline="p", model="m", trigger="cron", params={})
        store.attach_run("p", "b", run_id)
        assert not store.claim("p", "c", ttl_s=10, now=120.0).granted
        taken = store.claim("p", "c", ttl_s=10, now=200.0)
        assert taken.granted
        assert taken.state["lease"]["owner"] == "c"
        abandoned = store.get_run(run_id)
        assert abandoned.status == "failed"
        assert abandoned.error is not None
        assert "stopped renewing its lease" in abandoned.error
        [entry] = SqlAuditLog(client.store.engine).entries(action="pipeline.run")
        assert entry.after["status"] == "failed"
        assert SqlAuditLog(client.store.engine).verify().ok


TRAIN = '''
import time
from pathlib import Path

from sklearn.linear_model import LogisticRegression


def fit(df, params):
    log = Path(params["log"])
    start = time.time()
    time.sleep(0.3)
    model = LogisticRegression(max_iter=300).fit(df[["x0", "x1"]], df["y"])
    with log.open("a") as fh:
        fh.write(f"{start} {time.time()}\\n")
    return model
'''


def _data(path: Path, seed: int) -> None:
    """A data file, written whole: to a hidden name (which watchers skip), then renamed."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, 2))
    hidden = path.with_name(f".{path.name}.tmp")
    pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1],
                  "y": (x[:, 0] + x[:, 1] > 0).astype(int)}).to_csv(hidden, index=False)
    hidden.rename(path)


def test_two_watchers_of_one_pipeline_never_run_it_at_once(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "pl_lease_train.py").write_text(TRAIN)
    intervals = tmp_path / "intervals.txt"
    spec = parse_spec({
        "name": "lease-test", "model": "lease", "data": "data/*.csv", "target": "y",
        "train": "pl_lease_train:fit", "params": {"log": str(intervals)},
        "on_pass": {"action": "promote"},
        "triggers": {"new_data": {"poll_s": 0.05, "settle_s": 0.2}}},
        base_dir=tmp_path)
    settings = Settings(home=tmp_path / "home", user="tester")
    _data(tmp_path / "data" / "a.csv", 0)
    stop = threading.Event()
    results: dict[str, WatchResult] = {}

    def watcher(name: str) -> None:
        with Client(settings) as client:
            results[name] = watch(spec, client, owner=name, stop=stop, ttl_s=5,
                                  handle_signals=False, timeout_s=60)

    threads = [threading.Thread(target=watcher, args=(n,)) for n in ("w1", "w2")]
    for t in threads:
        t.start()
    reader = Client(settings)
    store = SqlPipelineStore(reader.store.engine)

    def finished(n: int) -> bool:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if sum(r.status != "running" for r in store.list_runs()) >= n:
                return True
            time.sleep(0.05)
        return False

    assert finished(1)
    _data(tmp_path / "data" / "b.csv", 1)
    assert finished(2)
    time.sleep(0.5)  # a watcher that would run a file twice has had the time to
    stop.set()
    for t in threads:
        t.join(60)
    runs = store.list_runs()
    assert [r.status for r in runs] == ["passed", "passed"]
    assert sum(len(r.outcomes) for r in results.values()) == 2
    spans = sorted(tuple(map(float, line.split())) for line in
                   intervals.read_text().splitlines())
    assert len(spans) == 2
    assert spans[0][1] <= spans[1][0]
    assert {r.stopped_by for r in results.values()} == {"stop"}

    # While a watcher holds the lease, a manual run is refused.
    store.claim("lease-test", "someone-else", ttl_s=30)
    with pytest.raises(ConflictError, match="is running in another process"):
        run_once(spec, reader)
    reader.close()


def test_the_alert_trigger_reads_monitoring_alert_states(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    spec = parse_spec({"name": "on-alert", "model": "churn", "data": "d/*.csv", "target": "y",
                       "train": "t:f", "triggers": {"alert": ["drift-high"]}},
                      base_dir=tmp_path)
    with Client(settings) as client:
        [trigger] = build_triggers(spec, client)
        metrics = MetricStore(client.store.engine)
        assert trigger.due({}, 100.0) is None
        metrics.save_alert_states({
            ("drift-high", "churn"): AlertState("drift-high", "churn", "firing", 50.0, 0.4,
                                                50.0),
            ("slow", "churn"): AlertState("slow", "churn", "firing", 60.0, 900.0, 60.0)})
        reason = trigger.due({}, 100.0)
        assert reason is not None
        assert reason.startswith("alert: drift-high firing since")
        assert trigger.due(trigger.handled({}, 100.0), 101.0) is None


def test_sigterm_stops_the_watcher_after_the_current_run(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "pl_signal_train.py").write_text(TRAIN)
    _data(tmp_path / "data" / "a.csv", 0)
    spec = parse_spec({
        "name": "signal-test", "model": "sig", "data": "data/*.csv", "target": "y",
        "train": "pl_signal_train:fit", "params": {"log": str(tmp_path / "spans.txt")},
        "triggers": {"new_data": {"poll_s": 0.05, "settle_s": 0}}}, base_dir=tmp_path)
    settings = Settings(home=tmp_path / "home", user="tester")
    before = signal.getsignal(signal.SIGTERM)
    with Client(settings) as client:
        store = SqlPipelineStore(client.store.engine)

        def terminate_during_the_run() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if any(r.status == "running" for r in store.list_runs()):
                    os.kill(os.getpid(), signal.SIGTERM)
                    return
                time.sleep(0.01)

        helper = threading.Thread(target=terminate_during_the_run)
        helper.start()
        result = watch(spec, client, timeout_s=60)
        helper.join()
    assert result.stopped_by == "signal"
    assert [o.run.status for o in result.outcomes] == ["passed"]  # the run was finished
    assert signal.getsignal(signal.SIGTERM) is before
