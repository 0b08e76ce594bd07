"""Bad input: a 4xx with {"error": ...} naming the input and what was expected, and the
server keeps serving."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
from tests.integration.serving.conftest import Served

ROW = [1.0] * 30


def _infer(name: str = "input", shape: list[int] | None = None, datatype: str = "FP64",
           data: Any = None) -> dict[str, Any]:
    return {"inputs": [{"name": name, "shape": shape or [1, 30], "datatype": datatype,
                        "data": ROW if data is None else data}]}


BAD = [
    ("/v2/models/cancer/infer", b"{not json", 400, r"not valid JSON"),
    ("/v2/models/cancer/infer", _infer(datatype="FP99"), 400, r"FP99"),
    ("/v2/models/cancer/infer", _infer(shape=[2, 30]), 400, r"shape"),
    ("/v2/models/cancer/infer", _infer(shape=[1, 29], data=ROW[:29]), 400, r"30"),
    ("/v2/models/cancer/infer", {"inputs": []}, 400, r"input"),
    ("/v2/models/cancer/infer", {"nothing": 1}, 400, r"inputs"),
    ("/v2/models/cancer/infer", _infer(data=[None] * 30), 400, r"missing|null|NaN"),
    ("/v2/models/cancer/infer", _infer(data=["x"] * 30), 400, r"text|string|'x'"),
    ("/v2/models/nope/infer", _infer(), 404, r"nope"),
    ("/v2/models/cancer/versions/9/infer", _infer(), 404, r"Version 9"),
    ("/v2/models/cancer/versions/x/infer", _infer(), 400, r"positive integer"),
    ("/v2/models/cancer-tensor/infer", _infer(shape=[1, 29], data=ROW[:29]), 400,
     r"shape \[N, 30\]"),
    ("/invocations", {"dataframe_split": {"columns": ["a"], "data": [[1]]}}, 400,
     r"missing column"),
    ("/invocations", {"unknown_key": []}, 400, r"dataframe_split"),
]


@pytest.mark.parametrize(
    ("path", "body", "status", "match"), BAD,
    ids=["malformed-json", "bad-datatype", "shape-vs-data", "wrong-width", "no-inputs",
         "missing-inputs-key", "nan-forbidden", "strings-into-numbers", "unknown-model",
         "unknown-version", "bad-version", "tensor-shape", "mlflow-missing-column",
         "mlflow-unknown-key"],
)
def test_bad_input_is_a_clear_4xx(served: Served, path: str, body: Any, status: int,
                                  match: str) -> None:
    import re

    with httpx.Client(base_url=served.url) as http:
        if isinstance(body, bytes):
            r = http.post(path, content=body, headers={"Content-Type": "application/json"})
        else:
            r = http.post(path, json=body)
        assert r.status_code == status, r.text
        payload = r.json()
        message = payload.get("error") or payload.get("message")
        assert message, payload
        assert re.search(match, message), message
        # and the server keeps serving
        ok = http.post("/v2/models/cancer/infer", json=_infer(data=served.X.iloc[0].tolist()))
        assert ok.status_code == 200


def test_extra_and_missing_columns_are_named(served: Served) -> None:
    frame = served.X.head(1)
    inputs = [{"name": c, "shape": [1], "datatype": "FP64", "data": [float(frame[c].iloc[0])]}
              for c in frame.columns]
    with httpx.Client(base_url=served.url) as http:
        r = http.post("/v2/models/cancer/infer", json={"inputs": inputs[1:]})
        assert r.status_code == 400
        assert "mean radius" in r.json()["error"]
        extra = [*inputs, {"name": "bogus", "shape": [1], "datatype": "FP64", "data": [1.0]}]
        r = http.post("/v2/models/cancer/infer", json={"inputs": extra})
        assert r.status_code == 400
        assert "bogus" in r.json()["error"]


def test_oversized_body_is_413(served: Served) -> None:
    big = _infer(shape=[3000, 30], data=np.ones((3000, 30)).ravel().tolist())
    r = httpx.post(f"{served.url}/v2/models/cancer/infer", json=big)
    assert r.status_code == 413
    assert "limit" in r.json()["error"]


def test_unknown_route_is_404_json(served: Served) -> None:
    r = httpx.get(f"{served.url}/v3/whatever")
    assert r.status_code == 404
    assert "openapi.json" in r.json()["error"]
