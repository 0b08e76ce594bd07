"""The protocol package: its public names, its docstring examples, and no heavy imports."""

from __future__ import annotations

import doctest
import subprocess
import sys
from types import ModuleType

import pytest

from modelyard import protocol
from modelyard.protocol import _datatypes, mlflow, tfserving, torchserve, v2


def test_public_names() -> None:
    assert protocol.__all__ == [
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
    for name in protocol.__all__:
        assert hasattr(protocol, name), name


@pytest.mark.parametrize(
    "module",
    [v2, _datatypes, mlflow, tfserving, torchserve],
    ids=lambda m: m.__name__.rsplit(".", 1)[-1],
)
def test_docstring_examples_run(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


def test_importing_the_codecs_imports_no_pandas_or_web_framework() -> None:
    code = (
        "import sys, modelyard.protocol; "
        "heavy = {'pandas', 'pyarrow', 'starlette', 'fastapi', 'grpc'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
