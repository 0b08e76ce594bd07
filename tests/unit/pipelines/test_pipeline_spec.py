"""pipeline.yaml: every key checked, errors naming the file and the field, paths resolved
against the file's folder, the train function imported from there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelyard.errors import InvalidInputError, NotFoundError
from modelyard.pipelines.spec import load_spec, parse_spec

BASE: dict[str, Any] = {"name": "churn-retrain", "model": "churn", "data": "data/*.parquet",
                        "target": "churned", "train": "train:fit"}


def write(folder: Path, text: str) -> Path:
    path = folder / "pipeline.yaml"
    path.write_text(text)
    return path


def test_a_full_file_parses_with_defaults_and_shorthands(tmp_path: Path) -> None:
    path = write(tmp_path, """
name: churn-retrain
model: churn
data: {path: "data/*.csv"}
target: churned
train: "train:fit"
params: {C: 0.5}
split: {kind: time, time_column: ts}
gates: {metrics: {accuracy: {min: 0.8, min_delta: -0.01}}}
on_pass: {action: rollout, mode: shadow, steps: [0.1, 1.0]}
triggers: {new_data: true, alert: [drift-high], cron: "0 3 * * *"}
""")
    spec = load_spec(path)
    assert spec.split.test_size == 0.2
    assert spec.split.seed == 0
    assert spec.champion_alias == "production"
    assert spec.on_pass.mode == "shadow"
    assert spec.on_pass.steps == [0.1, 1.0]
    assert spec.triggers.new_data is not None
    assert spec.triggers.new_data.poll_s == 60
    assert spec.triggers.alert is not None
    assert spec.triggers.alert.rules == ["drift-high"]
    assert spec.base_dir == tmp_path.resolve()
    assert spec.resolve(spec.data.path or "") == str(tmp_path.resolve() / "data/*.csv")
    assert spec.resolve("s3://bucket/x/*.csv") == "s3://bucket/x/*.csv"
    gates = spec.gates_config()
    assert gates.target == "churned"  # the pipeline's target, since the gates name none
    assert gates.metrics["accuracy"].min_delta == -0.01


@pytest.mark.parametrize(("data", "kind"), [
    ("feedback:churn", "feedback"),
    ({"feedback": "churn", "since": "30d", "version": 2}, "feedback"),
    ({"sql": {"url": "sqlite:///x.db", "query": "select * from t"}}, "sql"),
    ("s3://bucket/train/*.parquet", "path"),
], ids=["feedback-shorthand", "feedback", "sql", "uri"])
def test_data_sources(data: Any, kind: str) -> None:
    assert parse_spec({**BASE, "data": data}).data.kind == kind


@pytest.mark.parametrize(("change", "message"), [
    ({"epochs": 3}, r"epochs: unknown key"),
    ({"target": None}, r"target: Input should be a valid string"),
    ({"train": "train.fit"}, r"train: 'train.fit' is not 'module:function'"),
    ({"split": {"kind": "time"}}, r"split: a time split needs 'time_column'"),
    ({"split": {"test_size": 1.5}}, r"split.test_size: .*less than 1"),
    ({"data": {"path": "a/*.csv", "sql": {"url": "sqlite://", "query": "q"}}},
     r"data: give exactly one of 'path', 'sql' or 'feedback' \(got path, sql\)"),
    ({"data": {"path": "a/*.csv", "since": "7d"}}, r"since only apply to a 'feedback' source"),
    ({"on_pass": {"action": "register", "weight": 0.1}},
     r"on_pass: mode, weight, steps and policy only apply to action: rollout"),
    ({"on_pass": {"action": "rollout", "steps": [0.5, 2]}}, r"on_pass.steps: steps must be"),
    ({"on_pass": {"action": "rollout", "policy": {"min_requestz": 5}}},
     r"on_pass.policy: .*Unknown rollout policy field"),
    ({"triggers": {"cron": "every day"}}, r"triggers.cron: 'every day' is not a cron schedule"),
    ({"gates": {}, "gates_file": "g.yaml"}, r"give 'gates' or 'gates_file', not both"),
    ({"gates": {"metrics": {"accuracy": {"minimum": 1}}}},
     r"gates.metrics.accuracy.minimum: unknown key"),
    ({"champion_alias": "latest"}, r"champion_alias: The alias 'latest' is reserved"),
    ({"name": "no spaces"}, r"name: the name must be"),
    ({"data": "feedback:churn", "triggers": {"new_data": True}},
     r"triggers.new_data needs a 'uri' to watch: the data source is feedback"),
], ids=["unknown-key", "target", "entrypoint", "time-column", "test-size", "two-sources",
        "since-on-files", "rollout-options", "steps", "policy", "cron", "two-gates", "gate-key",
        "alias", "name", "new-data-uri"])
def test_errors_name_the_file_and_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as info:
        parse_spec({**BASE, **change}, source="p.yaml")
    assert "The pipeline file 'p.yaml' is invalid" in info.value.message


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="There is no pipeline file"):
        load_spec(tmp_path / "missing.yaml")
    with pytest.raises(InvalidInputError, match="is not valid YAML"):
        load_spec(write(tmp_path, "name: [unclosed"))
    with pytest.raises(InvalidInputError, match=r"must hold a mapping of keys\. Got a list"):
        load_spec(write(tmp_path, "- a\n- b\n"))


def test_gates_file_resolves_against_the_yaml_folder(tmp_path: Path) -> None:
    (tmp_path / "gates.yaml").write_text("target: y\nmetrics: {r2: {min: 0.5}}\n")
    spec = parse_spec({**BASE, "gates_file": "gates.yaml"}, base_dir=tmp_path)
    config = spec.gates_config()
    assert config.target == "y"
    assert config.metrics["r2"].min == 0.5


def test_train_function_imports_from_the_yaml_folder_afresh(tmp_path: Path) -> None:
    (tmp_path / "pl_train_fresh.py").write_text("def fit(df, params):\n    return 1\n")
    spec = parse_spec({**BASE, "train": "pl_train_fresh:fit"}, base_dir=tmp_path)
    assert spec.train_function()(None, {}) == 1
    # Edited between runs (a watcher): the next run uses the new code.
    (tmp_path / "pl_train_fresh.py").write_text("def fit(df, params):\n    return 2\n")
    assert spec.train_function()(None, {}) == 2


def test_train_function_errors(tmp_path: Path) -> None:
    (tmp_path / "pl_train_errors.py").write_text("import json\nVALUE = 1\n")
    spec = parse_spec({**BASE, "train": "pl_train_errors:fit"}, base_dir=tmp_path,
                      source="p.yaml")
    with pytest.raises(InvalidInputError, match="module 'pl_train_errors' has no function 'fit'"):
        spec.train_function()
    missing = parse_spec({**BASE, "train": "pl_nowhere:fit"}, base_dir=tmp_path)
    with pytest.raises(NotFoundError, match="there is no module 'pl_nowhere'"):
        missing.train_function()
    (tmp_path / "pl_train_broken.py").write_text("raise RuntimeError('half written')\n")
    broken = parse_spec({**BASE, "train": "pl_train_broken:fit"}, base_dir=tmp_path)
    with pytest.raises(InvalidInputError, match="raised RuntimeError: half written"):
        broken.train_function()
