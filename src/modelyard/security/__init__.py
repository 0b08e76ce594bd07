"""Checksums today; API keys, roles, encryption and audit events plug in here."""

from __future__ import annotations

from modelyard.security.checksums import Hasher, sha256_bytes, sha256_file

__all__ = ["Hasher", "sha256_bytes", "sha256_file"]
