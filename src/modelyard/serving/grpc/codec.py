"""Open Inference Protocol tensors to and from the gRPC messages.

The gRPC twin of the JSON codec in :mod:`modelyard.protocol.v2`, and built on it: the same
datatypes, the same request model (:class:`~modelyard.protocol.v2.InferenceRequest`, so
``to_model_input`` turns tensors into the model's input exactly as for REST), the same
checks and messages. Only the wire differs:

- typed ``contents`` (``fp64_contents``, ``int64_contents``, ``bytes_contents``...), one
  repeated field per datatype family, read with one ``np.asarray`` call;
- ``raw_input_contents``: little-endian bytes, one entry per input, read with
  ``np.frombuffer`` without a copy (BYTES elements each carry a 4-byte length prefix).

Responses go out raw when the request came in raw (tritonclient does, and reads nothing else
for numeric outputs), typed otherwise; raw also when an output has no typed field (FP16).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from modelyard.core.signature import ColumnSpec, TensorSpec
from modelyard.errors import InvalidInputError
from modelyard.protocol import v2
from modelyard.serving.grpc._generated import open_inference_grpc_pb2 as pb

__all__ = ["decode_request", "encode_response", "tensor_metadata"]

# The typed field of InferTensorContents that carries each datatype. FP16 (and BF16) have
# none: they travel only as raw bytes.
_FIELD: dict[str, str] = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
# Datatypes narrower than the 32-bit field that carries them: values must be range-checked.
_NARROW = frozenset({"UINT8", "UINT16", "INT8", "INT16"})
_KNOWN = ", ".join(v2.DATATYPES)


# -- requests -----------------------------------------------------------------------------------


def decode_request(request: pb.ModelInferRequest) -> v2.InferenceRequest:
    """The request's tensors as numpy arrays, checked against their datatype and shape.

    Raises :class:`~modelyard.errors.InvalidInputError` naming the input at fault.
    """
    tensors = request.inputs
    if not tensors:
        raise InvalidInputError(
            "The request has no inputs; send at least one tensor (name, datatype, shape and "
            "contents or raw_input_contents)."
        )
    raw = request.raw_input_contents
    if raw and len(raw) != len(tensors):
        raise InvalidInputError(
            f"The request has {len(tensors)} inputs but {len(raw)} raw_input_contents entries; "
            "with raw contents every input needs exactly one entry, in input order."
        )
    inputs: list[v2.RequestInput] = []
    names: set[str] = set()
    for i, tensor in enumerate(tensors):
        inp = _decode_input(i, tensor, raw[i] if raw else None)
        if inp.name in names:
            raise InvalidInputError(f"Input {inp.name!r} appears twice in the request.")
        names.add(inp.name)
        inputs.append(inp)
    outputs = [v2.RequestedOutput(o.name) for o in request.outputs] or None
    # Request parameters are not decoded: nothing on the serving path reads them yet.
    return v2.InferenceRequest(request.id or None, {}, inputs, outputs)


def _decode_input(i: int, tensor: pb.ModelInferRequest.InferInputTensor,
                  raw: bytes | None) -> v2.RequestInput:
    name = tensor.name
    if not name:
        raise InvalidInputError(
            f"inputs[{i}] has no name; every input needs a name, datatype, shape and data."
        )
    datatype = tensor.datatype
    if datatype not in v2.DATATYPES:
        raise InvalidInputError(
            f"Input {name!r} has datatype {datatype!r}; expected one of {_KNOWN}."
        )
    shape = tuple(tensor.shape)
    if any(d < 0 for d in shape):
        raise InvalidInputError(
            f"Input {name!r} has shape {list(shape)}; expected non-negative integers such as "
            "[2, 3]."
        )
    count = math.prod(shape)
    if raw is None:
        arr = _from_contents(name, datatype, shape, count, tensor.contents)
    elif tensor.HasField("contents"):
        raise InvalidInputError(
            f"Input {name!r} has both contents and a raw_input_contents entry; send one."
        )
    else:
        arr = _from_raw(name, datatype, shape, count, raw)
    if arr.shape != shape:
        arr = arr.reshape(shape)
    return v2.RequestInput(name, datatype, shape, arr)


def _from_raw(name: str, datatype: str, shape: tuple[int, ...], count: int,
              raw: bytes) -> np.ndarray:
    if datatype == "BYTES":
        return v2.text_from_binary(name, list(shape), count, memoryview(raw))
    wire = v2.dtype_of(datatype).newbyteorder("<")
    if len(raw) != count * wire.itemsize:
        raise InvalidInputError(
            f"Input {name!r} has shape {list(shape)} ({count} values of {datatype}, "
            f"{count * wire.itemsize} bytes) but its raw_input_contents entry holds "
            f"{len(raw)} bytes."
        )
    arr = np.frombuffer(raw, dtype=wire)  # a read-only view: no copy
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    elif not arr.flags.aligned:
        arr = arr.copy()  # some runtimes (onnxruntime, torch) need aligned buffers
    return arr


def _from_contents(name: str, datatype: str, shape: tuple[int, ...], count: int,
                   contents: pb.InferTensorContents) -> np.ndarray:
    field = _FIELD.get(datatype)
    if field is None:
        raise InvalidInputError(
            f"Input {name!r} has datatype {datatype}, which has no typed contents field; "
            "send it in raw_input_contents."
        )
    values: Any = getattr(contents, field)
    if len(values) != count:
        raise InvalidInputError(
            f"Input {name!r} has shape {list(shape)} ({count} values) but {len(values)} values "
            f"arrived in contents.{field}."
        )
    if datatype == "BYTES":
        return v2.texts(list(values))
    arr = np.asarray(values)  # one C-level copy out of the message
    dtype = v2.dtype_of(datatype)
    if datatype in _NARROW and arr.size:
        info = np.iinfo(dtype)
        low, high = arr.min(), arr.max()
        if low < info.min or high > info.max:
            bad = low if low < info.min else high
            raise InvalidInputError(
                f"Input {name!r} has datatype {datatype} but holds {bad.item()!r}, outside its "
                f"range [{info.min}, {info.max}]."
            )
    return arr if arr.dtype == dtype else arr.astype(dtype)



# -- responses ----------------------------------------------------------------------------------


def encode_response(model_name: str, model_version: str, request_id: str,
                    outputs: Mapping[str, np.ndarray], *, raw: bool) -> pb.ModelInferResponse:
    """A ModelInferResponse with ``outputs``: raw bytes if ``raw``, else typed contents."""
    prepared = [(name, *v2.output_array(name, value)) for name, value in outputs.items()]
    # The spec allows raw outputs only all together; an output without a typed field forces it.
    raw = raw or any(datatype not in _FIELD for _, datatype, _ in prepared)
    response = pb.ModelInferResponse(model_name=model_name, model_version=model_version,
                                     id=request_id)
    for name, datatype, arr in prepared:
        tensor = response.outputs.add(name=name, datatype=datatype, shape=arr.shape)
        flat = arr.reshape(-1)
        if raw:
            response.raw_output_contents.append(_to_raw(datatype, flat))
        elif datatype == "BYTES":
            tensor.contents.bytes_contents.extend(_bytes_of(flat))
        else:
            getattr(tensor.contents, _FIELD[datatype]).extend(flat.tolist())
    return response


def _to_raw(datatype: str, flat: np.ndarray) -> bytes:
    if datatype == "BYTES":
        return v2.text_to_binary(flat)
    return flat.astype(flat.dtype.newbyteorder("<"), copy=False).tobytes()


def _bytes_of(flat: np.ndarray) -> list[bytes]:
    return [v if isinstance(v, bytes) else b"" if v is None else str(v).encode()
            for v in flat.tolist()]


# -- metadata -----------------------------------------------------------------------------------


def tensor_metadata(spec: ColumnSpec | TensorSpec) -> pb.ModelMetadataResponse.TensorMetadata:
    """One ``ModelMetadataResponse.TensorMetadata`` for a ColumnSpec or TensorSpec."""
    return pb.ModelMetadataResponse.TensorMetadata(**v2.tensor_metadata(spec))
