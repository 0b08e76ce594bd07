"""The alerts YAML: both rule forms, sinks, objectives, and one-line errors that say what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.errors import InvalidInputError
from modelyard.monitoring.alerts import (
    AlertRule,
    AlertsConfig,
    CommandSinkConfig,
    LogSinkConfig,
    WebhookSinkConfig,
    load_alerts,
)
from modelyard.monitoring.objectives import Objective

FULL = """
sinks:
  ops-hook:
    type: webhook
    url: https://hooks.example.com/ml
    secret: s3cr3t
    retries: 2
    backoff_s: 0.1
    headers: {Authorization: Bearer t}
  pager: {type: command, argv: [/usr/local/bin/page, --team, ml], timeout_s: 5}
  quiet: {type: log, level: info}
rules:
  - name: drift-high
    model: fraud
    condition: drift.share > 0.3
    window: 1h
    for: 10m
    cooldown: 1h
    severity: critical
    sinks: [log, ops-hook, pager]
    description: The world moved; retrain.
  - name: slow
    metric: latency_p99_ms
    op: ">="
    threshold: 50
  - name: psi
    condition: "feature.age.psi >= 2.5e-1"
    for: 90
objectives:
  fraud: ["latency_p99_ms <= 50", "accuracy >= 0.9"]
"""


def test_full_config_loads() -> None:
    config = load_alerts(FULL)
    drift, slow, psi = config.rules
    assert (drift.metric, drift.op, drift.threshold) == ("drift.share", ">", 0.3)
    assert (drift.window_s, drift.for_s, drift.cooldown_s) == (3600.0, 600.0, 3600.0)
    assert (drift.severity, drift.sinks, drift.model) == ("critical", ["log", "ops-hook", "pager"],
                                                         "fraud")
    assert drift.condition == "drift.share > 0.3"
    assert (slow.metric, slow.op, slow.threshold, slow.model) == ("latency.p99_ms", ">=", 50.0, "*")
    assert (slow.window, slow.for_s, slow.cooldown_s, slow.severity, slow.sinks) == (
        "1h", 0.0, 1800.0, "warning", ["log"])
    assert (psi.metric, psi.threshold, psi.for_s) == ("feature.age.psi", 0.25, 90.0)
    hook = config.sinks["ops-hook"]
    assert isinstance(hook, WebhookSinkConfig)
    assert hook.secret is not None
    assert hook.secret.get_secret_value() == "s3cr3t"
    assert "s3cr3t" not in repr(config)
    assert (hook.retries, hook.backoff_s, hook.headers) == (2, 0.1, {"Authorization": "Bearer t"})
    assert config.sinks["pager"] == CommandSinkConfig(
        type="command", argv=["/usr/local/bin/page", "--team", "ml"], timeout_s=5)
    assert config.sinks["quiet"] == LogSinkConfig(type="log", level="info")
    assert config.parsed_objectives() == {"fraud": [
        Objective("latency_p99_ms <= 50", "latency.p99_ms", "<=", 50.0),
        Objective("accuracy >= 0.9", "accuracy", ">=", 0.9)]}


def test_file_and_path_are_read(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(FULL, encoding="utf-8")
    assert load_alerts(path) == load_alerts(str(path)) == load_alerts(FULL)


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "{}"], ids=["empty", "comment", "map"])
def test_empty_config_has_no_rules(text: str) -> None:
    assert load_alerts(text) == AlertsConfig()


def test_for_is_also_accepted_by_name() -> None:
    assert AlertRule(name="r", condition="x > 1", for_="5m").for_s == 300.0  # type: ignore[call-arg]
    assert AlertRule.model_validate({"name": "r", "condition": "x > 1", "for": "5m"}).for_s == 300


def test_log_sink_may_be_redefined() -> None:
    config = load_alerts("sinks: {log: {type: log, level: error}}\n"
                         "rules: [{name: r, condition: 'x > 1'}]")
    assert config.sinks["log"] == LogSinkConfig(type="log", level="error")


ERRORS = {
    "unknown-rule-field": (
        "rules: [{name: a, condition: 'x > 1', tresh: 1}]",
        r"rule 'a': unknown field 'tresh'; a rule takes cooldown, description, metric, .*"
        r"for, condition\. A rule looks like"),
    "missing-threshold": (
        "rules: [{name: a, metric: x, op: '>'}]",
        r"rule 'a': field 'threshold' is required \(or give 'condition'"),
    "bad-op": (
        "rules: [{name: a, metric: x, op: '=>', threshold: 1}]",
        r"rule 'a': field 'op': Input should be '>', '>=', .* \(got '=>'\)"),
    "threshold-not-a-number": (
        "rules: [{name: a, metric: x, op: '>', threshold: high}]",
        r"rule 'a': field 'threshold': Input should be a valid number.* \(got 'high'\)"),
    "infinite-threshold": (
        "rules: [{name: a, metric: x, op: '>', threshold: .inf}]",
        r"rule 'a': field 'threshold': Input should be a finite number"),
    "garbage-condition": (
        "rules: [{name: a, condition: 'drift.share >> 0.3'}]",
        r"rule 'a': 'drift.share >> 0.3' is not a comparison of a metric with a number\. "
        r"Write METRIC OP NUMBER"),
    "condition-and-metric": (
        "rules: [{name: a, condition: 'x > 0.3', metric: y}]",
        r"rule 'a': 'condition' replaces 'metric'; give one form, not both"),
    "bad-duration": (
        "rules: [{name: a, condition: 'x > 1', for: 5x}]",
        r"rule 'a': field 'for': Duration '5x' is not understood\. Write a number and a unit"),
    "negative-cooldown": (
        "rules: [{name: a, condition: 'x > 1', cooldown: -5}]",
        r"rule 'a': field 'cooldown': Duration '-5' is negative"),
    "bad-severity": (
        "rules: [{name: a, condition: 'x > 1', severity: urgent}]",
        r"rule 'a': field 'severity': Input should be 'info', 'warning' or 'critical' "
        r"\(got 'urgent'\)"),
    "unnamed-rule": (
        "rules: [{name: a, condition: 'x > 1'}, {condition: 'x > 1'}]",
        r"rule #2: field 'name' is required"),
    "undefined-sink": (
        "sinks: {hook: {type: webhook, url: 'http://127.0.0.1:9/'}}\n"
        "rules: [{name: a, condition: 'x > 1', sinks: [pager]}]",
        r"rule 'a' sends to sink 'pager', which is not defined; define it under 'sinks:' or use "
        r"one of: hook, log\."),
    "duplicate-names": (
        "rules: [{name: a, condition: 'x > 1'}, {name: a, condition: 'y > 1'}]",
        r"two rules are named 'a'; give each a unique name"),
    "unknown-sink-type": (
        "sinks: {h: {type: slack}}",
        r"sink 'h': type 'slack' is unknown; use webhook, log or command\. A sink looks like"),
    "sink-without-type": (
        "sinks: {h: {url: 'https://x.example'}}",
        r"sink 'h': field 'type' is required: webhook, log or command"),
    "sink-bad-url": (
        "sinks: {h: {type: webhook, url: 'ftp://x.example'}}",
        r"sink 'h': field 'url': 'ftp://x.example' is not an http:// or https:// URL\."),
    "sink-negative-retries": (
        "sinks: {h: {type: webhook, url: 'http://x', retries: -1}}",
        r"sink 'h': field 'retries': Input should be greater than or equal to 0 \(got -1\)"),
    "command-without-argv": (
        "sinks: {h: {type: command, argv: []}}",
        r"sink 'h': field 'argv': List should have at least 1 item"),
    "bad-objective": (
        "objectives: {fraud: ['latency_p99_ms <= fast']}",
        r"objectives of model 'fraud': Objective 'latency_p99_ms <= fast' is not understood\. "
        r".* Objectives look like"),
    "objectives-not-a-list": (
        "objectives: {fraud: 'accuracy >= 0.9'}",
        r"objectives of model 'fraud': Input should be a valid list"),
    "unknown-top-level": (
        "rule: []",
        r"unknown field 'rule'; the file takes rules, sinks and objectives"),
    "not-a-mapping": (
        "- a\n- b",
        r"must be a mapping with 'rules', 'sinks' and 'objectives'; got a list"),
    "not-yaml": (
        "rules: [a",
        r"is not valid YAML: .*expected ',' or '\]'.* Check the indentation"),
    "two-problems": (
        "rules: [{name: a, condition: 'x > 1', for: 5x, severity: urgent}]",
        r"rule 'a': field 'for': .*; rule 'a': field 'severity'"),
}


@pytest.mark.parametrize(("text", "match"), list(ERRORS.values()), ids=list(ERRORS))
def test_errors_name_what_to_fix(text: str, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match) as info:
        load_alerts(text)
    assert "\n" not in str(info.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"There is no alerts config at '.*nope\.yaml'"):
        load_alerts(str(tmp_path / "nope.yaml"))


def test_errors_in_a_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yml"
    path.write_text("rules: [{name: a}]", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"The alerts config '.*alerts\.yml' is invalid"):
        load_alerts(path)


def test_parsed_mapping_and_source_name() -> None:
    import yaml

    assert load_alerts(yaml.safe_load(FULL)) == load_alerts(FULL)
    with pytest.raises(InvalidInputError, match=r"The alerts config 'monitor\.yaml' is invalid: "
                       r"rule #1: field 'name' is required"):
        load_alerts({"rules": [{"condition": "x > 1"}]}, source="monitor.yaml")
    with pytest.raises(InvalidInputError, match=r"The alerts config 'monitor\.yaml' is invalid"):
        load_alerts("rules: [{condition: 'x > 1'}]", source="monitor.yaml")
