"""Triggers: due or not on a fixed clock, with the state a watcher would persist."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from modelyard.monitoring.alerts import AlertState
from modelyard.pipelines.triggers import AlertTrigger, CronTrigger, NewDataTrigger


def at(hour: int, minute: int = 0, day: int = 1) -> float:
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=dt.UTC).timestamp()


# -- cron -------------------------------------------------------------------------------------
def test_cron_is_due_once_its_time_has_come_since_the_first_look() -> None:
    cron = CronTrigger("0 3 * * *", tz=dt.UTC)
    assert cron.due({}, at(4)) is None  # never primed: nothing is due yet
    state = cron.prime({}, at(2))
    assert state == {"after": at(2)}
    assert cron.prime(state, at(5)) == state  # a restarted watcher keeps counting
    assert cron.due(state, at(2, 59)) is None
    reason = cron.due(state, at(3))
    assert reason == "schedule 0 3 * * *: due at 2026-03-01 03:00:00+00:00"
    handled = cron.handled(state, at(3, 0))
    assert cron.due(handled, at(3, 30)) is None
    assert cron.due(handled, at(3, day=2)) is not None


def test_missed_cron_times_make_one_run() -> None:
    cron = CronTrigger("*/15 * * * *", tz=dt.UTC)
    state = cron.prime({}, at(1))
    assert cron.due(state, at(6)) == "schedule */15 * * * *: due at 2026-03-01 01:15:00+00:00"
    assert cron.due(cron.handled(state, at(6)), at(6, 10)) is None


def test_cron_reads_the_schedule_in_its_time_zone() -> None:
    tz = dt.timezone(dt.timedelta(hours=2))
    cron = CronTrigger("0 3 * * *", tz=tz)
    state = cron.prime({}, at(0))
    assert cron.due(state, at(0, 59)) is None
    assert cron.due(state, at(1)) is not None  # 03:00 at UTC+2 is 01:00 UTC


# -- new data ---------------------------------------------------------------------------------
def test_new_data_sees_only_files_no_earlier_run_saw(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x\n1\n")
    trigger = NewDataTrigger(str(tmp_path / "*.csv"), poll_s=1, settle_s=0)
    assert trigger.due({}, 0.0) == "new data: 1 file(s) (a.csv)"  # never ran: all is new
    state = trigger.handled({}, 1.0)
    assert trigger.due(state, 2.0) is None
    (tmp_path / "b.csv").write_text("x\n2\n")
    (tmp_path / ".c.csv.tmp").write_text("half")  # a writer's temporary file: not data
    (tmp_path / "notes.txt").write_text("other")
    assert trigger.new_files(state) == [str(tmp_path / "b.csv")]
    state = trigger.handled(state, 3.0)
    assert trigger.due(state, 4.0) is None
    # A file rewritten with other content counts as new.
    (tmp_path / "a.csv").write_text("x\n1\n3\n")
    os.utime(tmp_path / "a.csv", (1e9, 1e9))
    assert trigger.due(state, 5.0) == "new data: 1 file(s) (a.csv)"


def test_new_data_names_a_few_files() -> None:
    from modelyard.pipelines.sources import DataFile

    files = [DataFile(f"s3://b/{i}.parquet", 1, "1:x") for i in range(5)]
    trigger = NewDataTrigger("s3://b/*.parquet", lister=lambda _uri: files, settle_s=0)
    assert trigger.due({}, 0.0) == (
        "new data: 5 file(s) (0.parquet, 1.parquet, 2.parquet and 2 more)")


def test_new_data_waits_until_new_files_are_left_alone(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x\n1\n")
    written = (tmp_path / "a.csv").stat().st_mtime
    clock = [written + 1.0]
    trigger = NewDataTrigger(str(tmp_path / "*.csv"), settle_s=5, clock=lambda: clock[0])
    assert trigger.due({}, 0.0) is None  # written a second ago: maybe still being copied in
    clock[0] = written + 5.0
    assert trigger.due({}, 0.0) == "new data: 1 file(s) (a.csv)"


# -- alerts -----------------------------------------------------------------------------------
def firing(rule: str, since: float, status: str = "firing", model: str = "churn") -> AlertState:
    return AlertState(rule=rule, model=model, status=status,  # type: ignore[arg-type]
                      since=since, value=0.5, last_notified=since)


def test_alert_trigger_fires_on_a_new_firing_only() -> None:
    states = [firing("drift-high", 100.0), firing("slow", 50.0, status="ok"),
              firing("drift-high", 10.0, model="other")]
    trigger = AlertTrigger("churn", lambda: states)
    reason = trigger.due({}, 200.0)
    assert reason is not None
    assert reason.startswith("alert: drift-high firing since ")
    state = trigger.handled({}, 200.0)
    assert state == {"handled_since": 100.0}
    assert trigger.due(state, 300.0) is None  # still firing, but this firing was handled
    states[0] = firing("drift-high", 400.0)  # resolved, then fired again
    assert trigger.due(state, 500.0) is not None


@pytest.mark.parametrize(("rules", "due"), [(None, True), (["slow"], True), (["drift"], False)],
                         ids=["any", "listed", "other-rule"])
def test_alert_trigger_can_listen_to_some_rules(rules: list[str] | None, due: bool) -> None:
    trigger = AlertTrigger("churn", lambda: [firing("slow", 5.0)], rules=rules)
    assert (trigger.due({}, 10.0) is not None) is due
