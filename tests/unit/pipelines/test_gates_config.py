"""``gates.yaml``: what load_gates accepts, and a one-line error naming the field otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from modelyard.errors import ConfigurationError, NotFoundError
from modelyard.pipelines import GatesConfig, MetricGate, load_gates

FULL = """\
target: label
metrics:
  accuracy: {min: 0.9, min_delta: 0.0}
  log_loss: {max: 0.4, min_relative_delta: -0.01}
signature: identical
latency_p99_ms: 25
latency_samples: 50
max_size_mb: 200
checks: ["my_checks:no_negatives", "pkg.sub:fn"]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gates.yaml"
    path.write_text(text)
    return path


def test_every_field_is_read(tmp_path: Path) -> None:
    config = load_gates(_write(tmp_path, FULL))
    assert config == GatesConfig(
        target="label",
        metrics={"accuracy": MetricGate(min=0.9, min_delta=0.0),
                 "log_loss": MetricGate(max=0.4, min_relative_delta=-0.01)},
        signature="identical", latency_p99_ms=25, latency_samples=50, max_size_mb=200,
        checks=["my_checks:no_negatives", "pkg.sub:fn"])


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    config = load_gates(str(_write(tmp_path, "# nothing yet\n")))
    assert config == GatesConfig()
    assert (config.signature, config.latency_samples, config.metrics) == ("compatible", 200, {})


@pytest.mark.parametrize(("text", "match"), [
    pytest.param("metrics: {accuracy: {min: 0.9}\n", r"is not valid YAML: .*", id="bad-yaml"),
    pytest.param("- accuracy\n", r"must hold a mapping of gates. Got a list", id="not-mapping"),
    pytest.param("latency_ms: 3\n",
                 r"unknown field 'latency_ms'; the fields are target, metrics, signature, "
                 r"latency_p99_ms", id="unknown-field"),
    pytest.param("metrics: {accuracy: {minimum: 0.9}}\n",
                 r"unknown field 'metrics.accuracy.minimum'; the fields are min, max, "
                 r"min_delta, min_relative_delta", id="unknown-metric-field"),
    pytest.param("metrics: {accuracy: {min: high}}\n",
                 r"metrics.accuracy.min: Input should be a valid number", id="wrong-type"),
    pytest.param("metrics: {accuracy: {min: 0.9, max: 0.8}}\n",
                 r"metrics.accuracy: min \(0.9\) is above max \(0.8\)", id="min-above-max"),
    pytest.param("signature: loose\n", r"signature: Input should be 'compatible', 'identical' "
                 r"or 'off'", id="signature-mode"),
    pytest.param("latency_p99_ms: 0\n", r"latency_p99_ms: Input should be greater than 0",
                 id="zero-budget"),
    pytest.param("latency_samples: 0\n", r"latency_samples: Input should be greater than or "
                 r"equal to 1", id="zero-samples"),
    pytest.param("checks: [my_checks.no_negatives]\n",
                 r"checks: a check is 'module:function' .*got 'my_checks.no_negatives'",
                 id="check-without-colon"),
    pytest.param("metrics: {acc: {min: 0.9}, auc: {}}\n",
                 r"Unknown metric\(s\) \['acc', 'auc'\] in the gates. The metrics are "
                 r"accuracy, precision, recall, f1, roc_auc, log_loss \(classifiers\) and mae, "
                 r"rmse, r2, mape \(regressors\)", id="unknown-metric"),
])
def test_invalid_files_are_one_line_configuration_errors(tmp_path: Path, text: str,
                                                         match: str) -> None:
    with pytest.raises(ConfigurationError, match=match) as info:
        load_gates(_write(tmp_path, text))
    assert "\n" not in str(info.value)
    assert info.value.hint


def test_a_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"There is no gates file at '.*nope.yaml'"):
        load_gates(tmp_path / "nope.yaml")


def test_the_models_refuse_extra_keys_in_python_too() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        GatesConfig.model_validate({"metric": {}})
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        MetricGate.model_validate({"min": 0.9, "delta": 0.1})
