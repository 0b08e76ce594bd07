"""JSON in and out of the wire codecs: orjson, with numpy arrays written without ``tolist``.

A body orjson refuses is tried once more with the stdlib parser, which also reads the ``NaN``
and ``Infinity`` literals that Python clients write. Parsing errors become
:class:`~modelyard.errors.InvalidInputError` (the client sent bad JSON); encoding errors
become :class:`~modelyard.errors.PredictionError` (the model returned something JSON cannot
carry). JSON has no NaN or infinity: orjson writes both as ``null``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

from modelyard.errors import InvalidInputError, PredictionError

__all__ = ["check_json_limits", "describe", "dumps", "json_shape", "loads", "outputs_as_records"]

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def loads(body: bytes | bytearray | memoryview | str, what: str = "The request body") -> Any:
    """Parse JSON, or raise an InvalidInputError that says ``what`` was not valid JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # Python's json module, and clients built on it such as tritonclient, write NaN and
        # Infinity, which orjson refuses. Retry with it, on this error path only.
        try:
            return json.loads(bytes(body) if isinstance(body, memoryview) else body)
        except (ValueError, RecursionError):
            raise InvalidInputError(f"{what} is not valid JSON: {exc}.") from None


# Below this size counting brackets with bytes.count beats numpy's per-call overhead.
_SMALL_BODY = 16 * 1024


def check_json_limits(body: bytes | bytearray | memoryview, *, max_depth: int,
                      max_elements: int, what: str = "The request body") -> None:
    """Refuse a JSON body nested deeper than ``max_depth`` or holding more than
    ``max_elements`` values, before it is parsed (InvalidInputError, HTTP 400).

    Cheap on the request path: a body too short to break a limit returns at once (depth is at
    most half the length, values at most half the length plus one); otherwise its opening
    brackets are counted, and only a body with more of them than ``max_depth`` is scanned
    for its real depth (strings and escapes understood, see :func:`json_shape`).

    >>> check_json_limits(b"[[[1]]]", max_depth=2, max_elements=10)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    modelyard.errors.InvalidInputError: The request body nests 3 levels deep; the limit is 2 ...
    """
    size = len(body)
    count_values = (size + 1) // 2 > max_elements
    if not count_values:
        if size <= 2 * max_depth:
            return
        if size < _SMALL_BODY:
            data = bytes(body)
            if data.count(b"[") + data.count(b"{") <= max_depth:
                return
    a = np.frombuffer(body, dtype=np.uint8)
    # '[' 5B, ']' 5D, '{' 7B, '}' 7D all have the bits 0x59 under the mask 0xD9 (so do 'Y',
    # 'y', '_' and DEL, which the full scan drops): one pass finds every bracket.
    maybe = _bracket_like(a)
    if not count_values and size >= _SMALL_BODY and np.count_nonzero(maybe) <= max_depth:
        return
    depth, values = _shape(a, np.flatnonzero(maybe), count_values=count_values,
                           slashes=_has_backslash(body, a))
    if depth > max_depth:
        raise InvalidInputError(
            f"{what} nests {depth} levels deep; the limit is {max_depth} "
            "(security.max_json_depth).",
            hint="Send flatter JSON, or raise the limit in the server's settings.")
    if values > max_elements:
        raise InvalidInputError(
            f"{what} holds {values} JSON values; the limit is {max_elements} "
            "(security.max_json_elements).",
            hint="Split the request into smaller ones, send binary tensors, or raise the "
                 "limit in the server's settings.")


def json_shape(body: bytes | bytearray | memoryview) -> tuple[int, int]:
    """The nesting depth and the number of values of a JSON text, from its bytes alone.

    Depth: 0 for a scalar, 1 for ``[]``, 2 for ``[[1]]``. Values: every scalar and container,
    counting an object member once (its key is not a value): ``{"a": [1, 2]}`` holds 4.
    Brackets and commas inside strings (escapes included) do not count. On text that is not
    JSON the numbers are meaningless but the call is safe and linear in the size.

    >>> json_shape(b'{"a": [1, 2], "b": "[[[,"}')
    (2, 5)
    """
    a = np.frombuffer(body, dtype=np.uint8)
    return _shape(a, np.flatnonzero(_bracket_like(a)), count_values=True,
                  slashes=_has_backslash(body, a))


def _bracket_like(a: np.ndarray) -> np.ndarray:
    # In place: a second 1 MB temporary makes malloc map fresh pages on every call, which
    # costs ten times the comparison itself.
    masked = a & 0xD9
    flags = masked.view(np.bool_)
    np.equal(masked, 0x59, out=flags)
    return flags


def _has_backslash(body: bytes | bytearray | memoryview, a: np.ndarray) -> bool:
    if isinstance(body, bytes | bytearray):
        return body.find(b"\\") >= 0  # memchr: ten times faster than a numpy pass
    return bool(np.any(a == 0x5C))


def _shape(a: np.ndarray, candidates: np.ndarray, *, count_values: bool,
           slashes: bool) -> tuple[int, int]:
    if a.size == 0:
        return 0, 0
    quotes = np.flatnonzero(a == 0x22)
    if quotes.size and slashes:
        quotes = np.setdiff1d(quotes, _escaped(np.flatnonzero(a == 0x5C)), assume_unique=True)
    kind = a[candidates] | 0x20
    brackets = _outside_strings(candidates[(kind == 0x7B) | (kind == 0x7D)], quotes)
    is_open = (a[brackets] | 0x20) == 0x7B
    if not is_open.any():
        return 0, 1
    depth = int(np.cumsum(np.where(is_open, 1, -1)).max())
    if not count_values:
        return depth, 0
    opens = brackets[is_open]
    commas = _outside_strings(np.flatnonzero(a == 0x2C), quotes)
    return depth, 1 + int(commas.size) + int(opens.size) - _empty_containers(a, opens)


def _escaped(slashes: np.ndarray) -> np.ndarray:
    """Positions escaped by a backslash: the byte after each run of odd length."""
    breaks = np.flatnonzero(np.diff(slashes) != 1)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [slashes.size - 1]))
    odd = (ends - starts) % 2 == 0
    return slashes[ends[odd]] + 1  # type: ignore[no-any-return]


def _outside_strings(positions: np.ndarray, quotes: np.ndarray) -> np.ndarray:
    # A byte is inside a string when an odd number of (unescaped) quotes precede it.
    if quotes.size == 0 or positions.size == 0:
        return positions
    return positions[(np.searchsorted(quotes, positions) & 1) == 0]  # type: ignore[no-any-return]


_BLANKS = np.array([0x20, 0x09, 0x0A, 0x0D], dtype=np.uint8)


def _empty_containers(a: np.ndarray, opens: np.ndarray) -> int:
    """Opening brackets whose next non-blank byte closes them (``[]``, ``{ }``)."""
    inside = opens + 1 < a.size
    follower = a[np.minimum(opens + 1, a.size - 1)]
    empty = int(np.count_nonzero(((follower | 0x20) == 0x7D) & inside))
    blank = np.isin(follower, _BLANKS) & inside
    if blank.any():  # pretty-printed text: find the next non-blank byte the long way
        solid = np.flatnonzero(~np.isin(a, _BLANKS))
        after = np.searchsorted(solid, opens[blank], side="right")
        after = after[after < solid.size]
        empty += int(np.count_nonzero((a[solid[after]] | 0x20) == 0x7D))
    return empty


def dumps(obj: Any) -> bytes:
    """Serialize ``obj``; C-contiguous numeric arrays go through orjson's numpy fast path."""
    try:
        return orjson.dumps(obj, default=_default, option=_OPTIONS)
    except orjson.JSONEncodeError as exc:
        reason = exc.__cause__ or exc  # the TypeError _default raised, with its reason
        raise PredictionError(f"The model's output cannot be written as JSON: {reason}.") from None


def _default(obj: Any) -> Any:
    # orjson calls this for what it cannot write natively: text/object, non-contiguous or
    # non-native-endian arrays, numpy scalars it does not know, and bytes.
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "mM":
            return obj.astype(str).tolist()
        return obj.tolist()
    if isinstance(obj, bytes):
        try:
            return obj.decode()
        except UnicodeDecodeError:
            raise TypeError(
                f"bytes {obj[:20]!r} are not UTF-8 text; use the binary tensor extension"
            ) from None
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"Type is not JSON serializable: {type(obj).__name__}")


def describe(value: object) -> str:
    """Name a JSON value's kind for an error message: 'a list', 'a string', 'null'..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def outputs_as_records(outputs: Mapping[str, np.ndarray]) -> list[dict[str, object]]:
    """Several outputs of N rows as N ``{name: value}`` objects (for row-format answers)."""
    lists = {k: np.atleast_1d(v).tolist() for k, v in outputs.items()}
    lengths = {len(v) for v in lists.values()}
    if len(lengths) > 1:
        detail = ", ".join(f"{k}={len(v)}" for k, v in lists.items())
        raise PredictionError(
            f"The model's outputs have different numbers of rows ({detail}); they cannot be "
            "written one object per row."
        )
    names = list(lists)
    return [dict(zip(names, row, strict=True)) for row in zip(*lists.values(), strict=True)]
