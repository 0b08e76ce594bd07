"""The REST adapter: a plain ASGI application over the data plane.

Routes: Open Inference Protocol v2 (health, metadata, infer, binary tensors, repository,
ground-truth feedback, and /v2/models/{name}/rollout: the live state of a rollout), MLflow
scoring (/invocations, /ping, /health, /version), TF-Serving v1 (/v1/models/{name}:predict) and
TorchServe (/predictions/{name}[/{version}]), plus /metrics and /openapi.json. An inference
that failed after its version was chosen says which in an ``x-model-version`` header (during a
rollout: the challenger's failures are told apart from the champion's).

Written directly against ASGI rather than through a framework's router and request objects:
on one core the framework layer costs as much as the whole prediction of a small model, and
this path is what the server's throughput is made of. The routing is a dictionary lookup for
fixed paths and a split of the path for model paths.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import orjson

from modelyard.errors import InvalidInputError, ModelyardError, NotFoundError
from modelyard.protocol import mlflow as mlflow_codec
from modelyard.protocol import tfserving as tf_codec
from modelyard.protocol import torchserve as ts_codec
from modelyard.protocol import v2
from modelyard.protocol._json import check_json_limits
from modelyard.serving.auth import Denial, Guard, bearer_token
from modelyard.serving.dataplane import DataPlane, new_request_id, version_of_error
from modelyard.serving.http.errors import status_of
from modelyard.serving.http.openapi import openapi_document
from modelyard.serving.metrics import CONTENT_TYPE_LATEST
from modelyard.settings import SecuritySettings

__all__ = ["RestApp"]

log = logging.getLogger("modelyard.serving.http")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]
_NULL_ANSWER = (b'{"model_name":"null","outputs":[{"name":"predict","shape":[1],'
                b'"datatype":"INT64","data":[0]}]}')

# The policy operation of each handler (modelyard.security.policy.OPERATIONS says what each
# needs). A handler missing here needs the admin role: a new route is closed until listed.
_OPERATIONS: dict[str, str] = {
    "_live": "server.live", "_ready": "server.ready", "_server_metadata": "server.metadata",
    "_repo_index": "repository.index", "_repo_load": "repository.load",
    "_repo_unload": "repository.unload", "_invocations": "model.infer",
    "_ping": "server.health", "_version": "server.version", "_metrics": "server.metrics",
    "_openapi_json": "server.openapi", "_model_ready": "model.ready",
    "_model_metadata": "model.metadata", "_infer": "model.infer",
    "_feedback": "model.feedback", "_null": "server.null", "_v1_predict": "model.infer",
    "_v1_status": "model.status", "_torchserve": "model.infer",
    "_rollout": "model.rollout",
}


class _Reply(Exception):
    """Raised inside a handler to answer at once (bad content type, body too large...)."""

    def __init__(self, status: int, body: dict[str, Any],
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or []


class _Request:
    __slots__ = ("body", "client", "headers", "method", "path", "query", "request_id", "route")

    def __init__(self, scope: Scope) -> None:
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query: bytes = scope.get("query_string", b"")
        self.client: tuple[str, int] | None = scope.get("client")
        # Lower-case names (ASGI servers lower them); a repeated header keeps its last value.
        headers: dict[bytes, bytes] = dict(scope["headers"])
        self.headers = headers
        rid = headers.get(b"x-request-id")
        self.request_id = rid.decode("latin-1") if rid else new_request_id()
        self.body = b""
        self.route = "other"

    def header(self, name: bytes) -> str | None:
        value = self.headers.get(name)
        return value.decode("latin-1") if value is not None else None

    def lookup(self, name: str) -> str | None:
        """A header by its lower-case name (the data plane's sticky rollout key)."""
        return self.header(name.encode("latin-1"))


class RestApp:
    """ASGI app. ``lifespan`` startup loads the models; shutdown drains and releases them."""

    def __init__(self, plane: DataPlane, *, null_route: bool = False,
                 on_startup: list[Callable[[], Awaitable[None]]] | None = None,
                 on_shutdown: list[Callable[[], Awaitable[None]]] | None = None,
                 guard: Guard | None = None,
                 json_limits: tuple[int, int] | None = None) -> None:
        self.plane = plane
        self.guard = guard
        # (security.max_json_depth, security.max_json_elements); None: the settings' defaults.
        self.json_limits = json_limits or _DEFAULT_JSON_LIMITS
        self.metrics = plane.metrics
        self.max_body = plane.settings.max_body_bytes
        self.null_route = null_route
        self.on_startup = on_startup or []
        self.on_shutdown = on_shutdown or []
        self._openapi: bytes | None = None
        self._static: dict[tuple[str, str], Callable[[_Request], Awaitable[Any]]] = {
            ("GET", "/v2/health/live"): self._live,
            ("GET", "/v2/health/ready"): self._ready,
            ("GET", "/v2"): self._server_metadata,
            ("POST", "/v2/repository/index"): self._repo_index,
            ("POST", "/invocations"): self._invocations,
            ("GET", "/ping"): self._ping,
            ("GET", "/health"): self._ping,
            ("GET", "/version"): self._version,
            ("GET", "/metrics"): self._metrics,
            ("GET", "/openapi.json"): self._openapi_json,
        }

    # -- ASGI ----------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for hook in self.on_startup:
                        await hook()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for hook in self.on_shutdown:
                    try:
                        await hook()
                    except Exception:
                        log.exception("shutdown hook failed")
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = _Request(scope)
        inflight = self.metrics.inflight
        inflight.value += 1
        try:
            status, body, headers = await self._dispatch(request, receive)
        finally:
            inflight.value -= 1
        headers.append((b"x-request-id", request.request_id.encode("latin-1")))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _dispatch(self, request: _Request,
                        receive: Receive) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        try:
            handler, args = self._route(request)
            if self.guard is not None and self.guard.active:  # before the body is read
                denied = self._authorize(request, handler, args)
                if denied is not None:
                    return denied
            if request.method == "POST":
                request.body = await self._read_body(request, receive)
                if request.body:
                    self._check_json(request)
            return await handler(request, *args)  # type: ignore[no-any-return]
        except _Reply as reply:
            return reply.status, orjson.dumps(reply.body), [*_JSON, *reply.headers]
        except ModelyardError as exc:
            return self._error(request, status_of(exc), exc)
        except Exception as exc:  # a bug must not take the server down: answer 500
            log.exception("unhandled error on %s %s", request.method, request.path)
            return self._error(request, 500, exc)

    def _authorize(self, request: _Request, handler: Callable[..., Any],
                   args: tuple[Any, ...]) -> tuple[int, bytes, list[tuple[bytes, bytes]]] | None:
        assert self.guard is not None
        operation = _OPERATIONS.get(handler.__name__, "")
        # Model routes take the model name first; /invocations without one scores the default.
        model = args[0] if args else (
            next(iter(self.plane.pool.deployments), None) if handler == self._invocations
            else None)
        headers = request.headers
        verdict = self.guard.check(
            bearer_token(headers.get(b"authorization"), headers.get(b"x-api-key")),
            operation, model, request.client[0] if request.client else None)
        if not isinstance(verdict, Denial):
            return None
        extra: list[tuple[bytes, bytes]] = []
        if verdict.status == 401:
            extra.append((b"www-authenticate", b'Bearer realm="modelyard"'))
        if verdict.retry_after_s is not None:
            extra.append((b"retry-after", str(verdict.retry_after_s).encode()))
        return verdict.status, orjson.dumps({"error": verdict.message}), [*_JSON, *extra]

    def _error(self, request: _Request, status: int,
               exc: BaseException) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        message = str(exc) if isinstance(exc, ModelyardError) else (
            f"Internal error: {type(exc).__name__}: {exc}")
        headers = list(_JSON)
        if status == 503:
            headers.append((b"retry-after", b"1"))
        failed = version_of_error(exc)
        if failed is not None:  # during a rollout: which version failed
            headers.append((b"x-model-version", str(failed).encode()))
        if request.route in ("mlflow",):
            code = "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR"
            if status == 404:
                code = "RESOURCE_DOES_NOT_EXIST"
            return status, orjson.dumps({"error_code": code, "message": message}), headers
        return status, orjson.dumps({"error": message}), headers

    async def _read_body(self, request: _Request, receive: Receive) -> bytes:
        declared = request.headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise _Reply(413, {"error": f"The request body is {int(declared)} bytes; the limit "
                                        f"is {self.max_body} bytes."})
        message = await receive()
        if not message.get("more_body", False) and message["type"] == "http.request":
            # The whole body in one message: what every small request is.
            body: bytes = message.get("body", b"")
            if len(body) > self.max_body:
                raise _Reply(413, {"error": f"The request body exceeds the limit of "
                                            f"{self.max_body} bytes."})
            return body
        chunks: list[bytes] = []
        size = 0
        while True:
            if message["type"] == "http.disconnect":  # gone, or dropped for reading too slowly
                raise _Reply(400, {"error": "The client disconnected before the whole body "
                                            "arrived."})
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.max_body:
                    raise _Reply(413, {"error": f"The request body exceeds the limit of "
                                                f"{self.max_body} bytes."})
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
            message = await receive()
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _check_json(self, request: _Request) -> None:
        """Nesting and size limits of a JSON body, checked on its bytes before any parsing
        (400 naming the limit). CSV bodies are not JSON; of a binary v2 body only the JSON
        header counts."""
        content_type = request.headers.get(b"content-type", b"")
        if content_type[:8].lower() == b"text/csv":
            return
        body: bytes | memoryview = request.body
        header = request.headers.get(b"inference-header-content-length")
        if header is not None:
            if not header.isdigit():
                return  # the v2 decoder names the bad header
            body = memoryview(request.body)[: int(header)]
        depth, elements = self.json_limits
        check_json_limits(body, max_depth=depth, max_elements=elements)

    # -- routing ---------------------------------------------------------------------------
    def _route(self, request: _Request) -> tuple[Callable[..., Awaitable[Any]], tuple[Any, ...]]:
        method, path = request.method, request.path
        if method == "POST" and path[:11] == "/v2/models/" and path[-6:] == "/infer":
            name = path[11:-6]  # the request path of nearly every request: no split
            if name and "/" not in name:
                request.route = "v2"
                return self._infer, (name, None)
        handler = self._static.get((method, path))
        if handler is not None:
            if path == "/invocations":
                request.route = "mlflow"
            return handler, ()
        parts = path.strip("/").split("/")
        head = parts[0]
        if head == "v2" and len(parts) >= 3 and parts[1] == "models":
            return self._route_v2_model(request, parts)
        if (head == "v2" and len(parts) == 5 and parts[1] == "repository" and method == "POST"
                and parts[2] == "models" and parts[4] in ("load", "unload")):
            repo = self._repo_load if parts[4] == "load" else self._repo_unload
            return repo, (parts[3],)
        if head == "v2" and path == "/v2/null" and method == "POST" and self.null_route:
            return self._null, ()
        if head == "v1" and len(parts) >= 3 and parts[1] == "models":
            return self._route_v1(request, parts)
        if head == "predictions" and method == "POST" and len(parts) in (2, 3):
            request.route = "torchserve"
            return self._torchserve, (parts[1], _version(parts[2]) if len(parts) == 3 else None)
        if head == "models" and len(parts) == 3 and parts[2] == "invocations" and (
                method == "POST"):
            request.route = "mlflow"
            return self._invocations, (parts[1],)
        raise _Reply(404, {"error": f"There is no route {method} {path}."
                                    " See GET /openapi.json for the routes this server has."})

    def _route_v2_model(self, request: _Request,
                        parts: list[str]) -> tuple[Callable[..., Awaitable[Any]], tuple[Any, ...]]:
        name, rest, version = parts[2], parts[3:], None
        if len(rest) >= 2 and rest[0] == "versions":
            version, rest = _version(rest[1]), rest[2:]
        action = rest[0] if rest else ""
        if request.method == "POST" and action == "infer" and len(rest) == 1:
            request.route = "v2"
            return self._infer, (name, version)
        if request.method == "POST" and action == "feedback" and len(rest) == 1:
            return self._feedback, (name,)
        if request.method == "GET" and action == "ready" and len(rest) == 1:
            return self._model_ready, (name, version)
        if request.method == "GET" and action == "rollout" and len(rest) == 1 and (
                version is None):
            return self._rollout, (name,)
        if request.method == "GET" and not rest:
            return self._model_metadata, (name, version)
        raise _Reply(404, {"error": f"There is no route {request.method} {request.path}."})

    def _route_v1(self, request: _Request,
                  parts: list[str]) -> tuple[Callable[..., Awaitable[Any]], tuple[Any, ...]]:
        tail = "/".join(parts[2:])
        name, _, verb = tail.partition(":")
        version = None
        if "/versions/" in name:
            name, _, raw = name.partition("/versions/")
            version = _version(raw)
        if request.method == "POST" and verb == "predict" and "/" not in name:
            request.route = "v1"
            return self._v1_predict, (name, version)
        if request.method == "GET" and not verb and "/" not in name:
            return self._v1_status, (name,)
        raise _Reply(404, {"error": f"There is no route {request.method} {request.path}."})

    # -- OIP v2 ----------------------------------------------------------------------------
    async def _live(self, request: _Request) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        return 200, b'{"live":true}', list(_JSON)

    async def _ready(self, request: _Request) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        ready = self.plane.ready()
        return (200 if ready else 503), orjson.dumps({"ready": ready}), list(_JSON)

    async def _server_metadata(self, request: _Request) -> tuple[int, bytes, list[Any]]:
        return 200, orjson.dumps(self.plane.server_metadata()), list(_JSON)

    async def _model_ready(self, request: _Request, name: str,
                           version: int | None) -> tuple[int, bytes, list[Any]]:
        ready = self.plane.model_ready(name, version)
        body = {"name": name, "ready": ready}
        return (200 if ready else 503), orjson.dumps(body), list(_JSON)

    async def _model_metadata(self, request: _Request, name: str,
                              version: int | None) -> tuple[int, bytes, list[Any]]:
        meta = await self.plane.model_metadata(name, version)
        body = {
            "name": meta.name, "versions": meta.versions, "platform": meta.platform,
            "inputs": [v2.tensor_metadata(s) for s in meta.inputs],
            "outputs": [v2.tensor_metadata(s) for s in meta.outputs],
        }
        return 200, orjson.dumps(body), list(_JSON)

    async def _infer(self, request: _Request, name: str,
                     version: int | None) -> tuple[int, bytes, list[Any]]:
        started = time.perf_counter()
        header_length = request.headers.get(b"inference-header-content-length")
        status = 500
        model_version = "" if version is None else str(version)
        try:
            req = v2.decode_request(request.body,
                                    int(header_length) if header_length else None)
            if req.id:
                request.request_id = req.id
            wanted = [o.name for o in req.outputs] if req.outputs else None
            prediction = await self.plane.infer(
                name, v2.to_model_input(req), version=version, request_id=request.request_id,
                route="v2", outputs=wanted, headers=request.lookup)
            model_version = str(prediction.model_version)
            binary: Collection[str] = ()
            if req.outputs:  # binary_data_output is already each requested output's default
                binary = {o.name for o in req.outputs if o.binary}
            elif req.parameters and req.parameters.get("binary_data_output") is True:
                binary = prediction.outputs.keys()  # every output, as binary data
            body, json_length = v2.encode_response(
                name, model_version, req.id or None, prediction.outputs, binary=binary)
            status = 200
            if json_length is None:
                return 200, body, list(_JSON)
            return 200, body, [(b"content-type", b"application/octet-stream"),
                               (b"inference-header-content-length", str(json_length).encode())]
        except ModelyardError as exc:
            status = status_of(exc)
            raise
        finally:
            self.metrics.answered(name, model_version, "v2", status,
                                  time.perf_counter() - started)

    async def _feedback(self, request: _Request, name: str) -> tuple[int, bytes, list[Any]]:
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInputError(f"The feedback body is not valid JSON: {exc}",
                                    hint='Send {"id": "<request id>", "label": ...}.') from None
        accepted = self.plane.feedback(name, body)
        return 202, orjson.dumps({"accepted": accepted}), list(_JSON)

    async def _rollout(self, request: _Request, name: str) -> tuple[int, bytes, list[Any]]:
        return 200, orjson.dumps(self.plane.rollout_status(name)), list(_JSON)

    async def _null(self, request: _Request) -> tuple[int, bytes, list[Any]]:
        return 200, _NULL_ANSWER, list(_JSON)

    # -- repository extension ----------------------------------------------------------------
    async def _repo_index(self, request: _Request) -> tuple[int, bytes, list[Any]]:
        return 200, orjson.dumps(self.plane.repository_index()), list(_JSON)

    async def _repo_load(self, request: _Request, name: str) -> tuple[int, bytes, list[Any]]:
        ref = None
        if request.body:
            try:
                params = orjson.loads(request.body).get("parameters") or {}
            except (orjson.JSONDecodeError, AttributeError) as exc:
                raise InvalidInputError(f"The load request body is not a JSON object: "
                                        f"{exc}") from None
            ref = params.get("ref") if isinstance(params, dict) else None
        await self.plane.load_model(name, ref)
        return 200, b"{}", list(_JSON)

    async def _repo_unload(self, request: _Request, name: str) -> tuple[int, bytes, list[Any]]:
        await self.plane.unload_model(name)
        return 200, b"{}", list(_JSON)

    # -- MLflow ------------------------------------------------------------------------------
    async def _invocations(self, request: _Request,
                           name: str | None = None) -> tuple[int, bytes, list[Any]]:
        request.route = "mlflow"
        content_type = (request.header(b"content-type") or "application/json").lower()
        _check_mlflow_content_type(content_type)
        target = name or self._default_model()
        return await self._scored(
            request, target, None, "mlflow",
            lambda: mlflow_codec.decode_invocations(request.body, content_type),
            mlflow_codec.encode_predictions)

    async def _ping(self, request: _Request) -> tuple[int, bytes, list[Any]]:
        ready = bool(self.plane.pool.deployments) and self.plane.ready()
        return (200 if ready else 404), b"\n", [(b"content-type", b"application/json")]

    async def _version(self, request: _Request) -> tuple[int, bytes, list[Any]]:
        return 200, self.plane.server_version.encode(), [(b"content-type", b"text/plain")]

    def _default_model(self) -> str:
        if not self.plane.pool.deployments:
            raise NotFoundError("This server holds no model.",
                                hint="Start it with: modelyard serve models:/NAME@production")
        return next(iter(self.plane.pool.deployments))

    # -- TF-Serving v1 and TorchServe --------------------------------------------------------
    async def _v1_predict(self, request: _Request, name: str,
                          version: int | None) -> tuple[int, bytes, list[Any]]:
        decoded: dict[str, Any] = {}

        def decode() -> Any:
            data, decoded["rows"] = tf_codec.decode_predict(request.body)
            return data

        return await self._scored(request, name, version, "v1", decode,
                                  lambda outs: tf_codec.encode_predict(outs, decoded["rows"]))

    async def _v1_status(self, request: _Request, name: str) -> tuple[int, bytes, list[Any]]:
        ready = self.plane.model_ready(name)
        dep = self.plane.pool.deployments[name]
        version = str(dep.current.version.version) if dep.current else ""
        body = {"model_version_status": [{
            "version": version, "state": "AVAILABLE" if ready else "LOADING",
            "status": {"error_code": "OK", "error_message": ""}}]}
        return 200, orjson.dumps(body), list(_JSON)

    async def _torchserve(self, request: _Request, name: str,
                          version: int | None) -> tuple[int, bytes, list[Any]]:
        content_type = (request.header(b"content-type") or "application/json").lower()
        return await self._scored(
            request, name, version, "torchserve",
            lambda: ts_codec.decode_predictions(request.body, content_type),
            ts_codec.encode_predictions)

    async def _scored(self, request: _Request, name: str, version: int | None, route: str,
                      decode: Callable[[], Any],
                      encode: Callable[[dict[str, Any]], bytes]) -> tuple[int, bytes, list[Any]]:
        started = time.perf_counter()
        status = 500
        model_version = "" if version is None else str(version)
        try:
            # These protocols answer the model's predictions only, as their servers do.
            prediction = await self.plane.infer(name, decode(), version=version,
                                                request_id=request.request_id, route=route,
                                                outputs=["predict"], headers=request.lookup)
            model_version = str(prediction.model_version)
            status = 200
            return 200, encode(prediction.outputs), [
                *_JSON, (b"x-model-version", model_version.encode())]
        except ModelyardError as exc:
            status = status_of(exc)
            raise
        finally:
            self.metrics.answered(name, model_version, route, status,
                                  time.perf_counter() - started)

    # -- operations ----------------------------------------------------------------------------
    async def _metrics(self, request: _Request) -> tuple[int, bytes, list[Any]]:
        return 200, self.metrics.render(), [(b"content-type", CONTENT_TYPE_LATEST.encode())]

    async def _openapi_json(self, request: _Request) -> tuple[int, bytes, list[Any]]:
        if self._openapi is None:
            self._openapi = orjson.dumps(openapi_document(self.plane.server_version))
        return 200, self._openapi, list(_JSON)


_DEFAULT_JSON_LIMITS = (SecuritySettings.model_fields["max_json_depth"].default,
                        SecuritySettings.model_fields["max_json_elements"].default)


def _version(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise InvalidInputError(f"The model version must be a positive integer. Got {text!r}.")
    return int(text)


def _check_mlflow_content_type(content_type: str) -> None:
    mime, _, params = content_type.partition(";")
    mime = mime.strip()
    if mime == "text/csv":
        return
    if mime != "application/json":
        raise _Reply(415, {"error_code": "BAD_REQUEST",
                           "message": f"Content type {mime!r} is not supported; use "
                                      "application/json or text/csv."})
    params = params.strip()
    if params and params.replace(" ", "") not in ("charset=utf-8", "charset=UTF-8"):
        raise _Reply(415, {"error_code": "BAD_REQUEST",
                           "message": f"Only charset=utf-8 is supported. Got {params!r}."})
