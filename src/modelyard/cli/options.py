"""Parsing of repeated KEY=VALUE options."""

from __future__ import annotations

from modelyard.errors import InvalidInputError

__all__ = ["parse_pairs"]


def parse_pairs(items: list[str] | None, option: str) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; a malformed item is a clear error."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(
                f"The {option} option takes KEY=VALUE. Got {item!r} instead.",
                hint=f"Example: {option} accuracy=0.93",
            )
        out[key.strip()] = value.strip()
    return out
