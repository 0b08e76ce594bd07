"""Helpers for testing modelyard and its plugins: conformance checks and fakes."""

from __future__ import annotations

from modelyard.testing.conformance import check_runtime

__all__ = ["check_runtime"]
