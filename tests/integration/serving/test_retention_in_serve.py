"""``modelyard serve`` with ``security.log_retention_days`` prunes the log once at start (and
daily), recording what it deleted in the audit log."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pandas as pd
import pyarrow as pa
from sklearn.linear_model import LogisticRegression

from modelyard import Client
from modelyard.cli.serve import _build
from modelyard.monitoring.log_store import ParquetLogStore
from modelyard.monitoring.retention import DAY_S
from modelyard.registry.sql.audit import SqlAuditLog
from modelyard.settings import DeploymentSettings, SecuritySettings, ServingSettings, Settings
from modelyard.testing.server import running_server


def test_serve_prunes_old_partitions_at_start(tmp_path: Path) -> None:
    X = pd.DataFrame({"age": [20.0, 30.0, 60.0, 70.0]})
    y = [0, 0, 1, 1]
    settings = Settings(
        home=tmp_path / "home", user="server",
        serving=ServingSettings(deployments=[DeploymentSettings(model="models:/age@production")],
                                grpc_port=None),
        security=SecuritySettings(log_retention_days=30))
    with Client(settings) as client:
        client.register(LogisticRegression().fit(X, y), "age", data=X, alias="production")
    logs = ParquetLogStore(settings.resolved_log_uri())
    old = time.time() - 45 * DAY_S
    logs.write_feedback("age", pa.table({"request_id": ["r"], "row": pa.array([0], pa.int32()),
                                         "label": [1.0], "timestamp": [old]}))
    old_folder = next((tmp_path / "home" / "logs" / "feedback").rglob("date=*"))

    server = _build(settings)
    assert old_folder.exists()  # nothing happens before the server starts
    with running_server(server.app) as url:
        deadline = time.monotonic() + 10
        while old_folder.exists():
            assert time.monotonic() < deadline, "the server did not prune at start"
            time.sleep(0.05)
        assert httpx.get(f"{url}/v2/health/live").status_code == 200
    with Client(settings) as client:
        entries = SqlAuditLog(client.store.engine).entries(action="logs.prune")
    assert [(e.actor, e.after["totals"]["feedback_partitions"]) for e in entries] == [
        ("server", 1)]

