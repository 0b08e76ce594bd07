"""The gRPC adapter against the real tritonclient.grpc client and a real server.

Each test gets its own server (pool, data plane, grpc.aio server) running in a thread with its
own event loop; the models are registered once per module in a throwaway registry. The typed
``contents`` path, which tritonclient never uses, is driven through our own generated stub.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as grpcclient
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LogisticRegression
from tritonclient.utils import InferenceServerException

from modelyard import Client
from modelyard.errors import ConfigurationError
from modelyard.serving.dataplane import DataPlane
from modelyard.serving.grpc import GrpcServer, start_grpc_server
from modelyard.serving.grpc._generated import open_inference_grpc_pb2 as pb
from modelyard.serving.grpc._generated import open_inference_grpc_pb2_grpc as pb_grpc
from modelyard.serving.metrics import ServingMetrics
from modelyard.serving.pool import DeploymentSpec, ModelPool
from modelyard.settings import Settings

pytestmark = pytest.mark.timeout(120)

TIMEOUT = 15.0  # seconds: every client call and every wait on the server thread


# -- the registry and the server ----------------------------------------------------------------


@dataclass
class Registry:
    settings: Settings
    client: Client
    cancer_X: pd.DataFrame  # standardised breast_cancer features: a column signature
    iris_X: np.ndarray  # iris features as one array: a tensor signature


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    home = tmp_path_factory.mktemp("grpc") / "home"
    settings = Settings(home=home, database_url=f"sqlite:///{home}/registry.db",
                        artifact_uri=str(home / "artifacts"), user="tester")
    home.mkdir(parents=True)
    cancer = load_breast_cancer(as_frame=True)
    X = (cancer.data - cancer.data.mean()) / cancer.data.std()  # converges without warnings
    y = cancer.target.to_numpy()
    iris = load_iris()
    iris_X = np.asarray(iris.data, dtype=np.float64)
    species = np.asarray(iris.target_names)[iris.target]  # text labels: a BYTES output
    with Client(settings) as client:
        client.register(LogisticRegression(max_iter=1000).fit(X, y), "cancer", data=X,
                        alias="production")
        client.register(LogisticRegression(max_iter=1000).fit(iris_X, iris.target), "iris",
                        data=iris_X)
        client.register(LogisticRegression(max_iter=1000).fit(iris_X, species), "species",
                        data=iris_X)
        yield Registry(settings, client, X, iris_X)


@dataclass
class Served:
    url: str
    plane: DataPlane
    registry: Registry

    def client(self) -> grpcclient.InferenceServerClient:
        return grpcclient.InferenceServerClient(self.url)

    def stub(self) -> tuple[grpc.Channel, pb_grpc.GRPCInferenceServiceStub]:
        channel = grpc.insecure_channel(self.url)
        return channel, pb_grpc.GRPCInferenceServiceStub(channel)


@contextlib.contextmanager
def _serving(registry: Registry, run: Callable[[Any], None] = asyncio.run) -> Iterator[Served]:
    """Start pool + data plane + gRPC server in a thread; stop them all afterwards."""
    state: dict[str, Any] = {}
    ready = threading.Event()

    async def main() -> None:
        settings = registry.settings.serving
        metrics = ServingMetrics()
        pool = ModelPool(registry.client, settings, metrics, [
            DeploymentSpec.from_ref("models:/cancer@production"),
            DeploymentSpec.from_ref("models:/iris/latest"),
            DeploymentSpec.from_ref("models:/species/latest"),
        ])
        plane = DataPlane(pool, settings, metrics)
        try:
            await pool.start()
            server = await start_grpc_server(plane, "127.0.0.1", 0)
        except Exception as exc:  # reported by the test thread, not lost in this one
            state["error"] = exc
            await pool.stop(timeout=5)
            return
        finally:
            stop = asyncio.Event()
            state.update(plane=plane, stop=stop, loop=asyncio.get_running_loop())
            ready.set()
        state["server"] = server
        try:
            await stop.wait()
        finally:
            await server.stop(grace=1)
            await pool.stop(timeout=5)

    thread = threading.Thread(target=run, args=(main(),), name="grpc-server", daemon=True)
    thread.start()
    assert ready.wait(TIMEOUT), "the server did not start"
    try:
        if "error" in state:
            raise state["error"]
        started: GrpcServer = state["server"]
        yield Served(started.address, state["plane"], registry)
    finally:
        with contextlib.suppress(RuntimeError):  # the loop is closed if main() failed
            state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(TIMEOUT)
        assert not thread.is_alive(), "the server did not stop"


@pytest.fixture
def served(registry: Registry) -> Iterator[Served]:
    with _serving(registry) as served:
        yield served


@pytest.fixture
def triton(served: Served) -> Iterator[grpcclient.InferenceServerClient]:
    with served.client() as client:
        yield client


def _tensor(name: str, value: np.ndarray) -> grpcclient.InferInput:
    datatype = "BYTES" if value.dtype.kind in "OUS" else {
        "f8": "FP64", "f4": "FP32", "f2": "FP16", "i8": "INT64"}[value.dtype.str[1:]]
    inp = grpcclient.InferInput(name, list(value.shape), datatype)
    inp.set_data_from_numpy(value)
    return inp


def _error(call: Callable[[], Any]) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        call()
    return info.value


# -- health and metadata --------------------------------------------------------------------------


def test_health(triton: grpcclient.InferenceServerClient) -> None:
    assert triton.is_server_live(client_timeout=TIMEOUT)
    assert triton.is_server_ready(client_timeout=TIMEOUT)


def test_model_ready_known_version_and_unknown(triton: grpcclient.InferenceServerClient) -> None:
    assert triton.is_model_ready("cancer", client_timeout=TIMEOUT)
    assert triton.is_model_ready("cancer", "1", client_timeout=TIMEOUT)
    err = _error(lambda: triton.is_model_ready("nope", client_timeout=TIMEOUT))
    assert err.status() == "StatusCode.NOT_FOUND"
    assert "does not serve a model named 'nope'" in err.message()
    assert "cancer" in err.message()  # says which models it has
    err = _error(lambda: triton.is_model_ready("cancer", "x1", client_timeout=TIMEOUT))
    assert err.status() == "StatusCode.INVALID_ARGUMENT"
    assert err.message() == "The model version must be a positive integer. Got 'x1'."


def test_server_metadata(triton: grpcclient.InferenceServerClient) -> None:
    meta = triton.get_server_metadata(as_json=True, client_timeout=TIMEOUT)
    assert meta["name"] == "modelyard"
    assert meta["version"] == "0"
    assert set(meta["extensions"]) == {"binary_tensor_data", "model_repository"}


def test_model_metadata_columns(triton: grpcclient.InferenceServerClient,
                                registry: Registry) -> None:
    meta = triton.get_model_metadata("cancer", client_timeout=TIMEOUT)
    assert meta.name == "cancer"
    assert list(meta.versions) == ["1"]
    assert meta.platform == "sklearn"
    assert [i.name for i in meta.inputs] == list(registry.cancer_X.columns)
    assert {(i.datatype, tuple(i.shape)) for i in meta.inputs} == {("FP64", (-1,))}
    outputs = {o.name: (o.datatype, list(o.shape)) for o in meta.outputs}
    assert outputs == {"predict": ("INT64", [-1]), "predict_proba": ("FP64", [-1, 2])}


def test_model_metadata_tensor(triton: grpcclient.InferenceServerClient) -> None:
    meta = triton.get_model_metadata("iris", "1", as_json=True, client_timeout=TIMEOUT)
    # MessageToJson writes int64 as strings
    assert meta["inputs"] == [{"name": "input", "datatype": "FP64", "shape": ["-1", "4"]}]
    species = triton.get_model_metadata("species", client_timeout=TIMEOUT)
    assert (species.outputs[0].name, species.outputs[0].datatype) == ("predict", "BYTES")


def test_model_metadata_unknown(triton: grpcclient.InferenceServerClient) -> None:
    err = _error(lambda: triton.get_model_metadata("nope", client_timeout=TIMEOUT))
    assert err.status() == "StatusCode.NOT_FOUND"


# -- inference through tritonclient (raw contents) -------------------------------------------------


@pytest.fixture
def expected(registry: Registry) -> dict[str, np.ndarray]:
    model = registry.client.load("models:/cancer@production")
    rows = registry.cancer_X.iloc[:7]
    return {"predict": np.asarray(model.predict(rows)),
            "predict_proba": np.asarray(model.predict_proba(rows))}


def test_infer_one_tensor(triton: grpcclient.InferenceServerClient, registry: Registry,
                          expected: dict[str, np.ndarray]) -> None:
    rows = registry.cancer_X.iloc[:7].to_numpy()
    result = triton.infer("cancer", [_tensor("input", rows)], request_id="req-1",
                          client_timeout=TIMEOUT)
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == ("cancer", "1", "req-1")
    assert len(response.raw_output_contents) == 2  # raw in, raw out
    predict = result.as_numpy("predict")
    assert predict.dtype == np.int64
    np.testing.assert_array_equal(predict, expected["predict"])
    np.testing.assert_allclose(result.as_numpy("predict_proba"), expected["predict_proba"],
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("column_shape", [(7,), (7, 1)], ids=["N", "N-by-1"])
def test_infer_one_input_per_column(triton: grpcclient.InferenceServerClient,
                                    registry: Registry, expected: dict[str, np.ndarray],
                                    column_shape: tuple[int, ...]) -> None:
    rows = registry.cancer_X.iloc[:7]
    inputs = [_tensor(str(c), rows[c].to_numpy().reshape(column_shape)) for c in rows.columns]
    assert len(inputs) == 30
    result = triton.infer("cancer", inputs, client_timeout=TIMEOUT)
    np.testing.assert_array_equal(result.as_numpy("predict"), expected["predict"])
    np.testing.assert_allclose(result.as_numpy("predict_proba"), expected["predict_proba"],
                               rtol=0, atol=1e-12)


def test_infer_requested_output_and_version(triton: grpcclient.InferenceServerClient,
                                            registry: Registry,
                                            expected: dict[str, np.ndarray]) -> None:
    rows = registry.cancer_X.iloc[:7].to_numpy().astype(np.float32)  # FP32: a safe cast
    result = triton.infer("cancer", [_tensor("input", rows)], model_version="1",
                          outputs=[grpcclient.InferRequestedOutput("predict_proba")],
                          client_timeout=TIMEOUT)
    assert [o.name for o in result.get_response().outputs] == ["predict_proba"]
    assert result.as_numpy("predict") is None
    np.testing.assert_allclose(result.as_numpy("predict_proba"), expected["predict_proba"],
                               atol=1e-5)


def test_infer_tensor_model(triton: grpcclient.InferenceServerClient,
                            registry: Registry) -> None:
    rows = registry.iris_X[::30]
    model = registry.client.load("models:/iris/latest")
    result = triton.infer("iris", [_tensor("input", rows)], client_timeout=TIMEOUT)
    np.testing.assert_array_equal(result.as_numpy("predict"), model.predict(rows))
    assert result.as_numpy("predict_proba").shape == (5, 3)


def test_infer_text_output(triton: grpcclient.InferenceServerClient,
                           registry: Registry) -> None:
    rows = registry.iris_X[::50]
    result = triton.infer("species", [_tensor("input", rows)],
                          outputs=[grpcclient.InferRequestedOutput("predict")],
                          client_timeout=TIMEOUT)
    assert result.get_response().outputs[0].datatype == "BYTES"
    assert result.as_numpy("predict").tolist() == [b"setosa", b"versicolor", b"virginica"]


# -- inference through our own stub (typed contents) ----------------------------------------------


def _typed_request(model: str, rows: np.ndarray, **fields: Any) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model, **fields)
    tensor = request.inputs.add(name="input", datatype="FP64", shape=rows.shape)
    tensor.contents.fp64_contents.extend(rows.ravel().tolist())
    return request


def test_infer_typed_contents(served: Served, expected: dict[str, np.ndarray]) -> None:
    rows = served.registry.cancer_X.iloc[:7].to_numpy()
    channel, stub = served.stub()
    with channel:
        response = stub.ModelInfer(_typed_request("cancer", rows, id="t-1"), timeout=TIMEOUT)
        text = stub.ModelInfer(_typed_request("species", served.registry.iris_X[:1]),
                               timeout=TIMEOUT)
    assert response.id == "t-1"
    assert not response.raw_output_contents  # typed in, typed out
    predict, proba = response.outputs
    assert (predict.name, predict.datatype, list(predict.shape)) == ("predict", "INT64", [7])
    assert list(predict.contents.int64_contents) == expected["predict"].tolist()
    assert (proba.datatype, list(proba.shape)) == ("FP64", [7, 2])
    np.testing.assert_allclose(np.asarray(proba.contents.fp64_contents).reshape(7, 2),
                               expected["predict_proba"], rtol=0, atol=1e-12)
    assert list(text.outputs[0].contents.bytes_contents) == [b"setosa"]


def test_infer_typed_columns(served: Served, expected: dict[str, np.ndarray]) -> None:
    rows = served.registry.cancer_X.iloc[:7]
    request = pb.ModelInferRequest(model_name="cancer")
    for column in rows.columns:
        tensor = request.inputs.add(name=str(column), datatype="FP64", shape=[7])
        tensor.contents.fp64_contents.extend(rows[column].tolist())
    channel, stub = served.stub()
    with channel:
        response = stub.ModelInfer(request, timeout=TIMEOUT)
    assert list(response.outputs[0].contents.int64_contents) == expected["predict"].tolist()


@pytest.mark.parametrize(("datatype", "field", "dtype"), [
    ("FP32", "fp32_contents", np.float32),
    ("INT64", "int64_contents", np.int64),
    ("INT32", "int_contents", np.int32),
    ("INT16", "int_contents", np.int16),
    ("UINT8", "uint_contents", np.uint8),
    ("UINT64", "uint64_contents", np.uint64),
], ids=["FP32", "INT64", "INT32", "INT16", "UINT8", "UINT64"])
def test_infer_typed_datatypes(served: Served, datatype: str, field: str,
                               dtype: type[np.generic]) -> None:
    rows = np.round(served.registry.iris_X[::10] * 10).astype(dtype)  # whole numbers
    request = pb.ModelInferRequest(model_name="iris")
    tensor = request.inputs.add(name="input", datatype=datatype, shape=rows.shape)
    getattr(tensor.contents, field).extend(rows.ravel().tolist())
    channel, stub = served.stub()
    with channel:
        response = stub.ModelInfer(request, timeout=TIMEOUT)
    model = served.registry.client.load("models:/iris/latest")
    assert list(response.outputs[0].contents.int64_contents) == model.predict(
        rows.astype(np.float64)).tolist()


def test_infer_fp16_raw(triton: grpcclient.InferenceServerClient, registry: Registry) -> None:
    rows = registry.iris_X[::30].astype(np.float16)  # FP16 exists only as raw bytes
    model = registry.client.load("models:/iris/latest")
    result = triton.infer("iris", [_tensor("input", rows)], client_timeout=TIMEOUT)
    np.testing.assert_array_equal(result.as_numpy("predict"),
                                  model.predict(rows.astype(np.float64)))


def test_request_id_from_metadata(served: Served, registry: Registry) -> None:
    rows = registry.iris_X[:1]
    request = _typed_request("iris", rows)
    channel, stub = served.stub()
    with channel:
        response, call = stub.ModelInfer.with_call(
            request, metadata=(("x-request-id", "m-1"),), timeout=TIMEOUT)
        request.inputs[0].shape[:] = [1, 2, 2]
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(request, metadata=(("x-request-id", "m-2"),), timeout=TIMEOUT)
    assert response.id == ""  # only an id sent in the request is echoed in the response
    assert ("x-request-id", "m-1") in tuple(call.trailing_metadata())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ("x-request-id", "m-2") in tuple(info.value.trailing_metadata())


def test_messages_match_tritonclient() -> None:
    """The wire format: every message and method field for field as tritonclient's."""
    from google.protobuf import descriptor_pb2
    from tritonclient.grpc import service_pb2 as triton

    def proto(descriptor: Any) -> descriptor_pb2.DescriptorProto:
        out = descriptor_pb2.DescriptorProto()
        descriptor.CopyToProto(out)
        return out

    ours = pb.DESCRIPTOR.message_types_by_name
    assert len(ours) == 21
    for name, descriptor in ours.items():
        assert proto(descriptor) == proto(triton.DESCRIPTOR.message_types_by_name[name]), name
    theirs = triton.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods_by_name
    methods = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods
    assert len(methods) == 9
    for method in methods:
        other = theirs[method.name]
        assert (method.full_name, method.input_type.full_name, method.output_type.full_name) \
            == (other.full_name, other.input_type.full_name, other.output_type.full_name)


# -- errors ----------------------------------------------------------------------------------------


def test_text_for_a_numeric_model_is_invalid(triton: grpcclient.InferenceServerClient,
                                             served: Served) -> None:
    text = np.array([["abc"] * 30], dtype=object)
    err = _error(lambda: triton.infer("cancer", [_tensor("input", text)],
                                      client_timeout=TIMEOUT))
    assert err.status() == "StatusCode.INVALID_ARGUMENT"
    assert "must hold float64 numbers. Got text such as 'abc'" in err.message()
    # the same through typed bytes_contents
    channel, stub = served.stub()
    request = _typed("BYTES", "bytes_contents", [b"abc"] * 30)
    with channel, pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request, timeout=TIMEOUT)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == err.message()


@pytest.mark.parametrize(("model", "shape", "message"), [
    ("cancer", (1, 29), "or a 2-D array with 30 columns. Got an array of shape (1, 29)"),
    ("iris", (2, 5), "Tensor 'input' must have shape [N, 4]. Got [2, 5] instead."),
], ids=["columns", "tensor"])
def test_wrong_shape_is_invalid(triton: grpcclient.InferenceServerClient, model: str,
                                shape: tuple[int, int], message: str) -> None:
    err = _error(lambda: triton.infer(model, [_tensor("input", np.zeros(shape))],
                                      client_timeout=TIMEOUT))
    assert err.status() == "StatusCode.INVALID_ARGUMENT"
    assert message in err.message()


@pytest.mark.parametrize(("model", "version", "output", "status", "message"), [
    ("nope", "", None, "NOT_FOUND", "This server does not serve a model named 'nope'"),
    ("cancer", "9", None, "NOT_FOUND", "9"),
    ("cancer", "0", None, "INVALID_ARGUMENT",
     "The model version must be a positive integer. Got '0'."),
    ("cancer", "", "nope", "INVALID_ARGUMENT", "has no output(s) ['nope']"),
], ids=["unknown-model", "unknown-version", "bad-version", "unknown-output"])
def test_unknown_names(triton: grpcclient.InferenceServerClient, registry: Registry,
                       model: str, version: str, output: str | None, status: str,
                       message: str) -> None:
    rows = registry.cancer_X.iloc[:1].to_numpy()
    outputs = [grpcclient.InferRequestedOutput(output)] if output else None
    err = _error(lambda: triton.infer(model, [_tensor("input", rows)], model_version=version,
                                      outputs=outputs, client_timeout=TIMEOUT))
    assert err.status() == f"StatusCode.{status}"
    assert message in err.message()


def _raw(name: str, datatype: str, shape: list[int], data: bytes) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="cancer")
    request.inputs.add(name=name, datatype=datatype, shape=shape)
    request.raw_input_contents.append(data)
    return request


def _two_columns(first: int, second: int) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="cancer")
    for name, n in (("a", first), ("b", second)):
        request.inputs.add(name=name, datatype="FP64", shape=[n]).contents.fp64_contents.extend(
            [0.0] * n)
    return request


def _typed(datatype: str, field: str, values: list[Any]) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="cancer")
    tensor = request.inputs.add(name="x", datatype=datatype, shape=[1, len(values)])
    getattr(tensor.contents, field).extend(values)
    return request


def _mixed() -> pb.ModelInferRequest:
    request = _raw("x", "FP64", [1], bytes(8))
    request.inputs[0].contents.fp64_contents.append(1.0)
    return request


@pytest.mark.parametrize(("request_", "message"), [
    (pb.ModelInferRequest(model_name="cancer"), "The request has no inputs"),
    (_raw("x", "FP99", [1, 30], bytes(240)),
     "Input 'x' has datatype 'FP99'; expected one of BOOL, "),
    (_raw("x", "FP64", [1, 30], bytes(232)),
     "Input 'x' has shape [1, 30] (30 values of FP64, 240 bytes) but its raw_input_contents "
     "entry holds 232 bytes."),
    (_raw("x", "BYTES", [2], b"\x03\x00\x00\x00abc"),
     "Input 'x' has shape [2] (2 values) but 1 values arrived in its binary data."),
    (_raw("x", "FP64", [-1, 30], b""), "Input 'x' has shape [-1, 30]; expected non-negative"),
    (_raw("", "FP64", [1], bytes(8)), "inputs[0] has no name"),
    (_mixed(), "Input 'x' has both contents and a raw_input_contents entry"),
    (_typed("FP64", "fp32_contents", [1.0, 2.0]),  # values in the wrong field
     "Input 'x' has shape [1, 2] (2 values) but 0 values arrived in contents.fp64_contents."),
    (_typed("FP16", "fp32_contents", [1.0]),
     "Input 'x' has datatype FP16, which has no typed contents field"),
    (_typed("INT8", "int_contents", [1, 300]),
     "Input 'x' has datatype INT8 but holds 300, outside its range [-128, 127]."),
    (_two_columns(2, 3), "The inputs have different lengths (a=2, b=3)"),
], ids=["no-inputs", "unknown-datatype", "raw-size", "raw-bytes-count", "negative-dim",
        "no-name", "raw-and-typed", "typed-count", "fp16-typed", "int8-range",
        "unequal-columns"])
def test_malformed_requests_are_invalid(served: Served, request_: pb.ModelInferRequest,
                                        message: str) -> None:
    channel, stub = served.stub()
    with channel, pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request_, timeout=TIMEOUT)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in info.value.details()


def test_raw_count_must_match_inputs(served: Served) -> None:
    request = _raw("x", "FP64", [1], bytes(8))
    request.inputs.add(name="y", datatype="FP64", shape=[1])
    channel, stub = served.stub()
    with channel, pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request, timeout=TIMEOUT)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == (
        "The request has 2 inputs but 1 raw_input_contents entries; with raw contents every "
        "input needs exactly one entry, in input order.")


def test_unimplemented_triton_calls(triton: grpcclient.InferenceServerClient) -> None:
    err = _error(lambda: triton.get_model_config("cancer", client_timeout=TIMEOUT))
    assert err.status() == "StatusCode.UNIMPLEMENTED"


# -- repository extension --------------------------------------------------------------------------


def test_repository_index(triton: grpcclient.InferenceServerClient) -> None:
    index = triton.get_model_repository_index(client_timeout=TIMEOUT)
    assert [(m.name, m.version, m.state) for m in index.models] == [
        ("cancer", "1", "READY"), ("iris", "1", "READY"), ("species", "1", "READY")]


def test_repository_unload_and_load(triton: grpcclient.InferenceServerClient,
                                    registry: Registry) -> None:
    rows = registry.iris_X[:2]
    triton.unload_model("iris", client_timeout=TIMEOUT)
    err = _error(lambda: triton.is_model_ready("iris", client_timeout=TIMEOUT))
    assert err.status() == "StatusCode.NOT_FOUND"
    err = _error(lambda: triton.infer("iris", [_tensor("input", rows)],
                                      client_timeout=TIMEOUT))
    assert err.status() == "StatusCode.NOT_FOUND"

    triton.load_model("iris", client_timeout=TIMEOUT)  # follows models:/iris/latest
    assert triton.is_model_ready("iris", client_timeout=TIMEOUT)
    assert triton.infer("iris", [_tensor("input", rows)],
                        client_timeout=TIMEOUT).as_numpy("predict").shape == (2,)

    err = _error(lambda: triton.load_model("ghost", client_timeout=TIMEOUT))
    assert err.status() == "StatusCode.NOT_FOUND"
    assert err.message().startswith("Could not load models:/ghost/latest")
    err = _error(lambda: triton.unload_model("ghost", client_timeout=TIMEOUT))
    assert err.status() == "StatusCode.NOT_FOUND"


def test_repository_load_with_ref(served: Served, registry: Registry) -> None:
    channel, stub = served.stub()
    with channel:
        stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(
            model_name="cancer_v1",
            parameters={"ref": pb.ModelRepositoryParameter(string_param="models:/cancer/1")}),
            timeout=TIMEOUT)
        ready = stub.ModelReady(pb.ModelReadyRequest(name="cancer_v1"), timeout=TIMEOUT)
        with pytest.raises(grpc.RpcError) as info:
            stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(
                model_name="x", parameters={"ref": pb.ModelRepositoryParameter(bool_param=True)}),
                timeout=TIMEOUT)
    assert ready.ready
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'ref' must be a string_param" in info.value.details()


# -- the server itself -----------------------------------------------------------------------------


def test_busy_port_is_a_configuration_error(served: Served) -> None:
    async def start_on_busy_port() -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            await start_grpc_server(served.plane, "127.0.0.1", busy.getsockname()[1])

    with pytest.raises(ConfigurationError, match=r"cannot listen on 127\.0\.0\.1:\d+"):
        asyncio.run(start_on_busy_port())


def test_serves_under_uvloop(registry: Registry) -> None:
    uvloop = pytest.importorskip("uvloop")  # what `modelyard serve` runs on

    def run(main: Any) -> None:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main)

    with _serving(registry, run) as served, served.client() as triton:
        rows = registry.iris_X[:3]
        result = triton.infer("iris", [_tensor("input", rows)], client_timeout=TIMEOUT)
        assert result.as_numpy("predict").shape == (3,)


def test_metrics_count_grpc_requests(served: Served, triton: grpcclient.InferenceServerClient,
                                     registry: Registry) -> None:
    rows = registry.iris_X[:1]
    triton.infer("iris", [_tensor("input", rows)], client_timeout=TIMEOUT)
    _error(lambda: triton.infer("iris", [_tensor("input", np.zeros((1, 5)))],
                                client_timeout=TIMEOUT))
    registry_ = served.plane.metrics.registry
    labels = {"model": "iris", "route": "grpc"}
    assert registry_.get_sample_value(
        "modelyard_requests_total", {**labels, "version": "1", "status": "200"}) == 1.0
    assert registry_.get_sample_value(
        "modelyard_requests_total", {**labels, "version": "", "status": "400"}) == 1.0
    assert registry_.get_sample_value("modelyard_request_duration_seconds_count", labels) == 2.0
    assert registry_.get_sample_value("modelyard_inflight_requests", {}) == 0.0
