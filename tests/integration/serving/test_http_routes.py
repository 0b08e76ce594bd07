"""Every REST route, called with real clients (httpx, tritonclient.http) on a real server."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from prometheus_client.parser import text_string_to_metric_families
from tests.integration.serving.conftest import Served


def _row(served: Served, n: int = 1) -> np.ndarray:
    return served.X.to_numpy()[:n]


def test_health_and_server_metadata(served: Served) -> None:
    with httpx.Client(base_url=served.url) as http:
        assert http.get("/v2/health/live").status_code == 200
        assert http.get("/v2/health/ready").status_code == 200
        meta = http.get("/v2").json()
        assert meta["name"] == "modelyard"
        assert "binary_tensor_data" in meta["extensions"]
        assert http.get("/v2/models/cancer/ready").status_code == 200
        assert http.get("/v2/models/nope/ready").status_code == 404


def test_model_metadata_lists_columns(served: Served) -> None:
    meta = httpx.get(f"{served.url}/v2/models/cancer").json()
    assert meta["name"] == "cancer"
    assert meta["versions"] == ["1"]
    assert meta["platform"] == "sklearn"
    assert [i["name"] for i in meta["inputs"]] == list(served.X.columns)
    assert {o["name"] for o in meta["outputs"]} == {"predict", "predict_proba"}


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_http_infer_one_tensor(served: Served, binary: bool) -> None:
    rows = _row(served, 3)
    client = triton.InferenceServerClient(served.url.removeprefix("http://"))
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("cancer")
    inp = triton.InferInput("input", list(rows.shape), "FP64")
    inp.set_data_from_numpy(rows, binary_data=binary)
    outputs = [triton.InferRequestedOutput("predict", binary_data=binary),
               triton.InferRequestedOutput("predict_proba", binary_data=binary)]
    result = client.infer("cancer", [inp], outputs=outputs)
    np.testing.assert_array_equal(result.as_numpy("predict"), served.model.predict(served.X[:3]))
    np.testing.assert_allclose(result.as_numpy("predict_proba"),
                               served.model.predict_proba(served.X[:3]))
    assert result.get_response()["model_version"] == "1"
    client.close()


def test_tritonclient_http_one_input_per_column(served: Served) -> None:
    frame = served.X.head(2)
    client = triton.InferenceServerClient(served.url.removeprefix("http://"))
    inputs = []
    for col in frame.columns:
        inp = triton.InferInput(col, [2], "FP64")
        inp.set_data_from_numpy(frame[col].to_numpy())
        inputs.append(inp)
    result = client.infer("cancer", inputs)
    np.testing.assert_array_equal(result.as_numpy("predict"), served.model.predict(frame))
    metadata = client.get_model_metadata("cancer")
    assert len(metadata["inputs"]) == 30
    client.close()


def test_binary_data_output_without_outputs_sends_every_output_binary(served: Served) -> None:
    # The request parameter asks for all outputs as binary data when none are listed (the
    # extension's rule, and what tritonclient sends by default); a listed output keeps its own.
    rows = _row(served, 2)
    body = {"inputs": [{"name": "input", "shape": [2, 30], "datatype": "FP64",
                        "data": rows.ravel().tolist()}],
            "parameters": {"binary_data_output": True}}
    with httpx.Client(base_url=served.url) as http:
        plain = http.post("/v2/models/cancer-tensor/infer",
                          json={"inputs": body["inputs"]}).json()["outputs"]
        want = {o["name"]: o["data"] for o in plain}
        r = http.post("/v2/models/cancer-tensor/infer", json=body)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/octet-stream"
        length = int(r.headers["inference-header-content-length"])
        header = httpx.Response(200, content=r.content[:length]).json()
        sizes = {o["name"]: o["parameters"]["binary_data_size"] for o in header["outputs"]}
        assert sizes == {"predict": 2 * 8, "predict_proba": 2 * 2 * 8}
        assert len(r.content) == length + sum(sizes.values())
        labels = np.frombuffer(r.content[length:length + sizes["predict"]], dtype="<i8")
        proba = np.frombuffer(r.content[length + sizes["predict"]:], dtype="<f8")
        assert labels.tolist() == want["predict"]
        assert proba.tolist() == want["predict_proba"]
        body["outputs"] = [{"name": "predict", "parameters": {"binary_data": False}}]
        r = http.post("/v2/models/cancer-tensor/infer", json=body)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        assert [o["name"] for o in r.json()["outputs"]] == ["predict"]
        assert r.json()["outputs"][0]["data"] == want["predict"]


def test_tensor_model_and_explicit_version(served: Served) -> None:
    rows = _row(served, 2)
    body = {"inputs": [{"name": "input", "shape": [2, 30], "datatype": "FP64",
                        "data": rows.ravel().tolist()}]}
    with httpx.Client(base_url=served.url) as http:
        r = http.post("/v2/models/cancer-tensor/infer", json=body)
        assert r.status_code == 200, r.text
        out = {o["name"]: o for o in r.json()["outputs"]}
        assert out["predict"]["data"] == served.tensor_model.predict(rows).tolist()
        r = http.post("/v2/models/cancer/versions/1/infer", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["model_version"] == "1"


def test_request_id_is_honoured_or_generated(served: Served) -> None:
    body = {"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP64",
                        "data": _row(served).ravel().tolist()}]}
    with httpx.Client(base_url=served.url) as http:
        r = http.post("/v2/models/cancer/infer", json=body, headers={"X-Request-ID": "abc-1"})
        assert r.headers["x-request-id"] == "abc-1"
        r = http.post("/v2/models/cancer/infer", json={**body, "id": "req-7"})
        assert r.json()["id"] == "req-7"
        assert len(http.post("/v2/models/cancer/infer", json=body).headers["x-request-id"]) >= 16


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_split": "split"},
        {"dataframe_records": "records"},
        {"instances": "rows"},
        {"inputs": "columns"},
    ],
    ids=["dataframe_split", "dataframe_records", "instances", "inputs"],
)
def test_mlflow_invocations_json(served: Served, payload: dict[str, str]) -> None:
    frame = served.X.head(3)
    kind = next(iter(payload))
    body = {
        "dataframe_split": {"dataframe_split": frame.to_dict(orient="split")},
        "dataframe_records": {"dataframe_records": frame.to_dict(orient="records")},
        "instances": {"instances": frame.to_numpy().tolist()},
        "inputs": {"inputs": {c: frame[c].tolist() for c in frame.columns}},
    }[kind]
    r = httpx.post(f"{served.url}/invocations", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == served.model.predict(frame).tolist()


def test_mlflow_csv_and_health_routes(served: Served) -> None:
    frame = served.X.head(4)
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    with httpx.Client(base_url=served.url) as http:
        r = http.post("/invocations", content=buf.getvalue(),
                      headers={"Content-Type": "text/csv"})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == served.model.predict(frame).tolist()
        r = http.post("/models/cancer-tensor/invocations",
                      json={"instances": frame.to_numpy().tolist()})
        assert r.json()["predictions"] == served.tensor_model.predict(frame.to_numpy()).tolist()
        assert http.get("/ping").status_code == 200
        assert http.get("/health").status_code == 200
        assert http.get("/version").text == "test"
        bad = http.post("/invocations", content=b"[1, 2]",
                        headers={"Content-Type": "application/json"})
        assert bad.status_code == 400
        assert bad.json()["error_code"] == "BAD_REQUEST"
        assert http.post("/invocations", content=b"x",
                         headers={"Content-Type": "text/plain"}).status_code == 415


def test_tfserving_and_torchserve_routes(served: Served) -> None:
    frame = served.X.head(2)
    expected = served.model.predict(frame).tolist()
    with httpx.Client(base_url=served.url) as http:
        r = http.post("/v1/models/cancer:predict",
                      json={"instances": frame.to_dict(orient="records")})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == expected
        status = http.get("/v1/models/cancer").json()
        assert status["model_version_status"][0]["state"] == "AVAILABLE"
        r = http.post("/predictions/cancer", json=frame.to_dict(orient="records"))
        assert r.status_code == 200, r.text
        assert r.json() == expected
        r = http.post("/predictions/cancer/1", json=frame.to_dict(orient="records"))
        assert r.status_code == 200, r.text


def test_repository_extension(served: Served) -> None:
    with httpx.Client(base_url=served.url) as http:
        index = http.post("/v2/repository/index").json()
        assert {m["name"]: m["state"] for m in index} == {"cancer": "READY",
                                                          "cancer-tensor": "READY"}
        assert http.post("/v2/repository/models/extra/load",
                         json={"parameters": {"ref": "models:/cancer/1"}}).status_code == 200
        assert http.get("/v2/models/extra/ready").status_code == 200
        assert http.post("/v2/repository/models/extra/unload").status_code == 200
        assert http.get("/v2/models/extra/ready").status_code == 404
        r = http.post("/v2/repository/models/ghost/load")
        assert r.status_code == 404
        assert "error" in r.json()


def test_metrics_parse(served: Served) -> None:
    body = {"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP64",
                        "data": _row(served).ravel().tolist()}]}
    httpx.post(f"{served.url}/v2/models/cancer/infer", json=body)
    text = httpx.get(f"{served.url}/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    requests = families["modelyard_requests"]
    assert any(s.labels.get("model") == "cancer" and s.labels.get("status") == "200"
               and s.value >= 1 for s in requests.samples)
    for name in ("modelyard_request_duration_seconds", "modelyard_queue_wait_seconds",
                 "modelyard_batch_size_rows", "modelyard_inflight_requests",
                 "modelyard_model_load_seconds"):
        assert name in families, name


def test_openapi_lists_every_route(served: Served) -> None:
    doc = httpx.get(f"{served.url}/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for path in ("/v2/models/{name}/infer", "/invocations", "/v1/models/{name}:predict",
                 "/predictions/{name}", "/v2/repository/index", "/metrics"):
        assert path in doc["paths"], path


def test_null_route(served: Served) -> None:
    assert httpx.post(f"{served.url}/v2/null", content=b"{}").status_code == 200
