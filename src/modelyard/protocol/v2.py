"""Open Inference Protocol v2 (KServe v2, Triton): request and response codecs.

Pure functions from bytes to numpy and back, with the binary tensor extension
(``Inference-Header-Content-Length``). The HTTP and gRPC adapters call these; the data plane
never sees JSON. Every decode error is an :class:`~modelyard.errors.InvalidInputError` whose
message names the input, what was expected and what arrived.

>>> req = decode_request(b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2],'
...                      b' "data": [1, 2]}]}')
>>> to_model_input(req)
array([[1., 2.]])
>>> body, header_length = encode_response("m", "1", None, {"y": to_model_input(req).sum(1)})
>>> body[-68:], header_length
(b'"outputs":[{"name":"y","datatype":"FP64","shape":[1],"data":[3.0]}]}', None)
"""

from __future__ import annotations

import math
import struct
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelyard.core.signature import ColumnSpec, Schema, TensorSpec
from modelyard.core.tabular import Columns
from modelyard.errors import InvalidInputError, PredictionError
from modelyard.protocol._datatypes import (
    DATATYPES,
    DTYPES,
    KNOWN,
    WIRE,
    datatype_of,
    dtype_of,
    ragged,
    text_from_json,
    to_datatype,
)
from modelyard.protocol._json import describe, dumps, loads

__all__ = [
    "DATATYPES",
    "InferenceRequest",
    "RequestInput",
    "RequestedOutput",
    "datatype_of",
    "decode_request",
    "dtype_of",
    "encode_response",
    "output_array",
    "schema_metadata",
    "select_outputs",
    "tensor_metadata",
    "text_from_binary",
    "text_to_binary",
    "texts",
    "to_model_input",
]


_U32 = struct.Struct("<I")  # BYTES elements: a 4-byte little-endian length, then the bytes

# The protocol datatype of each native-order numeric dtype, for the answer's hot path.
_NATIVE_NUMERIC: dict[np.dtype[Any], str] = {
    np.dtype(t): datatype_of(np.dtype(t))
    for t in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
              "uint64", "float16", "float32", "float64")
}


@dataclass(slots=True)
class RequestInput:
    """One input tensor, its data already a numpy array of ``shape``."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RequestedOutput:
    """An output the client asked for, and whether it wants it as raw binary data."""

    name: str
    binary: bool = False


@dataclass(slots=True)
class InferenceRequest:
    """A decoded ``/infer`` request; ``outputs`` is None when the client asked for all."""

    id: str | None
    parameters: dict[str, Any]
    inputs: list[RequestInput]
    outputs: list[RequestedOutput] | None = None


# -- requests -----------------------------------------------------------------------------------


def decode_request(body: bytes, header_length: int | None = None) -> InferenceRequest:
    """Decode an inference request: JSON, or a JSON header plus raw tensors.

    ``header_length`` is the ``Inference-Header-Content-Length`` header: the JSON header is
    the first ``header_length`` bytes, and each input whose parameters carry
    ``binary_data_size`` takes that many bytes, in input order, from the rest. Binary inputs
    are read-only views on ``body`` (no copy) when aligned.
    """
    if header_length is None:
        header: bytes | memoryview = body
        binary: memoryview | None = None
    else:
        if not 0 <= header_length <= len(body):
            raise InvalidInputError(
                f"The Inference-Header-Content-Length header says the JSON header is "
                f"{header_length} bytes but the body has {len(body)}."
            )
        view = memoryview(body)
        header, binary = view[:header_length], view[header_length:]
    doc = loads(header)
    if not isinstance(doc, dict):
        raise InvalidInputError(
            f"The request body must be a JSON object with 'inputs'; got {describe(doc)}."
        )
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInputError(f"The request 'id' must be a string; got {describe(request_id)}.")
    parameters = doc.get("parameters")
    parameters = {} if parameters is None else _parameters(parameters, "The request")
    items = doc.get("inputs")
    if not isinstance(items, list) or not items:
        got = "none" if items is None else describe(items)
        raise InvalidInputError(
            f"The request must have 'inputs', a non-empty list of tensors "
            f"({{name, datatype, shape, data}}); got {got}."
        )
    inputs: list[RequestInput] = []
    append = inputs.append
    offset = 0
    for i, item in enumerate(items):
        inp, offset = _decode_input(i, item, binary, offset)
        append(inp)
    if len(inputs) > 1 and len({inp.name for inp in inputs}) != len(inputs):
        names = [inp.name for inp in inputs]
        dup = next(n for n in names if names.count(n) > 1)
        raise InvalidInputError(f"Input {dup!r} appears twice in the request.")
    if binary is not None and offset != len(binary):
        raise InvalidInputError(
            f"The request carries {len(binary)} bytes after the JSON header but its inputs "
            f"declare {offset} (the sum of their binary_data_size parameters)."
        )
    outputs = doc.get("outputs")
    if outputs is not None:
        outputs = _requested_outputs(outputs, parameters.get("binary_data_output") is True)
    return InferenceRequest(request_id, parameters, inputs, outputs)


def _parameters(value: object, owner: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError(f"{owner} 'parameters' must be an object; got {describe(value)}.")
    return value


def _decode_input(
    i: int, item: object, binary: memoryview | None, offset: int
) -> tuple[RequestInput, int]:
    # The hot path of every request, once per input: exact type checks, no f-strings or
    # helper calls unless something is wrong.
    if type(item) is not dict:
        raise InvalidInputError(
            f"inputs[{i}] must be an object with name, datatype, shape and data; "
            f"got {describe(item)}."
        )
    name = item.get("name")
    if type(name) is not str or not name:
        raise InvalidInputError(
            f"inputs[{i}] has no 'name'; every input needs a name, datatype, shape and data."
        )
    datatype = item.get("datatype")
    dtype = DTYPES.get(datatype) if type(datatype) is str else None
    if dtype is None or type(datatype) is not str:
        raise InvalidInputError(
            f"Input {name!r} has datatype {datatype!r}; expected one of {KNOWN}."
        )
    shape = item.get("shape")
    if type(shape) is not list:
        raise _bad_shape(name, shape)
    for d in shape:
        if type(d) is not int or d < 0:
            raise _bad_shape(name, shape)
    parameters = item.get("parameters")
    if parameters is None:
        parameters = {}
    elif type(parameters) is not dict:
        raise InvalidInputError(
            f"Input {name!r} has 'parameters' {describe(parameters)}; expected an object."
        )
    count = math.prod(shape)
    if parameters and "binary_data_size" in parameters:
        arr, offset = _read_binary(
            name, datatype, shape, count, parameters["binary_data_size"], item, binary, offset
        )
    elif parameters and "shared_memory_region" in parameters:
        raise InvalidInputError(
            f"Input {name!r} refers to shared memory, which this server does not offer; "
            "send the data in the request."
        )
    else:
        data = item.get("data")
        if type(data) is not list:
            got = "no 'data'" if data is None else f"'data' as {describe(data)}"
            raise InvalidInputError(
                f"Input {name!r} has {got}; expected its {count} values as a JSON list "
                "(or the binary_data_size parameter with binary data)."
            )
        if datatype == "BYTES":
            arr = text_from_json(name, data)
        else:
            try:
                arr = np.asarray(data)
            except (ValueError, TypeError):
                raise ragged(name) from None
            found = arr.dtype
            if found is not dtype and found != dtype:
                arr = to_datatype(name, datatype, dtype, arr, data)
        if arr.size != count:
            raise InvalidInputError(
                f"Input {name!r} has shape {shape} ({count} values) but {arr.size} values "
                "arrived in data."
            )
    dims = tuple(shape)
    if arr.shape != dims:
        arr = arr.reshape(dims)
    return RequestInput(name, datatype, dims, arr, parameters), offset


def _bad_shape(name: str, shape: object) -> InvalidInputError:
    return InvalidInputError(
        f"Input {name!r} has shape {shape!r}; expected a list of non-negative integers such "
        "as [2, 3]."
    )


# -- binary tensor extension: raw little-endian tensors after the JSON header -------------


def _read_binary(
    name: str,
    datatype: str,
    shape: list[int],
    count: int,
    size: object,
    item: dict[str, Any],
    binary: memoryview | None,
    offset: int,
) -> tuple[np.ndarray, int]:
    if type(size) is not int or size < 0:
        raise InvalidInputError(
            f"Input {name!r} has binary_data_size {size!r}; expected a byte count."
        )
    if "data" in item:
        raise InvalidInputError(
            f"Input {name!r} has both 'data' and the binary_data_size parameter; send one."
        )
    if binary is None:
        raise InvalidInputError(
            f"Input {name!r} has the binary_data_size parameter but the request has no "
            "Inference-Header-Content-Length header, so it carries no binary data."
        )
    end = offset + size
    if end > len(binary):
        raise InvalidInputError(
            f"Input {name!r} declares binary_data_size {size} but only {len(binary) - offset} "
            "bytes of binary data remain after the JSON header."
        )
    chunk = binary[offset:end]
    if datatype == "BYTES":
        return text_from_binary(name, shape, count, chunk), end
    wire = WIRE[datatype]
    if size != count * wire.itemsize:
        raise InvalidInputError(
            f"Input {name!r} has shape {shape} ({count} values of {datatype}, "
            f"{count * wire.itemsize} bytes) but binary_data_size is {size}."
        )
    arr = np.frombuffer(chunk, dtype=wire)
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    elif not arr.flags.aligned:
        arr = arr.copy()  # some runtimes (onnxruntime, torch) need aligned buffers
    return arr, end


def text_from_binary(name: str, shape: list[int], count: int, chunk: memoryview) -> np.ndarray:
    items: list[bytes] = []
    pos, end = 0, len(chunk)
    unpack = _U32.unpack_from
    while pos < end:
        if pos + 4 > end:
            raise InvalidInputError(
                f"Input {name!r} has BYTES binary data that ends inside a 4-byte length prefix."
            )
        (length,) = unpack(chunk, pos)
        pos += 4
        if pos + length > end:
            raise InvalidInputError(
                f"Input {name!r} has a BYTES element of {length} bytes but only {end - pos} "
                "bytes remain in its binary data."
            )
        items.append(bytes(chunk[pos : pos + length]))
        pos += length
    if len(items) != count:
        raise InvalidInputError(
            f"Input {name!r} has shape {shape} ({count} values) but {len(items)} values "
            "arrived in its binary data."
        )
    return texts(items)


def texts(items: list[bytes]) -> np.ndarray:
    """BYTES elements as an object array: text (str) when they are all UTF-8, else bytes."""
    try:
        values: list[str] | list[bytes] = [b.decode() for b in items]
    except UnicodeDecodeError:
        values = items  # not text: keep the bytes
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


# -- requested outputs --------------------------------------------------------------------------


def _requested_outputs(value: object, default_binary: bool) -> list[RequestedOutput] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidInputError(
            f"The request 'outputs' must be a list of {{name}} objects; got {describe(value)}."
        )
    outputs = []
    for j, item in enumerate(value):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"outputs[{j}] must be an object with a 'name'.")
        params = _parameters(item.get("parameters"), f"Output {name!r}:")
        binary = params.get("binary_data", default_binary)
        if not isinstance(binary, bool):
            raise InvalidInputError(
                f"Output {name!r} has binary_data {binary!r}; expected true or false."
            )
        outputs.append(RequestedOutput(name, binary))
    return outputs


def select_outputs(
    request: InferenceRequest, outputs: Mapping[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], set[str]]:
    """The outputs the request asked for, in its order, and the names to send as binary.

    Without ``outputs`` in the request every output is returned, all binary if the request
    parameter ``binary_data_output`` is true (what tritonclient sends by default).
    """
    if request.outputs is None:
        binary = set(outputs) if request.parameters.get("binary_data_output") is True else set()
        return dict(outputs), binary
    selected: dict[str, np.ndarray] = {}
    binary = set()
    for out in request.outputs:
        if out.name not in outputs:
            raise InvalidInputError(
                f"Output {out.name!r} was requested but the model's outputs are {sorted(outputs)}."
            )
        selected[out.name] = outputs[out.name]
        if out.binary:
            binary.add(out.name)
    return selected, binary


# -- model input --------------------------------------------------------------------------------


def to_model_input(
    request: InferenceRequest, columns: Collection[str] = ()
) -> Columns | np.ndarray:
    """The request's tensors in the form a runtime takes.

    One input is its array (an ``[N, F]`` matrix, or ``[N]`` as is), unless its name is one of
    ``columns`` (the model's column names) and its shape is ``[N]`` or ``[N, 1]``: then it is
    a one-column table. Several inputs are a table with one column per input: ``[N]`` and
    ``[N, 1]`` inputs become 1-D columns; other shapes are kept, for models taking several
    tensors. All inputs must have the same first dimension.
    """
    inputs = request.inputs
    if len(inputs) == 1:
        only = inputs[0]
        if only.name in columns and _is_column(only.data):
            return {only.name: only.data.reshape(-1)}
        return only.data
    n = None
    for inp in inputs:
        if not inp.shape:
            raise InvalidInputError(
                f"Input {inp.name!r} is a scalar (shape []); when a request has several inputs "
                "each is a column of shape [N] or [N, 1]."
            )
        if n is None:
            n = inp.shape[0]
        elif inp.shape[0] != n:
            detail = ", ".join(f"{i.name}={i.shape[0] if i.shape else 1}" for i in inputs)
            raise InvalidInputError(
                f"The inputs have different lengths ({detail}); each input of a table is one "
                "column of N rows."
            )
    cols: Columns = {}
    for inp in inputs:
        data = inp.data
        if data.ndim == 2 and data.shape[1] == 1:
            data = data.reshape(-1)
        cols[inp.name] = data
    return cols


def _is_column(arr: np.ndarray) -> bool:
    return arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] == 1)


# -- responses ----------------------------------------------------------------------------------


def encode_response(
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Mapping[str, np.ndarray],
    *,
    binary: Collection[str] = frozenset(),
    parameters: dict[str, Any] | None = None,
) -> tuple[bytes, int | None]:
    """Encode an inference response; returns the body and the JSON header's length.

    Outputs named in ``binary`` go as raw little-endian bytes after the JSON header (BYTES
    elements with a 4-byte length prefix), and the header length is returned for the
    ``Inference-Header-Content-Length`` response header; otherwise it is None and the body is
    JSON, ``data`` flat in row-major order.
    """
    docs: list[dict[str, Any]] = []
    buffers: list[bytes | memoryview] = []
    any_binary = False
    for name, value in outputs.items():
        datatype, arr = output_array(name, value)
        flat = arr.reshape(-1)
        doc: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(arr.shape)}
        if name in binary:
            any_binary = True
            raw = text_to_binary(flat) if datatype == "BYTES" else _numbers_to_binary(flat)
            doc["parameters"] = {"binary_data_size": len(raw)}
            buffers.append(raw)
        else:
            doc["data"] = flat
        docs.append(doc)
    response: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        response["id"] = request_id
    if parameters:
        response["parameters"] = parameters
    response["outputs"] = docs
    header = dumps(response)
    if not any_binary:
        return header, None
    return b"".join([header, *buffers]), len(header)


def output_array(name: str, value: object) -> tuple[str, np.ndarray]:
    arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    datatype = _NATIVE_NUMERIC.get(arr.dtype)
    if datatype is not None:  # what models return: a native-order number
        return datatype, arr
    kind = arr.dtype.kind
    if kind in "biuf":
        datatype = datatype_of(arr.dtype)
        if datatype == "BYTES":  # float128, complex... have no protocol datatype
            raise PredictionError(
                f"Output {name!r} has dtype {arr.dtype.name}, which the Open Inference "
                f"Protocol cannot carry; return one of {KNOWN}."
            )
        if not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        return datatype, arr
    if kind in "US":
        return "BYTES", arr
    if kind in "mM":
        return "BYTES", arr.astype(str)  # ISO 8601, the same in JSON and binary
    if kind == "O":
        return _object_output(name, arr)
    raise PredictionError(
        f"Output {name!r} has dtype {arr.dtype.name}, which the Open Inference Protocol "
        f"cannot carry; return one of {KNOWN}."
    )


def _object_output(name: str, arr: np.ndarray) -> tuple[str, np.ndarray]:
    leaves = arr.ravel().tolist()
    if all(isinstance(v, str | bytes) or v is None for v in leaves):
        return "BYTES", arr
    if all(isinstance(v, int | float) or v is None for v in leaves):
        numbers = np.array(leaves, dtype=np.float64 if None in leaves else None)
        if numbers.dtype.kind in "biuf":
            return datatype_of(numbers.dtype), numbers.reshape(arr.shape)
    kinds = sorted({type(v).__name__ for v in leaves})
    raise PredictionError(
        f"Output {name!r} holds values of types {kinds}; the Open Inference Protocol carries "
        "numbers or text, one kind per output."
    )


def _numbers_to_binary(flat: np.ndarray) -> memoryview:
    wire = flat.dtype.newbyteorder("<")
    if flat.dtype != wire:
        flat = flat.astype(wire)
    return flat.data.cast("B")  # joined into the body without an extra copy


def text_to_binary(flat: np.ndarray) -> bytes:
    parts: list[bytes] = []
    pack = _U32.pack
    for v in flat.tolist():
        raw = v if isinstance(v, bytes) else b"" if v is None else str(v).encode()
        parts.append(pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


# -- metadata -----------------------------------------------------------------------------------


def tensor_metadata(spec: ColumnSpec | TensorSpec) -> dict[str, Any]:
    """Model-metadata entry for one column or tensor; ``-1`` marks a variable dimension.

    >>> tensor_metadata(ColumnSpec("age", "int64"))
    {'name': 'age', 'datatype': 'INT64', 'shape': [-1]}
    """
    if isinstance(spec, ColumnSpec):
        return {"name": spec.name, "datatype": datatype_of(spec.dtype), "shape": [-1]}
    return {"name": spec.name, "datatype": datatype_of(spec.dtype), "shape": list(spec.shape)}


def schema_metadata(schema: Schema | None) -> list[dict[str, Any]]:
    """Model-metadata entries (``inputs`` or ``outputs``) for a whole schema."""
    if schema is None:
        return []
    specs = schema.columns if schema.kind == "columns" else schema.tensors
    return [tensor_metadata(s) for s in specs]
