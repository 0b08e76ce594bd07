"""Monitoring: reference profiles of the data a model version was trained or validated on."""

from __future__ import annotations

from modelyard.monitoring.profile import (
    ColumnProfile,
    Histogram,
    ReferenceProfile,
    compute_profile,
    read_profile,
    read_reference_sample,
    write_profile,
)

__all__ = [
    "ColumnProfile",
    "Histogram",
    "ReferenceProfile",
    "compute_profile",
    "read_profile",
    "read_reference_sample",
    "write_profile",
]
