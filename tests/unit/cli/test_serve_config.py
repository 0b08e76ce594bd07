"""`modelyard serve` arguments and YAML config -> ServingSettings."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.cli.serve import _serving_settings
from modelyard.errors import InvalidInputError
from modelyard.settings import ServingSettings


def test_refs_and_overrides() -> None:
    s = _serving_settings(ServingSettings(), ["models:/a@production", "models:/b/2"], None,
                          host="0.0.0.0", port=9000, grpc_port=None, no_grpc=True, workers=2,
                          max_batch_size=8, max_batch_delay_ms=None)
    assert [d.model for d in s.deployments] == ["models:/a@production", "models:/b/2"]
    assert (s.host, s.port, s.grpc_port, s.workers) == ("0.0.0.0", 9000, None, 2)
    assert s.batching.max_batch_size == 8


def test_yaml_config(tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(
        "port: 9100\nbatching: {max_batch_size: 16}\nmodels:\n  - models:/a@production\n"
        "  - model: models:/b@staging\n    name: bee\n    replicas: 2\n    timeout_s: 3\n")
    s = _serving_settings(ServingSettings(), [], config)
    assert s.port == 9100
    assert s.batching.max_batch_size == 16
    bee = s.deployments[1]
    assert (bee.name, bee.replicas, bee.timeout_s) == ("bee", 2, 3)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("models: [", "not valid YAML"),
        ("- a\n- b\n", "must hold a mapping"),
        ("models: nope\n", "must be a list"),
        ("models:\n  - replicas: 2\n", "Invalid model entry"),
        ("port: -5\nmodels: [models:/a/1]\n", "Invalid server settings"),
    ],
    ids=["bad-yaml", "not-a-mapping", "models-not-list", "entry-without-model", "bad-port"],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, match: str) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(text)
    with pytest.raises(InvalidInputError, match=match):
        _serving_settings(ServingSettings(), [], config)


def test_nothing_to_serve() -> None:
    with pytest.raises(InvalidInputError, match="No model to serve"):
        _serving_settings(ServingSettings(), [], None)


def test_prefer_onnx_from_the_flag_and_per_model_in_yaml(tmp_path: Path) -> None:
    s = _serving_settings(ServingSettings(), ["models:/a@production"], None, prefer_onnx=True)
    assert s.prefer_onnx is True
    assert _serving_settings(ServingSettings(), ["models:/a/1"], None).prefer_onnx is False
    config = tmp_path / "serve.yaml"
    config.write_text("models:\n  - model: models:/a@production\n    prefer_onnx: false\n")
    assert _serving_settings(ServingSettings(prefer_onnx=True), [], config).deployments[
        0].prefer_onnx is False
