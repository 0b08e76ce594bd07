"""Wire codecs of the inference server: bytes in, numpy out, and back. Pure: no I/O, no web
framework, no pandas.

- :mod:`~modelyard.protocol.v2`: Open Inference Protocol v2 (KServe v2, Triton), with the
  binary tensor extension.
- :mod:`~modelyard.protocol.mlflow`: MLflow's ``/invocations``.
- :mod:`~modelyard.protocol.tfserving`: TF Serving / KServe v1 ``:predict``.
- :mod:`~modelyard.protocol.torchserve`: TorchServe ``/predictions``.

Each module's ``encode_predictions`` keeps its module's name (``mlflow.encode_predictions``,
``torchserve.encode_predictions``), as the two differ; every other public name is re-exported
here.
"""

from __future__ import annotations

from modelyard.protocol import mlflow, tfserving, torchserve, v2
from modelyard.protocol.mlflow import Invocations, decode_invocations, read_invocations
from modelyard.protocol.tfserving import decode_predict, encode_predict
from modelyard.protocol.torchserve import decode_predictions
from modelyard.protocol.v2 import (
    DATATYPES,
    InferenceRequest,
    RequestedOutput,
    RequestInput,
    datatype_of,
    decode_request,
    dtype_of,
    encode_response,
    schema_metadata,
    select_outputs,
    tensor_metadata,
    to_model_input,
)

__all__ = [
    "DATATYPES",
    "InferenceRequest",
    "Invocations",
    "RequestInput",
    "RequestedOutput",
    "datatype_of",
    "decode_invocations",
    "decode_predict",
    "decode_predictions",
    "decode_request",
    "dtype_of",
    "encode_predict",
    "encode_response",
    "mlflow",
    "read_invocations",
    "schema_metadata",
    "select_outputs",
    "tensor_metadata",
    "tfserving",
    "to_model_input",
    "torchserve",
    "v2",
]
