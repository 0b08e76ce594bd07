"""Pure domain: references, names, signatures, versions and aliases. No I/O, numpy only."""

from __future__ import annotations

from modelyard.core.entities import (
    AliasChange,
    CodeVersion,
    DataFingerprint,
    Lineage,
    ModelVersion,
    RegisteredModel,
    Status,
)
from modelyard.core.names import validate_alias, validate_model_name
from modelyard.core.references import ModelRef
from modelyard.core.signature import ColumnSpec, Schema, Signature, TensorSpec, infer_schema

__all__ = [
    "AliasChange",
    "CodeVersion",
    "ColumnSpec",
    "DataFingerprint",
    "Lineage",
    "ModelRef",
    "ModelVersion",
    "RegisteredModel",
    "Schema",
    "Signature",
    "Status",
    "TensorSpec",
    "infer_schema",
    "validate_alias",
    "validate_model_name",
]
