"""The Open Inference Protocol (V2) over HTTP, as KServe, MLServer and Triton speak it: JSON,
or the binary tensor data extension, on `/v2/models/{name}[/versions/{version}]/...`."""

from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from model_deployment_app import v2
from model_deployment_app.api.body import (
    BytesResponse,
    check_row_count,
    decode,
    header,
    json_response,
    parse_json,
    read_body,
)
from model_deployment_app.api.errors import documented_errors
from model_deployment_app.api.fastpath import Endpoint
from model_deployment_app.api.middleware import MODEL_KEY
from model_deployment_app.codecs import v2_binary
from model_deployment_app.codecs.v2 import Tensor, datatype_of, read_tensors
from model_deployment_app.errors import InvalidInput, NotReady
from model_deployment_app.repository import Repository

_INFER_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "examples": {
                "tensor": {
                    "summary": "A model of inputSize numbers: one [rows, inputSize] tensor",
                    "value": {
                        "inputs": [
                            {
                                "name": "input-0",
                                "shape": [1, 4],
                                "datatype": "FP64",
                                "data": [5.1, 3.5, 1.4, 0.2],
                            }
                        ],
                        "outputs": [{"name": "predict_proba"}],
                    },
                },
                "columns": {
                    "summary": "A model with named inputs: one tensor per column",
                    "value": {
                        "inputs": [
                            {"name": "age", "shape": [2], "datatype": "INT64", "data": [31, 45]},
                            {
                                "name": "city",
                                "shape": [2],
                                "datatype": "BYTES",
                                "data": ["Paris", "Lyon"],
                            },
                        ],
                        "parameters": {"content_type": "pd"},
                    },
                },
            }
        }
    },
}


_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_VERSION = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}


def _output_names(payload: dict[str, Any]) -> list[str]:
    wanted = payload.get("outputs")
    if wanted is None:
        return []
    if not isinstance(wanted, list) or not all(isinstance(o, dict) for o in wanted):
        raise InvalidInput('"outputs" must be a list of {"name": ...}')
    return [str(o.get("name")) for o in wanted]


def _output_tensor(name: str, values: Any) -> dict[str, Any]:
    flat = values.ravel()
    return {
        "name": name,
        "shape": list(values.shape),
        "datatype": datatype_of(values),
        "data": flat if flat.dtype.kind in "fiub" else flat.tolist(),
    }


def _read_json_request(body: bytes, max_rows: int) -> tuple[Any, list[Tensor]]:
    payload = parse_json(body)
    return payload, read_tensors(payload, max_rows)


def v2_router(repository: Repository, infer: Endpoint) -> APIRouter:
    router = APIRouter(prefix="/v2", tags=["v2"])

    @router.get("/health/live")
    async def live() -> Response:
        return json_response({"live": True})

    @router.get("/health/ready", responses=documented_errors(503))
    async def ready(request: Request) -> Response:
        """The server's readiness; under a pool's `/<name>`, that model's (loaded, or loaded
        on its next request)."""
        if MODEL_KEY in request.scope:
            plane = repository.for_scope(request.scope)
            if not plane.loadable:
                plane.require_model()
        elif not repository.ready:
            if repository.only is not None:
                repository.only.require_model()
            raise NotReady("the pool is still loading its models; try again shortly")
        return json_response({"ready": True})

    @router.get("")
    async def server_metadata() -> Response:
        return json_response(v2.server_metadata())

    async def model_of(request: Request, name: str, version: str | None = None) -> Any:
        return await v2.model_for(repository.for_v2(request.scope, name), name, version)

    @router.get("/models/{name}", responses=documented_errors(401, 404, 429, 503))
    async def model_metadata(request: Request, name: str) -> Response:
        return json_response(v2.metadata(await model_of(request, name)))

    @router.get("/models/{name}/versions/{version}", responses=documented_errors(404, 503))
    async def version_metadata(request: Request, name: str, version: str) -> Response:
        return json_response(v2.metadata(await model_of(request, name, version)))

    @router.get("/models/{name}/ready", responses=documented_errors(404, 503))
    async def model_ready(request: Request, name: str) -> Response:
        plane = repository.for_v2(request.scope, name)
        if plane.model is None and plane.loadable:  # a pool's: loaded when asked for
            return json_response({"name": name, "ready": True})
        await v2.model_for(plane, name)
        return json_response({"name": name, "ready": True})

    @router.get("/models/{name}/versions/{version}/ready", responses=documented_errors(404, 503))
    async def version_ready(request: Request, name: str, version: str) -> Response:
        await model_of(request, name, version)
        return json_response({"name": name, "ready": True})

    for path, parameters in (
        ("/models/{name}/infer", [_NAME]),
        ("/models/{name}/versions/{version}/infer", [_NAME, _VERSION]),
    ):
        router.add_api_route(
            path,
            infer,
            methods=["POST"],
            openapi_extra={"requestBody": _INFER_BODY, "parameters": parameters},
            responses=documented_errors(400, 401, 404, 408, 413, 415, 422, 429, 503),
        )
    return router


def infer_endpoint(repository: Repository) -> Endpoint:
    limits = repository.settings.server

    async def infer(request: Request) -> Response:
        """Open Inference Protocol inference: one tensor [rows, inputSize], or one per column;
        JSON or the binary tensor data extension."""
        params = request.path_params
        name = params["name"]
        plane = repository.for_v2(request.scope, name)
        model = await v2.model_for(plane, name, params.get("version"))
        body = await read_body(request, limits.max_body_bytes)
        header_length = header(request, v2_binary.HEADER_LENGTH)
        if header_length is None:
            if model.schema.layout == "tensor":
                check_row_count(body, limits.max_rows)
            read = partial(_read_json_request, max_rows=limits.max_rows)
            payload, tensors = await decode(body, read)
        else:
            read = partial(
                v2_binary.read_request, header_value=header_length, max_rows=limits.max_rows
            )
            payload, tensors = await decode(body, read)
        names = v2.requested_outputs(_output_names(payload), model)
        results = await v2.infer(plane, model, tensors, names)
        reply: dict[str, Any] = {
            "model_name": model.name,
            "model_version": model.version,
            "outputs": [_output_tensor(name, values) for name, values in results],
        }
        if isinstance(payload.get("id"), str):
            reply["id"] = payload["id"]
        binary = {n: values for n, values in results if v2_binary.wants_binary(payload, n)}
        if not binary:
            return json_response(reply)
        content, header_size = v2_binary.encode_response(reply, binary)
        length = (b"inference-header-content-length", str(header_size).encode())
        return BytesResponse(content, raw=[length], media_type=b"application/octet-stream")

    return infer
