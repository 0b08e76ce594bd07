"""The gRPC adapter: the Open Inference Protocol's ``inference.GRPCInferenceService`` over the
data plane, on ``grpc.aio`` in the same event loop as the REST app.

As thin as the REST adapter, and answering the same way: the same model resolution, checks
and messages, with errors mapped to gRPC status codes (:mod:`.errors`) instead of HTTP ones.
tritonclient.grpc, KServe and MLServer clients work unchanged (the messages are field for field
those of the KServe/Triton proto; see ``_generated/README.md``).

>>> from modelyard.serving.grpc import start_grpc_server
>>> started = await start_grpc_server(plane, "127.0.0.1", 0)           # doctest: +SKIP
>>> started.port                                                         # doctest: +SKIP
43121
>>> await started.stop(grace=5)                                          # doctest: +SKIP
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import grpc

from modelyard.errors import ConfigurationError, InvalidInputError, ModelyardError
from modelyard.protocol import v2
from modelyard.security.policy import GRPC_OPERATIONS
from modelyard.serving.auth import Denial, Guard, bearer_token
from modelyard.serving.dataplane import DataPlane, new_request_id, version_of_error
from modelyard.serving.grpc import codec
from modelyard.serving.grpc._generated import open_inference_grpc_pb2 as pb
from modelyard.serving.grpc._generated import open_inference_grpc_pb2_grpc as pb_grpc
from modelyard.serving.grpc.errors import code_of
from modelyard.serving.http.errors import status_of

if TYPE_CHECKING:
    from modelyard.security.tls import TlsFiles

__all__ = ["GrpcServer", "InferenceServicer", "start_grpc_server"]

log = logging.getLogger("modelyard.serving.grpc")

_ROUTE = "grpc"  # the route label of metrics and inference records

S = TypeVar("S")
R = TypeVar("R")
T = TypeVar("T")


async def _abort(context: Any, exc: BaseException, request_id: str | None = None) -> NoReturn:
    """End the call with the status and message REST would give as status and body."""
    if isinstance(exc, ModelyardError):
        code, message = code_of(exc), str(exc)
    else:
        code, message = grpc.StatusCode.INTERNAL, f"Internal error: {type(exc).__name__}: {exc}"
    trailing: list[tuple[str, str]] = []
    if code == grpc.StatusCode.UNAVAILABLE:
        trailing.append(("retry-after", "1"))
    if request_id:
        trailing.append(("x-request-id", request_id))
    failed = version_of_error(exc)
    if failed is not None:  # during a rollout: which version failed
        trailing.append(("x-model-version", str(failed)))
    await context.abort(code, message, trailing_metadata=tuple(trailing))
    raise AssertionError("context.abort() returned")  # it raises; this keeps NoReturn honest


def _answers_errors(
    handler: Callable[[S, R, Any], Awaitable[T]],
) -> Callable[[S, R, Any], Awaitable[T]]:
    """Turn modelyard errors into their status, and any other exception into INTERNAL."""

    @functools.wraps(handler)
    async def wrapper(self: S, request: R, context: Any) -> T:
        try:
            return await handler(self, request, context)
        except ModelyardError as exc:
            await _abort(context, exc)
        except Exception as exc:  # a bug must not take the server down: answer INTERNAL
            log.exception("unhandled error in %s", handler.__name__)
            await _abort(context, exc)

    return wrapper


def _version(text: str) -> int | None:
    """A request's model_version: empty lets the server choose (as REST without /versions)."""
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise InvalidInputError(f"The model version must be a positive integer. Got {text!r}.")
    return int(text)


def _metadata_request_id(context: Any) -> str | None:
    return _metadata_value(context, "x-request-id")


def _metadata_value(context: Any, name: str) -> str | None:
    """An invocation metadata value by its (lower-case) key; an ab rollout's sticky key."""
    for key, value in context.invocation_metadata() or ():
        if key == name:
            return str(value)
    return None


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """``inference.GRPCInferenceService`` over a :class:`DataPlane`.

    Calls the proto declares but modelyard does not serve (Triton's ModelConfig, statistics,
    shared memory...) are not in the service, so gRPC answers them UNIMPLEMENTED.
    """

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane
        self.metrics = plane.metrics

    # -- health and metadata ---------------------------------------------------------------
    @_answers_errors
    async def ServerLive(self, request: pb.ServerLiveRequest,
                         context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self.plane.live())

    @_answers_errors
    async def ServerReady(self, request: pb.ServerReadyRequest,
                          context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.plane.ready())

    @_answers_errors
    async def ModelReady(self, request: pb.ModelReadyRequest,
                         context: Any) -> pb.ModelReadyResponse:
        # An unknown model is NOT_FOUND (REST: 404), not ready=false: the message says which
        # models this server has.
        ready = self.plane.model_ready(request.name, _version(request.version))
        return pb.ModelReadyResponse(ready=ready)

    @_answers_errors
    async def ServerMetadata(self, request: pb.ServerMetadataRequest,
                             context: Any) -> pb.ServerMetadataResponse:
        meta = self.plane.server_metadata()
        return pb.ServerMetadataResponse(name=meta["name"], version=meta["version"],
                                         extensions=meta["extensions"])

    @_answers_errors
    async def ModelMetadata(self, request: pb.ModelMetadataRequest,
                            context: Any) -> pb.ModelMetadataResponse:
        meta = await self.plane.model_metadata(request.name, _version(request.version))
        return pb.ModelMetadataResponse(
            name=meta.name, versions=meta.versions, platform=meta.platform,
            inputs=[codec.tensor_metadata(s) for s in meta.inputs],
            outputs=[codec.tensor_metadata(s) for s in meta.outputs],
        )

    # -- inference ----------------------------------------------------------------------------
    async def ModelInfer(  # noqa: RET503  # every path returns or raises: _abort() raises
            self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        started = time.perf_counter()
        name = request.model_name
        model_version = ""  # the metrics label: only a version that parsed (as REST)
        request_id = request.id or _metadata_request_id(context) or new_request_id()
        status = 500
        error: Exception
        self.metrics.inflight.inc()
        try:
            version = _version(request.model_version)
            model_version = "" if version is None else str(version)
            req = codec.decode_request(request)
            wanted = [o.name for o in req.outputs] if req.outputs else None
            prediction = await self.plane.infer(
                name, v2.to_model_input(req), version=version, request_id=request_id,
                route=_ROUTE, outputs=wanted,
                headers=functools.partial(_metadata_value, context))
            model_version = str(prediction.model_version)
            response = codec.encode_response(
                name, model_version, request.id, prediction.outputs,
                raw=bool(request.raw_input_contents))
            context.set_trailing_metadata((("x-request-id", request_id),))
            status = 200
            return response
        except ModelyardError as exc:
            status, error = status_of(exc), exc
        except Exception as exc:  # a bug must not take the server down: answer INTERNAL
            log.exception("unhandled error in ModelInfer for %r", name)
            error = exc
        finally:
            # Recorded before the answer leaves: context.abort() sends the status first.
            self.metrics.inflight.dec()
            self.metrics.answered(name, model_version, _ROUTE, status,
                                  time.perf_counter() - started)
        await _abort(context, error, request_id)

    # -- repository extension ----------------------------------------------------------------
    @_answers_errors
    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest,
                              context: Any) -> pb.RepositoryIndexResponse:
        # One repository (the registry): repository_name is not checked.
        entries = self.plane.repository_index()
        if request.ready:
            entries = [e for e in entries if e["state"] == "READY"]
        return pb.RepositoryIndexResponse(models=[
            pb.RepositoryIndexResponse.ModelIndex(
                name=e["name"], version=e.get("version", ""), state=e["state"],
                reason=e["reason"])
            for e in entries
        ])

    @_answers_errors
    async def RepositoryModelLoad(self, request: pb.RepositoryModelLoadRequest,
                                  context: Any) -> pb.RepositoryModelLoadResponse:
        name = _repository_model_name(request)
        ref = None
        if "ref" in request.parameters:
            param = request.parameters["ref"]
            if param.WhichOneof("parameter_choice") != "string_param":
                raise InvalidInputError(
                    "The load parameter 'ref' must be a string_param such as "
                    "'models:/fraud@production'.")
            ref = param.string_param
        await self.plane.load_model(name, ref)
        return pb.RepositoryModelLoadResponse()

    @_answers_errors
    async def RepositoryModelUnload(self, request: pb.RepositoryModelUnloadRequest,
                                    context: Any) -> pb.RepositoryModelUnloadResponse:
        await self.plane.unload_model(_repository_model_name(request))
        return pb.RepositoryModelUnloadResponse()


def _repository_model_name(
    request: pb.RepositoryModelLoadRequest | pb.RepositoryModelUnloadRequest,
) -> str:
    # KServe's own proto numbers model_name 1 (Triton's repository_name), so a KServe client's
    # model name arrives there; Triton and MLServer clients set model_name (2).
    name = request.model_name or request.repository_name
    if not name:
        raise InvalidInputError("The request names no model; set model_name.")
    return name


# -- authentication ---------------------------------------------------------------------------

_DENIAL_CODES = {401: grpc.StatusCode.UNAUTHENTICATED, 403: grpc.StatusCode.PERMISSION_DENIED,
                 429: grpc.StatusCode.RESOURCE_EXHAUSTED}


def _model_of(method: str) -> Callable[[Any], str | None]:
    """How to find the model a call of ``method`` touches, in its request message."""
    if method in ("ModelReady", "ModelMetadata"):
        return lambda request: request.name or None
    if method == "ModelInfer":
        return lambda request: request.model_name or None
    if method in ("RepositoryModelLoad", "RepositoryModelUnload"):
        return lambda request: request.model_name or request.repository_name or None
    return lambda request: None


def _peer_host(context: Any) -> str | None:
    peer = str(context.peer() or "")  # "ipv4:10.0.0.7:51234", "ipv6:[::1]:51234"
    _, _, address = peer.partition(":")
    return address.rpartition(":")[0].strip("[]") or None


class _AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """Checks every call with the guard before its handler runs, from the metadata
    ``authorization: Bearer <key>`` or ``x-api-key: <key>``. The model is read from the
    request message, so the check wraps each method's handler (built once per method)."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self._wrapped: dict[str, Any] = {}

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]],
                                details: Any) -> Any:
        method: str = details.method
        wrapped = self._wrapped.get(method)
        if wrapped is None:
            handler = await continuation(details)
            if handler is None or handler.unary_unary is None:
                return handler  # UNIMPLEMENTED (or a streaming method this service lacks)
            wrapped = self._wrapped[method] = self._wrap(method, handler)
        return wrapped

    def _wrap(self, method: str, handler: Any) -> Any:
        short = method.rpartition("/")[2]
        # A method the policy does not list needs admin (the guard's default for "").
        operation = GRPC_OPERATIONS.get(short, "")
        model_of = _model_of(short)
        inner = handler.unary_unary
        guard = self.guard

        async def guarded(request: Any, context: Any) -> Any:
            if not guard.active:  # keys off (auth=auto with none yet) and no rate limit
                return await inner(request, context)
            authorization = api_key = None
            for key, value in context.invocation_metadata() or ():
                if key == "authorization":
                    authorization = value
                elif key == "x-api-key":
                    api_key = value
            verdict = guard.check(bearer_token(authorization, api_key), operation,
                                  model_of(request),
                                  _peer_host(context) if guard.limiter is not None else None)
            if isinstance(verdict, Denial):
                trailing = (() if verdict.retry_after_s is None
                            else (("retry-after", str(verdict.retry_after_s)),))
                await context.abort(_DENIAL_CODES[verdict.status], verdict.message,
                                    trailing_metadata=trailing)
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            guarded, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)


# -- the server -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GrpcServer:
    """A started gRPC server and the port it bound (the real one when asked for port 0)."""

    server: Any  # grpc.aio.Server
    host: str
    port: int

    @property
    def address(self) -> str:
        return _address(self.host, self.port)

    async def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, give running ones ``grace`` seconds, then cancel them."""
        await self.server.stop(grace)


def _address(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    return f"{host}:{port}"


async def start_grpc_server(plane: DataPlane, host: str = "127.0.0.1",
                            port: int = 8081, *, tls: TlsFiles | None = None,
                            guard: Guard | None = None) -> GrpcServer:
    """Serve ``plane`` over gRPC on ``host:port`` in the running event loop; port 0 picks a
    free port (``GrpcServer.port`` says which). Loading the models is the caller's business
    (``await pool.start()``), as for the REST app. With ``tls`` (checked by
    :func:`modelyard.security.tls.load_tls`), the port speaks TLS only. With ``guard``, every
    call is authenticated, authorized and rate-limited before its handler runs.

    Raises :class:`~modelyard.errors.ConfigurationError` when the address cannot be bound.
    """
    interceptors = [_AuthInterceptor(guard)] if guard is not None else None
    server = grpc.aio.server(interceptors=interceptors, options=[
        # The same limit as the REST body; gRPC's own default is 4 MiB.
        ("grpc.max_receive_message_length", plane.settings.max_body_bytes),
        ("grpc.max_send_message_length", -1),
        # SO_REUSEPORT stays on (gRPC's default) so that `--workers N` processes can all
        # bind the gRPC port and the kernel spreads connections over them.
    ])
    # The generated module has no annotations.
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(  # type: ignore[no-untyped-call]
        InferenceServicer(plane), server)
    address = _address(host, port)
    try:
        if tls is None:
            bound = server.add_insecure_port(address)
        else:
            credentials = grpc.ssl_server_credentials([(tls.key_pem, tls.cert_pem)])
            bound = server.add_secure_port(address, credentials)
    except RuntimeError as exc:  # grpcio >= 1.59 raises; older versions return 0
        bound, reason = 0, str(exc)
    else:
        reason = "no port was bound"
    if not bound:
        await server.stop(None)
        raise ConfigurationError(
            f"The gRPC server cannot listen on {address}: {reason}.",
            hint="Choose another serving.grpc_port (or --grpc-port), or --no-grpc.",
        )
    await server.start()
    log.info("gRPC server listening on %s%s", _address(host, bound),
             "" if tls is None else " (TLS)")
    return GrpcServer(server, host, bound)
