"""The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`), served by the same
data plane as HTTP: cache, batching, metrics, and errors as gRPC status codes with the same
messages. Each worker runs its own asyncio gRPC server on the event loop of its HTTP server."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import numpy as np
from google.protobuf.message import DecodeError

from model_deployment_app import v2
from model_deployment_app.access import TWO_TOKENS, Access, Kind
from model_deployment_app.api.middleware import RequestRecorder
from model_deployment_app.codecs.raw import to_raw
from model_deployment_app.codecs.v2 import datatype_of, read_tensors
from model_deployment_app.errors import MalformedRequest, NotReady, ServingError, StartupError
from model_deployment_app.grpc_v2 import grpc_predict_v2_pb2 as pb
from model_deployment_app.payload_log import Exchange, PayloadLog
from model_deployment_app.repository import Repository
from model_deployment_app.tracing import Tracing

log = logging.getLogger(__name__)

SERVICE = "inference.GRPCInferenceService"
_METHODS = pb.DESCRIPTOR.services_by_name[SERVICE.split(".")[-1]].methods
ROUTES = {method.name: f"/{SERVICE}/{method.name}" for method in _METHODS}  # metrics' labels

_STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,  # a new version refused: the old one serves on
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
}

# The typed `contents` field of each datatype, and the dtype its values are read into (wide
# enough to hold any value the field can carry; the column codec narrows with range checks).
_CONTENTS: dict[str, tuple[str, Any]] = {
    "BOOL": ("bool_contents", np.bool_),
    "INT8": ("int_contents", np.int64),
    "INT16": ("int_contents", np.int64),
    "INT32": ("int_contents", np.int64),
    "INT64": ("int64_contents", np.int64),
    "UINT8": ("uint_contents", np.uint64),
    "UINT16": ("uint_contents", np.uint64),
    "UINT32": ("uint_contents", np.uint64),
    "UINT64": ("uint64_contents", np.uint64),
    "FP32": ("fp32_contents", np.float32),
    "FP64": ("fp64_contents", np.float64),
    "BYTES": ("bytes_contents", object),
}


def _inputs(request: pb.ModelInferRequest) -> list[dict[str, Any]]:
    """The request's inputs as the V2 codec reads them: raw bytes, or typed contents."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise MalformedRequest(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs")
    inputs = []
    for index, tensor in enumerate(request.inputs):
        data: Any
        if raw:
            data = bytes(raw[index])
        else:
            field, dtype = _CONTENTS.get(tensor.datatype, (None, None))
            values = getattr(tensor.contents, field) if field else []
            data = np.array(list(values) if dtype is object else values, dtype=dtype)
        inputs.append(
            {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape),
             "data": data}
        )  # fmt: skip
    return inputs


def _infer_response(
    model: Any, request_id: str, results: list[tuple[str, np.ndarray]]
) -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(
        model_name=model.name, model_version=model.version, id=request_id
    )
    for name, values in results:
        response.outputs.add(name=name, datatype=datatype_of(values), shape=list(values.shape))
        response.raw_output_contents.append(to_raw(values))
    return response


def _peer_address(peer: str) -> str:
    """`ipv4:127.0.0.1:5000` or `ipv6:[::1]:5000` as the bare address."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rpartition("]")[0].lstrip("[")
    return rest.rpartition(":")[0] or rest


class InferenceServicer:
    """Every RPC of the service (`_add_to_server` registers each one, with its parsing)."""

    def __init__(
        self,
        repository: Repository,
        recorder: RequestRecorder,
        access: Access | None = None,
        payload_log: PayloadLog | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.repository = repository
        self.payload_log = payload_log
        self.tracing = tracing
        self.max_rows = repository.settings.server.max_rows
        self.recorder = recorder
        self.access = access  # the admin call asks it always (off without admin tokens)
        self.guarded = access is not None and access.guards  # every call asks it

    async def _guard(self, context: grpc.aio.ServicerContext, kind: Kind) -> None:
        """The same policy as HTTP, with the token from the `authorization` metadata."""
        assert self.access is not None
        entries = context.invocation_metadata() or ()
        metadata = dict(entries)
        if sum(1 for key, _ in entries if key == "authorization") > 1:
            raise TWO_TOKENS
        await self.access.check(
            kind, metadata.get("authorization"), _peer_address(context.peer()),
            metadata.get("x-forwarded-for"),
        )  # fmt: skip

    async def _answer(
        self,
        method: str,
        context: grpc.aio.ServicerContext,
        work: Callable[[], Awaitable[Any]],
        model: str = "",
        exchange: Exchange | None = None,
        kind: Kind = "api",
    ) -> Any:
        """Run `work`; a refusal becomes the gRPC status of its HTTP code, same message.
        `exchange`: the call's payload record, finished with the status. `kind`: what the
        access policy sees the call as (the repository load is `admin`)."""
        started = time.perf_counter()
        status, message = 200, ""
        span = None
        if self.tracing is not None:
            span = self.tracing.request(
                f"{SERVICE}/{method}", context.invocation_metadata() or (),
                **{"rpc.method": method, "mda.model": model},
            )  # fmt: skip
            if exchange is not None:
                exchange.trace_id = self.tracing.trace_id(span)
        try:
            if self.guarded or kind == "admin":
                await self._guard(context, kind)
            return await work()
        except asyncio.CancelledError:  # past its deadline, or the client went away
            status, message = 499, "cancelled: past its deadline, or the client went away"
            raise
        except ServingError as error:
            status = error.status_code
            code = _STATUS_CODES.get(status, grpc.StatusCode.INTERNAL)
            message = error.message
        except Exception:
            status = 500
            log.exception("gRPC %s failed", method)
            code, message = grpc.StatusCode.INTERNAL, "internal server error"
        finally:
            self.recorder.record(ROUTES[method], "GRPC", status, started, model)
            if exchange is not None:
                context.set_trailing_metadata((("x-request-id", exchange.request_id),))
                self.payload_log.finish(exchange, status, message)  # type: ignore[union-attr]
            if span is not None:
                self.tracing.ended(span, status, message)  # type: ignore[union-attr]
        await context.abort(code, message)

    async def ServerLive(self, request: Any, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.repository.ready)

    async def ServerMetadata(self, request: Any, context: Any) -> pb.ServerMetadataResponse:
        async def work() -> pb.ServerMetadataResponse:
            return pb.ServerMetadataResponse(**v2.server_metadata())

        return await self._answer("ServerMetadata", context, work)

    async def ModelReady(self, request: Any, context: Any) -> pb.ModelReadyResponse:
        async def work() -> pb.ModelReadyResponse:
            plane = self.repository.named(request.name)
            if plane.model is None and plane.loadable and not request.version:
                return pb.ModelReadyResponse(ready=True)  # a pool's: loaded when asked for
            try:
                await v2.model_for(plane, request.name, request.version)
            except NotReady:
                return pb.ModelReadyResponse(ready=False)
            return pb.ModelReadyResponse(ready=True)

        return await self._answer("ModelReady", context, work)

    async def ModelMetadata(self, request: Any, context: Any) -> pb.ModelMetadataResponse:
        async def work() -> pb.ModelMetadataResponse:
            plane = self.repository.named(request.name)
            meta = v2.metadata(await v2.model_for(plane, request.name, request.version))
            meta.pop("parameters")  # the gRPC message has no parameters
            return pb.ModelMetadataResponse(**meta)

        return await self._answer("ModelMetadata", context, work)

    async def ModelInfer(self, request: Any, context: Any) -> pb.ModelInferResponse:
        async def work() -> pb.ModelInferResponse:
            plane = self.repository.named(request.model_name)
            model = await v2.model_for(plane, request.model_name, request.model_version)
            tensors = read_tensors({"inputs": _inputs(request)}, self.max_rows)
            names = v2.requested_outputs([o.name for o in request.outputs], model)
            results = await v2.infer(plane, model, tensors, names)
            return _infer_response(model, request.id, results)

        name = request.model_name  # a label only when it is one the server serves
        label = name if name in self.repository.planes else ""
        exchange = None
        if self.payload_log is not None:
            metadata = dict(context.invocation_metadata() or ())
            request_id = metadata.get("x-request-id") or request.id or None
            exchange = self.payload_log.begin(
                request_id, label or self._only_name(), f"/{SERVICE}/ModelInfer", "grpc"
            )
        return await self._answer("ModelInfer", context, work, label, exchange)

    async def RepositoryIndex(self, request: Any, context: Any) -> pb.RepositoryIndexResponse:
        async def work() -> pb.RepositoryIndexResponse:
            entries = self.repository.index()
            if request.ready:
                entries = [entry for entry in entries if entry["state"] == "READY"]
            return pb.RepositoryIndexResponse(
                models=[pb.RepositoryIndexResponse.ModelIndex(**entry) for entry in entries]
            )

        return await self._answer("RepositoryIndex", context, work)

    async def RepositoryModelLoad(
        self, request: Any, context: Any
    ) -> pb.RepositoryModelLoadResponse:
        """As `POST /v2/repository/models/{name}/load`: an admin call (MDA_ADMIN_TOKENS_FILE)."""

        async def work() -> pb.RepositoryModelLoadResponse:
            plane = self.repository.named(request.model_name)
            watcher = self.repository.watchers.get(plane.name)
            await v2.load(plane, watcher, request.model_name)
            return pb.RepositoryModelLoadResponse()

        return await self._answer("RepositoryModelLoad", context, work, kind="admin")

    def _only_name(self) -> str:
        only = self.repository.only
        return only.name if only is not None else ""


def _add_to_server(servicer: InferenceServicer, server: grpc.aio.Server) -> None:
    """Each RPC of the service, its request parsed here rather than by grpcio: a body that is
    not the call's message is an INVALID_ARGUMENT that names it (grpcio would say UNKNOWN)."""
    handlers = {}
    for method in _METHODS:
        request_type = getattr(pb, method.input_type.name)
        response_type = getattr(pb, method.output_type.name)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _parsed(servicer, method.name, request_type),
            response_serializer=response_type.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)


def _parsed(
    servicer: InferenceServicer, name: str, request_type: Any
) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[Any]]:
    rpc, route, expected = getattr(servicer, name), ROUTES[name], request_type.DESCRIPTOR.full_name

    async def handle(body: bytes, context: grpc.aio.ServicerContext) -> Any:
        try:
            request = request_type.FromString(body)
        except DecodeError as error:
            servicer.recorder.record(route, "GRPC", 400, time.perf_counter())
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"the request is not an {expected}: {error}"
            )
        return await rpc(request, context)

    return handle


async def start_grpc_server(
    repository: Repository,
    recorder: RequestRecorder,
    host: str,
    port: int,
    shared_port: bool,
    access: Access | None = None,
    payload_log: PayloadLog | None = None,
    tracing: Tracing | None = None,
) -> grpc.aio.Server:
    """Serve V2 over gRPC on host:port; `shared_port` lets every pre-forked worker bind it."""
    limit = repository.settings.server.max_body_bytes
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 1 if shared_port else 0),
        ]
    )
    _add_to_server(InferenceServicer(repository, recorder, access, payload_log, tracing), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        server.add_insecure_port(address)
    except RuntimeError as error:
        raise StartupError(f"cannot listen for gRPC on {address}: {error}") from None
    await server.start()
    return server
