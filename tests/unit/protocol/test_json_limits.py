"""The JSON nesting and size pre-scan: exact on any JSON text (hypothesis, against the parsed
value), safe on any bytes, and the limits' messages."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.errors import InvalidInputError
from modelyard.protocol._json import check_json_limits, json_shape

# Strings full of what a naive scanner would trip on: brackets, commas, quotes, backslashes.
_TEXT = st.text(alphabet=st.sampled_from(list('[]{},:"\\ \n\tab\u00e9\u2603')), max_size=8)
_SCALARS = (st.none() | st.booleans() | st.integers() | _TEXT
            | st.floats(allow_nan=False, allow_infinity=False))
_VALUES = st.recursive(
    _SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner,
                                                                           max_size=4),
    max_leaves=40)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


def _values(value: Any) -> int:
    if isinstance(value, list):
        return 1 + sum(_values(v) for v in value)
    if isinstance(value, dict):
        return 1 + sum(_values(v) for v in value.values())
    return 1


@settings(max_examples=300, deadline=None)
@given(value=_VALUES, indent=st.sampled_from([None, 0, 2]), ascii_only=st.booleans(),
       compact=st.booleans())
def test_shape_matches_the_parsed_value(value: Any, indent: int | None, ascii_only: bool,
                                        compact: bool) -> None:
    separators = (",", ":") if compact else None
    text = json.dumps(value, indent=indent, ensure_ascii=ascii_only, separators=separators)
    assert json_shape(text.encode()) == (_depth(value), _values(value))


@settings(max_examples=200, deadline=None)
@given(value=_VALUES, max_depth=st.integers(1, 6), max_elements=st.integers(1, 60))
def test_limits_refuse_exactly_what_exceeds_them(value: Any, max_depth: int,
                                                 max_elements: int) -> None:
    body = json.dumps(value, separators=(",", ":")).encode()
    too_deep = _depth(value) > max_depth
    too_many = _values(value) > max_elements
    if too_deep or too_many:
        with pytest.raises(InvalidInputError, match=r"max_json_(depth|elements)"):
            check_json_limits(body, max_depth=max_depth, max_elements=max_elements)
    else:
        check_json_limits(body, max_depth=max_depth, max_elements=max_elements)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_any_bytes_are_safe(data: bytes) -> None:
    depth, values = json_shape(data)
    assert 0 <= depth <= len(data)
    assert 0 <= values <= len(data) + 1


LIMITS = [
    ("deep", b"[" * 40 + b"]" * 40, r"nests 40 levels deep; the limit is 32 "
                                    r"\(security\.max_json_depth\)"),
    ("deep-object", b'{"a":' * 33 + b"1" + b"}" * 33, r"nests 33 levels deep"),
    ("many-values", b"[" + b"1," * 5000 + b"1]", r"holds 5002 JSON values; the limit is 1000 "
                                                 r"\(security\.max_json_elements\)"),
]


@pytest.mark.parametrize(("label", "body", "match"), LIMITS, ids=[x[0] for x in LIMITS])
def test_limit_messages(label: str, body: bytes, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        check_json_limits(body, max_depth=32, max_elements=1000)


@pytest.mark.parametrize(
    "body",
    [b'{"inputs":[{"name":"x","shape":[1,30],"datatype":"FP64","data":' + b"[" + b"0.5," * 29
     + b"0.5]}]}",
     b'["' + b"[" * 100 + b'"]',  # brackets inside a string
     b'"\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["',  # an escaped quote does not end it
     b"[" * 32 + b"]" * 32],
    ids=["v2-row", "brackets-in-string", "escaped-quote", "at-the-limit"])
def test_bodies_within_the_limits_pass(body: bytes) -> None:
    check_json_limits(body, max_depth=32, max_elements=1000)


def test_large_flat_bodies_take_the_fast_path() -> None:
    body = orjson.dumps({"inputs": [{"name": "x", "shape": [50_000, 2], "datatype": "FP64",
                                     "data": [0.25] * 100_000}]})
    check_json_limits(body, max_depth=4, max_elements=5_000_000)
    assert json_shape(body) == (4, 100_009)
