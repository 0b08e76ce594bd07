"""The OpenAPI 3.1 document served at /openapi.json: every route the REST adapter answers."""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
_MLFLOW_ERROR = {"type": "object", "properties": {"error_code": {"type": "string"},
                                                  "message": {"type": "string"}}}
_TENSOR_DATA: dict[str, Any] = {"description": "Row-major values, nested or flat."}
_REQUEST_INPUT = {
    "type": "object", "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "enum": ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64",
                                                "INT8", "INT16", "INT32", "INT64", "FP16",
                                                "FP32", "FP64", "BYTES"]},
        "parameters": {"type": "object"},
        "data": _TENSOR_DATA,
    },
}
_INFER_REQUEST = {
    "type": "object", "required": ["inputs"],
    "properties": {
        "id": {"type": "string"}, "parameters": {"type": "object"},
        "inputs": {"type": "array", "items": _REQUEST_INPUT},
        "outputs": {"type": "array", "items": {"type": "object", "required": ["name"],
                                               "properties": {"name": {"type": "string"},
                                                              "parameters": {"type": "object"}}}},
    },
}
_INFER_RESPONSE = {
    "type": "object", "required": ["model_name", "outputs"],
    "properties": {
        "model_name": {"type": "string"}, "model_version": {"type": "string"},
        "id": {"type": "string"}, "parameters": {"type": "object"},
        "outputs": {"type": "array", "items": {
            "type": "object", "required": ["name", "shape", "datatype"],
            "properties": {"name": {"type": "string"}, "datatype": {"type": "string"},
                           "shape": {"type": "array", "items": {"type": "integer"}},
                           "parameters": {"type": "object"}, "data": _TENSOR_DATA}}},
    },
}
_TENSOR_META = {"type": "object", "properties": {
    "name": {"type": "string"}, "datatype": {"type": "string"},
    "shape": {"type": "array", "items": {"type": "integer"}}}}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int, mlflow: bool = False) -> dict[str, Any]:
    text = {400: "Bad input: the message names the input and what was expected.",
            404: "Unknown model or version.",
            409: "The version may not be served (unsigned, untrusted or changed artifacts).",
            413: "Request body too large.",
            415: "Unsupported content type.", 500: "The model failed.",
            503: "Model loading or server overloaded (see Retry-After).",
            504: "The model did not answer in time."}
    schema = _MLFLOW_ERROR if mlflow else _ERROR
    return {str(c): _json(schema, text[c]) for c in codes}


_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_VERSION = {"name": "version", "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": 1}}
_INFER_ERRORS = (400, 404, 409, 413, 500, 503, 504)


def _infer_op(summary: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    return {"post": {
        "summary": summary, "parameters": params,
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": _INFER_REQUEST},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
        "responses": {"200": _json(_INFER_RESPONSE), **_errors(*_INFER_ERRORS)}}}


def _health(summary: str) -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {
        "200": _json({"type": "object"}), "503": _json({"type": "object"}, "Not ready.")}}}


def _metadata(params: list[dict[str, Any]]) -> dict[str, Any]:
    return {"get": {"summary": "Model metadata", "parameters": params, "responses": {
        "200": _json({"type": "object", "properties": {
            "name": {"type": "string"}, "versions": {"type": "array",
                                                     "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": _TENSOR_META},
            "outputs": {"type": "array", "items": _TENSOR_META}}}),
        **_errors(400, 404, 503)}}}


def _model_ready(params: list[dict[str, Any]]) -> dict[str, Any]:
    return {"get": {"summary": "Model readiness", "parameters": params, "responses": {
        "200": _json({"type": "object"}), "503": _json({"type": "object"}, "Loading."),
        **_errors(400, 404)}}}


_SCORING_BODY = {"required": True, "content": {
    "application/json": {"schema": {"type": "object"}},
    "text/csv": {"schema": {"type": "string"}}}}
_PREDICTIONS = _json({"type": "object", "properties": {"predictions": {"type": "array"}}})


_LABEL = {"type": "object", "required": ["id", "label"], "properties": {
    "id": {"type": "string", "minLength": 1},
    "row": {"type": "integer", "minimum": 0},
    "label": {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}}}
_FEEDBACK_OP = {"post": {
    "summary": "Ground truth for earlier predictions, joined by request id",
    "parameters": [_NAME],
    "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
        _LABEL, {"type": "array", "minItems": 1, "items": _LABEL}]}}}},
    "responses": {"202": _json({"type": "object", "required": ["accepted"], "properties": {
        "accepted": {"type": "integer"}}}, "Labels queued for the log."),
        **_errors(400, 404, 413, 503)}}}


_VERSION_STATS = {"type": "object", "properties": {
    "version": {"type": "integer"}, "requests": {"type": "integer"},
    "errors": {"type": "integer"}, "error_rate": {"type": "number"},
    "p99_ms": {"type": ["number", "null"]}, "labelled": {"type": "integer"},
    "accuracy": {"type": ["number", "null"]}, "compared": {"type": "integer"},
    "agreement": {"type": ["number", "null"]}}}
_ROLLOUT_OP = {"get": {
    "summary": "The model's active rollout: its state, live per-version statistics on this "
               "server, and the reason of the last decision",
    "parameters": [_NAME],
    "responses": {"200": _json({"type": "object", "required": ["rollout", "stats"],
                                "properties": {
        "name": {"type": "string"},
        "rollout": {"type": "object", "properties": {
            "id": {"type": "integer"}, "mode": {"enum": ["canary", "shadow", "ab"]},
            "champion": {"type": "integer"}, "challenger": {"type": "integer"},
            "weight": {"type": "number"}, "step": {"type": "integer"},
            "state": {"type": "string"}, "policy": {"type": "object"}}},
        "challenger_loaded": {"type": "boolean"},
        "error": {"type": ["string", "null"]},
        "stats": {"type": "object", "properties": {
            "champion": _VERSION_STATS, "challenger": _VERSION_STATS,
            "step_requests": {"type": "integer"}}},
        "shadow_skipped": {"type": "integer"},
        "decision": {"type": ["object", "null"]},
        "reason": {"type": "string"}}}),
        "404": _json(_ERROR, "Unknown model, or no active rollout.")}}}


def openapi_document(version: str) -> dict[str, Any]:
    """The document; built once per server."""
    v = [_NAME, _VERSION]
    paths: dict[str, Any] = {
        "/v2/health/live": _health("Server liveness"),
        "/v2/health/ready": _health("Server readiness: every configured model loaded"),
        "/v2": {"get": {"summary": "Server metadata", "responses": {"200": _json({
            "type": "object", "properties": {"name": {"type": "string"},
                                             "version": {"type": "string"},
                                             "extensions": {"type": "array"}}})}}},
        "/v2/models/{name}": _metadata([_NAME]),
        "/v2/models/{name}/versions/{version}": _metadata(v),
        "/v2/models/{name}/ready": _model_ready([_NAME]),
        "/v2/models/{name}/versions/{version}/ready": _model_ready(v),
        "/v2/models/{name}/infer": _infer_op("Inference (OIP v2)", [_NAME]),
        "/v2/models/{name}/feedback": _FEEDBACK_OP,
        "/v2/models/{name}/rollout": _ROLLOUT_OP,
        "/v2/models/{name}/versions/{version}/infer": _infer_op("Inference on a version", v),
        "/v2/repository/index": {"post": {"summary": "Models and their state", "responses": {
            "200": _json({"type": "array", "items": {"type": "object"}})}}},
        "/v2/repository/models/{name}/load": {"post": {
            "summary": "Load a model (parameters.ref picks the reference)",
            "parameters": [_NAME], "responses": {"200": _json({"type": "object"}),
                                                 **_errors(400, 404)}}},
        "/v2/repository/models/{name}/unload": {"post": {
            "summary": "Unload a model", "parameters": [_NAME],
            "responses": {"200": _json({"type": "object"}), **_errors(404)}}},
        "/invocations": {"post": {"summary": "MLflow scoring (default model)",
                                  "requestBody": _SCORING_BODY,
                                  "responses": {"200": _PREDICTIONS,
                                                **_errors(400, 404, 413, 415, 500, 503, 504,
                                                          mlflow=True)}}},
        "/models/{name}/invocations": {"post": {
            "summary": "MLflow scoring of a named model", "parameters": [_NAME],
            "requestBody": _SCORING_BODY,
            "responses": {"200": _PREDICTIONS,
                          **_errors(400, 404, 413, 415, 500, 503, 504, mlflow=True)}}},
        "/ping": _health("MLflow health: 200 when the model is loaded, else 404"),
        "/health": _health("MLflow health"),
        "/version": {"get": {"summary": "Server version", "responses": {
            "200": {"description": "OK", "content": {"text/plain": {"schema": {
                "type": "string"}}}}}}},
        "/v1/models/{name}:predict": {"post": {
            "summary": "TF-Serving style predict", "parameters": [_NAME],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"type": "object"}}}},
            "responses": {"200": _json({"type": "object"}), **_errors(*_INFER_ERRORS)}}},
        "/v1/models/{name}": {"get": {"summary": "TF-Serving style model status",
                                      "parameters": [_NAME],
                                      "responses": {"200": _json({"type": "object"}),
                                                    **_errors(404)}}},
        "/predictions/{name}": {"post": {
            "summary": "TorchServe style predictions", "parameters": [_NAME],
            "requestBody": _SCORING_BODY,
            "responses": {"200": _json({"type": "array"}), **_errors(*_INFER_ERRORS)}}},
        "/predictions/{name}/{version}": {"post": {
            "summary": "TorchServe style predictions on a version", "parameters": v,
            "requestBody": _SCORING_BODY,
            "responses": {"200": _json({"type": "array"}), **_errors(*_INFER_ERRORS)}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {
            "description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    }
    return {"openapi": "3.1.0",
            "info": {"title": "modelyard inference server", "version": version},
            "paths": _secure(paths),
            "components": {"securitySchemes": _SECURITY_SCHEMES},
            "security": [{"bearer": []}, {"apiKey": []}]}


# API keys (docs/security-auth.md): either scheme works. The probes stay open.
_SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "An API key: 'Authorization: Bearer my_...'."},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
               "description": "The same API key in the X-API-Key header."},
}
_PUBLIC_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
_AUTH_ERRORS = {
    "401": _json(_ERROR, "No API key, or one that is unknown, revoked or expired "
                         "(WWW-Authenticate: Bearer)."),
    "403": _json(_ERROR, "The key's role or model list does not allow this."),
    "429": _json(_ERROR, "The key's rate limit is exceeded (see Retry-After)."),
}


def _secure(paths: dict[str, Any]) -> dict[str, Any]:
    """Mark the probes as needing no key; add the answers of the key check to the rest.
    (New dicts: some path items are module-level constants.)"""
    return {
        path: {method: ({**operation, "security": []} if path in _PUBLIC_PATHS else
                        {**operation, "responses": {**operation["responses"], **_AUTH_ERRORS}})
               for method, operation in item.items()}
        for path, item in paths.items()
    }
