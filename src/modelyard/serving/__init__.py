"""The inference server: a transport-free data plane with REST and gRPC adapters."""

from __future__ import annotations

from modelyard.serving.dataplane import DataPlane, Prediction
from modelyard.serving.pool import DeploymentSpec, ModelPool

__all__ = ["DataPlane", "DeploymentSpec", "ModelPool", "Prediction"]
