"""What each dashboard page shows, read from the registry and the monitoring stores.

Everything here blocks (database and file reads): the web app calls it in a thread. The
results are plain dataclasses; :mod:`modelyard.web.pages` turns them into HTML.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from modelyard.errors import NotFoundError

if TYPE_CHECKING:
    from modelyard._client import Client
    from modelyard.core.entities import AliasChange, ModelVersion, RegisteredModel
    from modelyard.core.rollout import Rollout
    from modelyard.monitoring.alerts import AlertState
    from modelyard.monitoring.log_store import LogStore
    from modelyard.monitoring.monitor import MonitorConfig
    from modelyard.registry.sql.pipeline_store import PipelineRun
    from modelyard.security.audit import AuditEntry

__all__ = ["Dashboard", "ModelPage", "ModelRow", "Trend"]

HISTORY_S = 7 * 24 * 3600.0
"""How far back the trend lines go."""


@dataclass(frozen=True, slots=True)
class ModelRow:
    """One line of the overview."""

    model: RegisteredModel
    versions: int
    rollout: Rollout | None
    monitored_at: float | None
    firing: list[AlertState]


@dataclass(frozen=True, slots=True)
class Trend:
    """One monitored metric: its values over time, newest last."""

    metric: str
    timestamps: np.ndarray
    values: np.ndarray

    @property
    def latest(self) -> float | None:
        finite = self.values[np.isfinite(self.values)]
        return float(finite[-1]) if finite.size else None


@dataclass(frozen=True, slots=True)
class ModelPage:
    """Everything the page of one model shows."""

    model: RegisteredModel
    versions: list[ModelVersion]
    alias_history: list[AliasChange]
    rollouts: list[Rollout]
    runs: list[PipelineRun]
    monitored_at: float | None
    trends: list[Trend]
    alerts: list[AlertState]
    generated_at: float = field(default_factory=time.time)


class Dashboard:
    """Reads what the pages show from ``client``'s registry and the inference log ``logs``."""

    def __init__(self, client: Client, logs: LogStore, config: MonitorConfig) -> None:
        from modelyard.monitoring.metric_store import MetricStore
        from modelyard.registry.sql.pipeline_store import SqlPipelineStore

        self.client = client
        self.logs = logs
        self.config = config
        self.metrics = MetricStore(client.store.engine)
        self.pipelines = SqlPipelineStore(client.store.engine)

    def overview(self) -> list[ModelRow]:
        alerts = self.metrics.alert_states()
        rows = []
        for model in self.client.list_models():
            name = model.name
            monitored_at, _ = self.metrics.latest(name)
            firing = [s for (_, m), s in sorted(alerts.items())
                      if m == name and s.status == "firing"]
            rows.append(ModelRow(model, len(self.client.list_versions(name)),
                                 self.client.active_rollout(name), monitored_at, firing))
        return rows

    def model(self, name: str) -> ModelPage:
        model = self.client.get_model(name)  # NotFoundError names the model
        monitored_at, _ = self.metrics.latest(name)
        since = (monitored_at or time.time()) - HISTORY_S
        history = self.metrics.history(name, since=since)
        trends = [Trend(metric, np.asarray(ts, dtype=float), np.asarray(vs, dtype=float))
                  for metric, (ts, vs) in sorted(history.items())]
        alerts = [s for (_, m), s in sorted(self.metrics.alert_states(name).items())
                  if m == name]
        return ModelPage(
            model=model,
            versions=sorted(self.client.list_versions(name), key=lambda v: -v.version),
            alias_history=list(reversed(self.client.alias_history(name)))[:50],
            rollouts=self.client.rollout_history(name, limit=20),
            runs=self.pipelines.list_runs(model=name, limit=20),
            monitored_at=monitored_at, trends=trends, alerts=alerts)

    def report(self, name: str) -> Any:
        """The monitoring report of ``name`` over the configured window, computed now (the
        same data as ``modelyard monitor report``; nothing is stored or sent)."""
        from modelyard.monitoring.monitor import monitor_model
        from modelyard.monitoring.report import ReportData

        self.client.get_model(name)  # a clear 404 for an unknown model
        if name not in self.logs.models():
            raise NotFoundError(
                f"Model {name!r} has no inference log yet, so there is nothing to report.",
                hint="Serve it (modelyard serve) or score a batch with --log first.")
        result = monitor_model(name, logs=self.logs, source=self.client, config=self.config,
                               metrics=None, notify=False)
        return ReportData(
            model=name, version=result.version, generated_at=time.time(),
            window=result.window, n_rows=result.n_rows, drift=result.drift,
            quality=result.quality, reference=result.reference, current=result.current,
            kinds=result.kinds,
            history=self.metrics.history(name, since=result.window_end - HISTORY_S),
            performance=result.performance, objectives=result.objectives,
            alerts=result.firing)

    def audit(self, limit: int = 200) -> list[AuditEntry]:
        from modelyard.registry.sql.audit import SqlAuditLog

        return list(reversed(SqlAuditLog(self.client.store.engine).entries(limit=limit)))
