"""Every metric value a monitoring run computes, kept so trends can be drawn; and the state of
alert rules between runs. Both live in the registry database (tables from its migrations)."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from modelyard.monitoring.alerts import AlertState

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["MetricStore"]


class MetricStore:
    """Metric values over time and alert states, in the registry database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def save(self, model: str, version: int | None, window_start: float, window_end: float,
             values: Mapping[str, float], *, computed_at: float | None = None) -> int:
        """Store one run's values; NaN is stored as NULL."""
        from modelyard.monitoring.sql_tables import metric_values, write_transaction

        now = time.time() if computed_at is None else computed_at
        rows = [{"model": model, "version": version, "window_start": window_start,
                 "window_end": window_end, "metric": name,
                 "value": None if value is None or not math.isfinite(value) else float(value),
                 "computed_at": now}
                for name, value in values.items()]
        if rows:
            with write_transaction(self.engine) as conn:
                conn.execute(metric_values.insert(), rows)
        return len(rows)

    def latest(self, model: str) -> tuple[float | None, dict[str, float]]:
        """The values of the newest run of ``model`` and when its window ended."""
        from sqlalchemy import func, select

        from modelyard.monitoring.sql_tables import metric_values as t

        with self.engine.connect() as conn:
            end = conn.execute(select(func.max(t.c.window_end)).where(t.c.model == model)).scalar()
            if end is None:
                return None, {}
            rows = conn.execute(select(t.c.metric, t.c.value).where(
                t.c.model == model, t.c.window_end == end).order_by(t.c.id)).all()
        return float(end), {m: (math.nan if v is None else float(v)) for m, v in rows}

    def history(self, model: str, metrics: Sequence[str] | None = None, *,
                since: float | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """metric -> (window end times, values), oldest first."""
        from sqlalchemy import select

        from modelyard.monitoring.sql_tables import metric_values as t

        query = select(t.c.metric, t.c.window_end, t.c.value).where(t.c.model == model)
        if metrics is not None:
            query = query.where(t.c.metric.in_(list(metrics)))
        if since is not None:
            query = query.where(t.c.window_end >= since)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(t.c.window_end, t.c.id)).all()
        series: dict[str, tuple[list[float], list[float]]] = {}
        for metric, end, value in rows:
            ts, vs = series.setdefault(metric, ([], []))
            ts.append(float(end))
            vs.append(math.nan if value is None else float(value))
        return {m: (np.asarray(ts), np.asarray(vs)) for m, (ts, vs) in series.items()}

    def models(self) -> list[str]:
        from sqlalchemy import select

        from modelyard.monitoring.sql_tables import metric_values as t

        with self.engine.connect() as conn:
            return sorted(conn.execute(select(t.c.model).distinct()).scalars())

    # -- alert states ------------------------------------------------------------------------
    def alert_states(self, model: str | None = None) -> dict[tuple[str, str], AlertState]:
        import orjson
        from sqlalchemy import select

        from modelyard.monitoring.sql_tables import alert_states as t

        query = select(t.c.state)
        if model is not None:
            query = query.where(t.c.model == model)
        with self.engine.connect() as conn:
            states = [AlertState.from_dict(orjson.loads(s))
                      for s in conn.execute(query).scalars()]
        return {(s.rule, s.model): s for s in states}

    def save_alert_states(self, states: Mapping[tuple[str, str], AlertState]) -> None:
        import orjson
        from sqlalchemy import delete

        from modelyard.monitoring.sql_tables import alert_states as t
        from modelyard.monitoring.sql_tables import write_transaction

        now = time.time()
        with write_transaction(self.engine) as conn:
            for (rule, model), state in states.items():
                conn.execute(delete(t).where(t.c.rule == rule, t.c.model == model))
                conn.execute(t.insert().values(rule=rule, model=model, updated_at=now,
                                               state=orjson.dumps(state.to_dict()).decode()))
