"""Open Inference Protocol v2 codecs: decoding, model input, encoding, metadata.

Cross-checked against the real ``tritonclient.http``: requests it builds decode, and responses
we encode parse with its ``InferResult``.
"""

from __future__ import annotations

import math
import struct
from typing import Any, Literal

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tritonclient.http import InferInput, InferRequestedOutput, InferResult
from tritonclient.http._utils import _get_inference_request

from modelyard.core.signature import ColumnSpec, Schema, TensorSpec
from modelyard.errors import InvalidInputError, PredictionError
from modelyard.protocol import v2


def _body(*inputs: object, **extra: Any) -> bytes:
    return orjson.dumps({"inputs": list(inputs), **extra})


def _inp(
    name: str = "x", datatype: Any = "FP64", shape: Any = (2,), data: Any = (1, 2), **extra: Any
) -> dict[str, Any]:
    d = {
        "name": name,
        "datatype": datatype,
        "shape": list(shape) if isinstance(shape, tuple) else shape,
        **extra,
    }
    if data is not None:
        d["data"] = list(data) if isinstance(data, tuple) else data
    return d


def _triton_request(
    arrays: dict[str, np.ndarray], binary: bool, outputs: list[InferRequestedOutput] | None = None
) -> tuple[bytes, int | None]:
    """A request body exactly as tritonclient.http builds it."""
    inputs = []
    for name, arr in arrays.items():
        datatype = v2.datatype_of(arr.dtype)
        inp = InferInput(name, list(arr.shape), datatype)
        inp.set_data_from_numpy(arr, binary_data=binary)
        inputs.append(inp)
    body, length = _get_inference_request(inputs, "req-1", outputs, 0, False, False, 0, None, None)
    return body, length


# -- datatypes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("datatype", "dtype"),
    [
        ("BOOL", np.bool_),
        ("UINT8", np.uint8),
        ("UINT16", np.uint16),
        ("UINT32", np.uint32),
        ("UINT64", np.uint64),
        ("INT8", np.int8),
        ("INT16", np.int16),
        ("INT32", np.int32),
        ("INT64", np.int64),
        ("FP16", np.float16),
        ("FP32", np.float32),
        ("FP64", np.float64),
        ("BYTES", np.object_),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_datatypes_map_both_ways(datatype: str, dtype: type) -> None:
    assert v2.dtype_of(datatype) == np.dtype(dtype)
    assert v2.datatype_of(np.dtype(dtype)) == datatype


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        ("string", "BYTES"),
        ("datetime64[ns]", "BYTES"),
        ("<U5", "BYTES"),
        (">f8", "FP64"),
        ("float32", "FP32"),
        ("bool", "BOOL"),
    ],
    ids=["string", "datetime", "unicode", "big-endian", "float32", "bool"],
)
def test_datatype_of_signature_names(dtype: str, expected: str) -> None:
    assert v2.datatype_of(dtype) == expected


def test_unknown_datatype_is_named() -> None:
    with pytest.raises(InvalidInputError, match=r"Unknown datatype 'FP8'; expected one of BOOL"):
        v2.dtype_of("FP8")


# -- decode_request: good -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inp", "expected"),
    [
        (
            _inp(shape=(2, 3), data=[[1, 2, 3], [4, 5, 6]]),
            np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float64),
        ),
        (
            _inp(shape=(2, 3), data=[1, 2, 3, 4, 5, 6]),
            np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float64),
        ),
        (_inp(datatype="FP32", data=[0.5, None]), np.array([0.5, np.nan], dtype=np.float32)),
        (_inp(datatype="INT32", data=[1, -2]), np.array([1, -2], dtype=np.int32)),
        (_inp(datatype="INT64", data=[1.0, 2.0]), np.array([1, 2], dtype=np.int64)),
        (_inp(datatype="UINT64", data=[1, 2**64 - 1]), np.array([1, 2**64 - 1], dtype=np.uint64)),
        (_inp(datatype="INT64", data=[2**63 - 1, 1.0]), np.array([2**63 - 1, 1], dtype=np.int64)),
        (_inp(datatype="BOOL", data=[True, False]), np.array([True, False])),
        (_inp(datatype="BOOL", data=[1, 0]), np.array([True, False])),
        (_inp(datatype="BYTES", data=["a", "é"]), np.array(["a", "é"], dtype=object)),
        (
            _inp(datatype="BYTES", shape=(1, 2), data=[["a", None]]),
            np.array([["a", None]], dtype=object),
        ),
        (_inp(datatype="FP16", data=[0.5, 1.5]), np.array([0.5, 1.5], dtype=np.float16)),
        (_inp(shape=(0, 3), data=[]), np.empty((0, 3))),
        (_inp(shape=(), data=[7]), np.array(7.0)),
    ],
    ids=[
        "nested",
        "flat",
        "fp32-null-is-nan",
        "int32",
        "whole-floats-to-int",
        "uint64-max",
        "int64-max-exact",
        "bool",
        "bool-from-0-1",
        "bytes",
        "bytes-null",
        "fp16",
        "empty",
        "scalar",
    ],
)
def test_decode_json_inputs(inp: dict[str, Any], expected: np.ndarray) -> None:
    req = v2.decode_request(_body(inp))
    (got,) = req.inputs
    assert got.data.dtype == expected.dtype
    assert got.data.shape == expected.shape == got.shape
    np.testing.assert_array_equal(got.data, expected)


def test_decode_request_fields() -> None:
    body = _body(
        _inp(parameters={"content_type": "np"}),
        id="r-7",
        parameters={"binary_data_output": True, "priority": 2},
        outputs=[{"name": "predict"}, {"name": "proba", "parameters": {"binary_data": False}}],
    )
    req = v2.decode_request(body)
    assert req.id == "r-7"
    assert req.parameters == {"binary_data_output": True, "priority": 2}
    assert req.inputs[0].parameters == {"content_type": "np"}
    assert req.outputs == [v2.RequestedOutput("predict", True), v2.RequestedOutput("proba", False)]


def test_python_json_nan_and_infinity_literals_are_read() -> None:
    body = (
        b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [3], '
        b'"data": [NaN, Infinity, -Infinity]}]}'
    )
    (inp,) = v2.decode_request(body).inputs
    np.testing.assert_array_equal(inp.data, [np.nan, np.inf, -np.inf])


# -- decode_request: bad ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", r"The request body is not valid JSON: "),
        (b"[]", r"must be a JSON object with 'inputs'; got a list"),
        (b"{}", r"must have 'inputs', a non-empty list .*got none"),
        (_body(), r"must have 'inputs', a non-empty list .*got a list"),
        (orjson.dumps({"inputs": {"x": 1}}), r"'inputs', a non-empty list .*got an object"),
        (_body(5), r"inputs\[0\] must be an object with name, datatype, shape and data; got a "),
        (_body(_inp(name="")), r"inputs\[0\] has no 'name'"),
        (_body(_inp(datatype="FP8")), r"Input 'x' has datatype 'FP8'; expected one of BOOL, "),
        (_body(_inp(datatype=None)), r"Input 'x' has datatype None"),
        (_body(_inp(shape=[2, -1])), r"Input 'x' has shape \[2, -1\]; expected a list of non-neg"),
        (_body(_inp(shape="2")), r"Input 'x' has shape '2'; expected a list"),
        (_body(_inp(shape=[True])), r"Input 'x' has shape \[True\]"),
        (
            _body(_inp(shape=(2, 3), data=[1, 2, 3, 4, 5])),
            r"Input 'x' has shape \[2, 3\] \(6 values\) but 5 values arrived in data\.",
        ),
        (_body(_inp(data=None)), r"Input 'x' has no 'data'; expected its 2 values as a JSON list"),
        (_body(_inp(data=5)), r"Input 'x' has 'data' as a number; expected its 2 values"),
        (
            _body(_inp(name="age", datatype="FP32", data=["old", "new"])),
            r"Input 'age' has datatype FP32 but holds text such as 'old'\.",
        ),
        (_body(_inp(datatype="FP32", data=[1, "2"])), r"holds text such as '2'\."),
        (_body(_inp(datatype="FP32", data=[None, "a"])), r"holds text such as 'a'\."),
        (
            _body(_inp(datatype="FP64", data=[True, False])),
            r"Input 'x' has datatype FP64 but holds booleans; expected numbers\.",
        ),
        (_body(_inp(datatype="FP64", data=[True, None])), r"FP64 but holds booleans"),
        (
            _body(_inp(datatype="INT64", data=[1.5, 2])),
            r"Input 'x' has datatype INT64 but holds 1\.5; expected whole numbers\.",
        ),
        (
            _body(_inp(datatype="INT64", data=[1, None])),
            r"datatype INT64 but holds null; only floating-point inputs can carry missing",
        ),
        (
            _body(_inp(datatype="INT8", data=[1, 300])),
            r"Input 'x' has datatype INT8 but holds 300, outside its range \[-128, 127\]\.",
        ),
        (_body(_inp(datatype="UINT8", data=[-1, 2])), r"holds -1, outside its range \[0, 255\]"),
        (_body(_inp(datatype="UINT64", data=[-1, 2**64 - 1])), r"holds -1, outside its range"),
        (
            b'{"inputs": [{"name": "x", "datatype": "INT64", "shape": [2], '
            b'"data": [9223372036854775808, 1]}]}',
            r"holds 9223372036854775808, outside its range",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "UINT64", "shape": [1], '
            b'"data": [18446744073709551616]}]}',
            r"holds 1\.8446744073709552e\+19, outside its",
        ),
        (
            _body(_inp(datatype="BOOL", data=[1, 2])),
            r"Input 'x' has datatype BOOL but holds numbers such as 2; expected true or false\.",
        ),
        (_body(_inp(datatype="FP64", data=[{"a": 1}, 2])), r"holds an object; expected numbers"),
        (
            _body(_inp(datatype="BYTES", data=["a", 1])),
            r"Input 'x' has datatype BYTES but holds a number 1; expected text\.",
        ),
        (_body(_inp(shape=(2, 2), data=[[1, 2], [3]])), r"Input 'x' has ragged data"),
        (
            _body(_inp(datatype="BYTES", shape=(2, 2), data=[["a", "b"], ["c"]])),
            r"Input 'x' has ragged data",
        ),
        (_body(_inp(), _inp()), r"Input 'x' appears twice in the request\."),
        (_body(_inp(), id=5), r"The request 'id' must be a string; got a number\."),
        (_body(_inp(), parameters=[1]), r"The request 'parameters' must be an object; got a list"),
        (_body(_inp(parameters=[1])), r"Input 'x' has 'parameters' a list; expected an object"),
        (
            _body(_inp(data=None, parameters={"binary_data_size": 16})),
            r"Input 'x' has the binary_data_size parameter but the request has no "
            r"Inference-Header-Content-Length header",
        ),
        (
            _body(_inp(data=None, parameters={"shared_memory_region": "r"})),
            r"Input 'x' refers to shared memory, which this server does not offer",
        ),
        (_body(_inp(), outputs={"y": 1}), r"The request 'outputs' must be a list"),
        (_body(_inp(), outputs=[{}]), r"outputs\[0\] must be an object with a 'name'\."),
        (
            _body(_inp(), outputs=[{"name": "y", "parameters": {"binary_data": "yes"}}]),
            r"Output 'y' has binary_data 'yes'; expected true or false\.",
        ),
    ],
    ids=[
        "not-json",
        "not-object",
        "no-inputs",
        "empty-inputs",
        "inputs-not-list",
        "input-not-object",
        "no-name",
        "unknown-datatype",
        "no-datatype",
        "negative-dim",
        "shape-not-list",
        "shape-bool",
        "count-mismatch",
        "no-data",
        "data-scalar",
        "text-into-fp32",
        "mixed-text-into-fp32",
        "text-and-null-into-fp32",
        "bool-into-fp64",
        "bool-and-null-into-fp64",
        "fraction-into-int",
        "null-into-int",
        "int8-overflow",
        "negative-uint8",
        "negative-uint64",
        "int64-overflow",
        "uint64-overflow",
        "bool-from-2",
        "object-into-fp64",
        "number-into-bytes",
        "ragged",
        "ragged-bytes",
        "duplicate-input",
        "id-number",
        "parameters-list",
        "input-parameters-list",
        "binary-without-header",
        "shared-memory",
        "outputs-not-list",
        "output-without-name",
        "binary-data-not-bool",
    ],
)
def test_decode_request_errors(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        v2.decode_request(body)


# -- binary tensor extension --------------------------------------------------------------------


def _binary_body(header: dict[str, Any], *chunks: bytes) -> tuple[bytes, int]:
    head = orjson.dumps(header)
    return head + b"".join(chunks), len(head)


def test_binary_inputs_in_order_with_json_between() -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    words = [b"ab", "é".encode()]
    text = b"".join(struct.pack("<I", len(w)) + w for w in words)
    body, n = _binary_body(
        {
            "inputs": [
                _inp("x", "FP32", (2, 3), None, parameters={"binary_data_size": x.nbytes}),
                _inp("j", "INT64", (1,), [5]),
                _inp("s", "BYTES", (2,), None, parameters={"binary_data_size": len(text)}),
            ]
        },
        x.tobytes(),
        text,
    )
    req = v2.decode_request(body, n)
    np.testing.assert_array_equal(req.inputs[0].data, x)
    assert req.inputs[1].data.tolist() == [5]
    assert req.inputs[2].data.tolist() == ["ab", "é"]


def test_binary_bytes_that_are_not_utf8_stay_bytes() -> None:
    raw = b"\xff\xfe"
    body, n = _binary_body(
        {"inputs": [_inp("s", "BYTES", (1,), None, parameters={"binary_data_size": 6})]},
        struct.pack("<I", 2) + raw,
    )
    assert v2.decode_request(body, n).inputs[0].data.tolist() == [raw]


def test_aligned_binary_input_is_a_view_on_the_body() -> None:
    x = np.arange(4, dtype=np.float64)
    header = {"inputs": [_inp("x", "FP64", (4,), None, parameters={"binary_data_size": 32})]}
    head = orjson.dumps(header)
    head += b" " * (-len(head) % 8)  # pad so the tensor starts 8-byte aligned
    req = v2.decode_request(head + x.tobytes(), len(head))
    data = req.inputs[0].data
    assert not data.flags.writeable  # a view, not a copy
    np.testing.assert_array_equal(data, x)


def _bin(size: Any, datatype: str = "FP64", shape: Any = (2,)) -> dict[str, Any]:
    return _inp("x", datatype, shape, None, parameters={"binary_data_size": size})


@pytest.mark.parametrize(
    ("header", "payload", "header_length", "message"),
    [
        (
            {"inputs": [_bin(16)]},
            b"\0" * 16,
            10_000,
            r"Inference-Header-Content-Length header says the JSON header is 10000 bytes but "
            r"the body has",
        ),
        (
            {"inputs": [_bin(16)]},
            b"\0" * 8,
            None,
            r"Input 'x' declares binary_data_size 16 but only 8 bytes of binary data remain",
        ),
        (
            {"inputs": [_bin(8)]},
            b"\0" * 8,
            None,
            r"Input 'x' has shape \[2\] \(2 values of FP64, 16 bytes\) but binary_data_size is 8",
        ),
        (
            {"inputs": [_bin(16)]},
            b"\0" * 20,
            None,
            r"The request carries 20 bytes after the JSON header but its inputs declare 16",
        ),
        ({"inputs": [_bin(-1)]}, b"", None, r"Input 'x' has binary_data_size -1; expected a byte"),
        (
            {"inputs": [{**_bin(16), "data": [1, 2]}]},
            b"\0" * 16,
            None,
            r"Input 'x' has both 'data' and the binary_data_size parameter; send one\.",
        ),
        (
            {"inputs": [_bin(3, "BYTES", (1,))]},
            b"\1\0\0",
            None,
            r"ends inside a 4-byte length prefix",
        ),
        (
            {"inputs": [_bin(6, "BYTES", (1,))]},
            struct.pack("<I", 9) + b"ab",
            None,
            r"Input 'x' has a BYTES element of 9 bytes but only 2 bytes remain",
        ),
        (
            {"inputs": [_bin(6, "BYTES", (2,))]},
            struct.pack("<I", 2) + b"ab",
            None,
            r"Input 'x' has shape \[2\] \(2 values\) but 1 values arrived in its binary data",
        ),
    ],
    ids=[
        "header-longer-than-body",
        "short-body",
        "size-not-shape",
        "extra-bytes",
        "negative-size",
        "data-and-binary",
        "truncated-prefix",
        "truncated-element",
        "bytes-count",
    ],
)
def test_binary_errors(
    header: dict[str, Any], payload: bytes, header_length: int | None, message: str
) -> None:
    body, n = _binary_body(header, payload)
    with pytest.raises(InvalidInputError, match=message):
        v2.decode_request(body, n if header_length is None else header_length)


# -- tritonclient builds the request ------------------------------------------------------------


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_decode_what_tritonclient_sends(binary: bool) -> None:
    arrays: dict[str, np.ndarray] = {
        "x": np.arange(6, dtype=np.float32).reshape(2, 3),
        "n": np.array([[1], [-2]], dtype=np.int64),
        "s": np.array(["héllo", ""], dtype=object),
        "b": np.array([True, False]),
    }
    outputs = [InferRequestedOutput("predict", binary_data=binary)]
    body, length = _triton_request(arrays, binary, outputs)
    req = v2.decode_request(body, length)
    assert req.id == "req-1"
    assert req.outputs == [v2.RequestedOutput("predict", binary)]
    for inp, (name, arr) in zip(req.inputs, arrays.items(), strict=True):
        assert (inp.name, inp.datatype, inp.shape) == (name, v2.datatype_of(arr.dtype), arr.shape)
        assert inp.data.dtype == arr.dtype
        np.testing.assert_array_equal(inp.data, arr)


def test_tritonclient_default_asks_for_binary_outputs() -> None:
    body, length = _triton_request({"x": np.zeros((1, 2))}, binary=True)
    req = v2.decode_request(body, length)
    outputs = {"predict": np.array([1]), "proba": np.array([[0.2, 0.8]])}
    selected, binary = v2.select_outputs(req, outputs)
    assert list(selected) == ["predict", "proba"]
    assert binary == {"predict", "proba"}


_NUMERIC = [
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
]


@st.composite
def _arrays(draw: st.DrawFn) -> np.ndarray:
    datatype = draw(st.sampled_from([*_NUMERIC, "BYTES"]))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    if datatype == "BYTES":
        return draw(hnp.arrays(object, shape, elements=st.text(max_size=6)))
    dtype = v2.dtype_of(datatype)
    width: Literal[16, 32, 64] = 16 if dtype.itemsize == 2 else 32 if dtype.itemsize == 4 else 64
    elements = st.floats(width=width) if dtype.kind == "f" else None
    return draw(hnp.arrays(dtype, shape, elements=elements))


def _assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    if want.dtype == object:
        decoded = [v.decode() if isinstance(v, bytes) else v for v in got.ravel().tolist()]
        assert decoded == want.ravel().tolist()
    else:
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@settings(max_examples=150, deadline=None)
@given(arr=_arrays(), binary=st.booleans(), via_triton=st.booleans(), flat=st.booleans())
def test_decode_request_gives_the_arrays_back(
    arr: np.ndarray, binary: bool, via_triton: bool, flat: bool
) -> None:
    if via_triton and arr.ndim > 0:
        body, length = _triton_request({"t": arr}, binary)
    elif binary:
        raw = (
            b"".join(
                struct.pack("<I", len(b)) + b for b in (s.encode() for s in arr.ravel().tolist())
            )
            if arr.dtype == object
            else arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        )
        body, length = _binary_body(
            {
                "inputs": [
                    {
                        "name": "t",
                        "datatype": v2.datatype_of(arr.dtype),
                        "shape": list(arr.shape),
                        "parameters": {"binary_data_size": len(raw)},
                    }
                ]
            },
            raw,
        )
    else:
        data = arr.ravel().tolist() if flat or arr.ndim == 0 else arr.tolist()
        body = orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "t",
                        "datatype": v2.datatype_of(arr.dtype),
                        "shape": list(arr.shape),
                        "data": data,
                    }
                ]
            }
        )
        length = None
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            return  # orjson writes NaN and infinity as null; covered by the triton path
    (inp,) = v2.decode_request(body, length).inputs
    _assert_same(inp.data, arr)


@settings(max_examples=150, deadline=None)
@given(arr=_arrays(), binary=st.booleans())
def test_encode_response_parses_back_with_tritonclient(arr: np.ndarray, binary: bool) -> None:
    body, length = v2.encode_response("m", "1", "r", {"y": arr}, binary={"y"} if binary else ())
    assert (length is not None) == binary
    result = InferResult.from_response_body(body, header_length=length)
    got = result.as_numpy("y")
    want = arr
    if not binary and arr.dtype.kind == "f":
        want = np.where(np.isinf(arr), np.nan, arr).astype(arr.dtype)  # JSON has no infinity
    if arr.size == 0:
        assert got.shape == arr.shape  # tritonclient gives empty binary tensors as float64
        return
    _assert_same(got, want)


# -- to_model_input -----------------------------------------------------------------------------


def test_single_input_is_its_array() -> None:
    req = v2.decode_request(_body(_inp(shape=(1, 3), data=[1, 2, 3])))
    out = v2.to_model_input(req)
    assert isinstance(out, np.ndarray)
    assert out.shape == (1, 3)


def test_several_inputs_are_columns() -> None:
    req = v2.decode_request(
        _body(
            _inp("age", "INT64", (2,), [31, 40]),
            _inp("city", "BYTES", (2, 1), [["Oslo"], ["Rome"]]),
        )
    )
    cols = v2.to_model_input(req)
    assert isinstance(cols, dict)
    assert cols["age"].tolist() == [31, 40]
    assert cols["city"].tolist() == ["Oslo", "Rome"]
    assert cols["city"].ndim == 1


def test_single_input_named_as_a_column_is_a_table() -> None:
    req = v2.decode_request(_body(_inp("text", "BYTES", (2,), ["a", "b"])))
    assert isinstance(v2.to_model_input(req), np.ndarray)
    cols = v2.to_model_input(req, columns=["text"])
    assert isinstance(cols, dict)
    assert cols["text"].tolist() == ["a", "b"]


def test_several_tensors_keep_their_shapes() -> None:
    req = v2.decode_request(
        _body(_inp("ids", "INT64", (2, 3), [1, 2, 3, 4, 5, 6]), _inp("flag", "BOOL", (2,), [1, 0]))
    )
    cols = v2.to_model_input(req)
    assert isinstance(cols, dict)
    assert cols["ids"].shape == (2, 3)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            [_inp("a", shape=(2,), data=[1, 2]), _inp("b", shape=(3,), data=[1, 2, 3])],
            r"The inputs have different lengths \(a=2, b=3\)",
        ),
        (
            [_inp("a", shape=(), data=[1]), _inp("b", shape=(1,), data=[1])],
            r"Input 'a' is a scalar \(shape \[\]\)",
        ),
    ],
    ids=["lengths", "scalar"],
)
def test_to_model_input_errors(inputs: list[dict[str, Any]], message: str) -> None:
    req = v2.decode_request(_body(*inputs))
    with pytest.raises(InvalidInputError, match=message):
        v2.to_model_input(req)


# -- select_outputs -----------------------------------------------------------------------------


def test_select_outputs_in_request_order() -> None:
    req = v2.decode_request(
        _body(
            _inp(),
            outputs=[{"name": "proba", "parameters": {"binary_data": True}}, {"name": "predict"}],
        )
    )
    outputs = {"predict": np.array([1]), "proba": np.array([0.5])}
    selected, binary = v2.select_outputs(req, outputs)
    assert list(selected) == ["proba", "predict"]
    assert binary == {"proba"}


def test_select_unknown_output() -> None:
    req = v2.decode_request(_body(_inp(), outputs=[{"name": "score"}]))
    with pytest.raises(
        InvalidInputError,
        match=r"Output 'score' was requested but the model's "
        r"outputs are \['predict'\]\.",
    ):
        v2.select_outputs(req, {"predict": np.array([1])})


# -- encode_response ----------------------------------------------------------------------------


def test_json_response_shape_and_fields() -> None:
    body, length = v2.encode_response(
        "fraud",
        "3",
        "r-1",
        {"predict": np.array([0, 1]), "proba": np.array([[0.9, 0.1], [0.2, 0.8]], order="F")},
        parameters={"batch": 2},
    )
    assert length is None
    assert orjson.loads(body) == {
        "model_name": "fraud",
        "model_version": "3",
        "id": "r-1",
        "parameters": {"batch": 2},
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [2], "data": [0, 1]},
            {"name": "proba", "datatype": "FP64", "shape": [2, 2], "data": [0.9, 0.1, 0.2, 0.8]},
        ],
    }


def test_binary_response_layout() -> None:
    y = np.array([1.5, 2.5])
    body, length = v2.encode_response(
        "m", "1", None, {"y": y, "s": np.array(["ab"])}, binary={"y", "s"}
    )
    assert length is not None
    header = orjson.loads(body[:length])
    assert "id" not in header
    assert [o["parameters"] for o in header["outputs"]] == [
        {"binary_data_size": 16},
        {"binary_data_size": 6},
    ]
    assert body[length:] == y.tobytes() + struct.pack("<I", 2) + b"ab"


@pytest.mark.parametrize(
    ("value", "datatype", "data"),
    [
        (np.array(["a", None], dtype=object), "BYTES", ["a", None]),
        (np.array([b"x"], dtype=object), "BYTES", ["x"]),
        (np.array([1, 2], dtype=object), "INT64", [1, 2]),
        (np.array([1.5, None], dtype=object), "FP64", [1.5, None]),
        (np.array([np.nan, np.inf]), "FP64", [None, None]),
        (np.array(["2024-01-02"], dtype="datetime64[s]"), "BYTES", ["2024-01-02T00:00:00"]),
        (np.array([1, 2], dtype=">i4"), "INT32", [1, 2]),
        (np.float32(0.5), "FP32", [0.5]),
        ([True, False], "BOOL", [True, False]),
    ],
    ids=[
        "text-with-null",
        "bytes",
        "object-ints",
        "object-floats-null",
        "nan-inf-as-null",
        "dates",
        "big-endian",
        "numpy-scalar",
        "list",
    ],
)
def test_output_datatypes(value: Any, datatype: str, data: list[Any]) -> None:
    body, _ = v2.encode_response("m", "1", None, {"y": value})
    (out,) = orjson.loads(body)["outputs"]
    assert (out["datatype"], out["data"]) == (datatype, data)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.array([{"a": 1}, "x"], dtype=object), r"Output 'y' holds values of types \['dict', "),
        (np.array([1 + 2j]), r"Output 'y' has dtype complex128, which the Open Inference"),
    ],
    ids=["dicts", "complex"],
)
def test_outputs_the_protocol_cannot_carry(value: np.ndarray, message: str) -> None:
    with pytest.raises(PredictionError, match=message):
        v2.encode_response("m", "1", None, {"y": value})


def test_non_utf8_bytes_need_the_binary_extension() -> None:
    with pytest.raises(PredictionError, match=r"not UTF-8 text; use the binary tensor extension"):
        v2.encode_response("m", "1", None, {"y": np.array([b"\xff"], dtype=object)})
    body, length = v2.encode_response(
        "m", "1", None, {"y": np.array([b"\xff"], dtype=object)}, binary={"y"}
    )
    assert length is not None
    assert body[length:] == struct.pack("<I", 1) + b"\xff"


# -- metadata -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (ColumnSpec("age", "int64"), {"name": "age", "datatype": "INT64", "shape": [-1]}),
        (ColumnSpec("city", "string", True), {"name": "city", "datatype": "BYTES", "shape": [-1]}),
        (
            TensorSpec("x", "float32", (-1, 28, 28)),
            {"name": "x", "datatype": "FP32", "shape": [-1, 28, 28]},
        ),
    ],
    ids=["int-column", "text-column", "tensor"],
)
def test_tensor_metadata(spec: ColumnSpec | TensorSpec, expected: dict[str, Any]) -> None:
    assert v2.tensor_metadata(spec) == expected


def test_schema_metadata() -> None:
    schema = Schema("columns", columns=(ColumnSpec("a", "float64"), ColumnSpec("b", "bool")))
    assert [m["datatype"] for m in v2.schema_metadata(schema)] == ["FP64", "BOOL"]
    assert v2.schema_metadata(None) == []


def test_shape_count_uses_every_dimension() -> None:
    shape = (3, 0, 2)
    req = v2.decode_request(_body(_inp(shape=shape, data=[])))
    assert req.inputs[0].data.shape == shape
    assert math.prod(shape) == 0
