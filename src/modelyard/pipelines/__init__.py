"""Retraining pipelines: triggers, steps, and the validation gates a candidate version must
pass before it replaces the champion (``modelyard validate``).

>>> from modelyard.pipelines import GatesConfig, MetricGate
>>> GatesConfig(metrics={"accuracy": MetricGate(min=0.9, min_delta=0.0)}).signature
'compatible'
"""

from __future__ import annotations

from modelyard.pipelines.gates import (
    CheckContext,
    GateCheck,
    GatesConfig,
    MetricGate,
    ModelClient,
    ValidationReport,
    evaluate,
    load_gates,
    run_gates,
    validate,
)

__all__ = [
    "CheckContext",
    "GateCheck",
    "GatesConfig",
    "MetricGate",
    "ModelClient",
    "ValidationReport",
    "evaluate",
    "load_gates",
    "run_gates",
    "validate",
]
