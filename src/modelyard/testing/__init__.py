"""Helpers for testing modelyard and its plugins: conformance checks and fakes."""

from __future__ import annotations

from modelyard.testing.conformance import check_runtime
from modelyard.testing.detectors import check_detector

__all__ = ["check_detector", "check_runtime"]
