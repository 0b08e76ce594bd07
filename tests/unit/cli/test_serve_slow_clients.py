"""The uvicorn options 'modelyard serve' adds against slow and numerous clients."""

from __future__ import annotations

import pickle

import pytest

from modelyard.cli.serve import _slow_client_limits
from modelyard.serving.http.read_timeout import ReadTimeoutProtocol
from modelyard.settings import DeploymentSettings, ServingSettings


@pytest.mark.parametrize(("models", "limit"), [(0, 1024 + 256), (3, 3 * 1024 + 256)],
                         ids=["no-model", "three-models"])
def test_limits_follow_the_settings(models: int, limit: int) -> None:
    serving = ServingSettings(request_timeout_s=12.5, deployments=[
        DeploymentSettings(model=f"models:/m{i}@production") for i in range(models)])
    options = _slow_client_limits(serving)
    assert options["http"].func is ReadTimeoutProtocol
    assert options["http"].keywords == {"read_timeout_s": 12.5}
    assert (options["timeout_keep_alive"], options["limit_concurrency"],
            options["backlog"]) == (5, limit, 2048)


def test_the_protocol_factory_survives_pickling_for_worker_processes() -> None:
    options = _slow_client_limits(ServingSettings())
    restored = pickle.loads(pickle.dumps(options["http"]))
    assert restored.func is ReadTimeoutProtocol
    assert restored.keywords == {"read_timeout_s": 30.0}
