"""The Open Inference Protocol (V2) routes, as KServe and MLServer speak it."""

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import Response

from model_deployment_app import __version__
from model_deployment_app.api.body import json_response, read_json
from model_deployment_app.api.fastpath import Endpoint
from model_deployment_app.codecs.v2 import datatype_of, decode_inputs, read_tensors
from model_deployment_app.errors import InvalidInput, ModelNotFound
from model_deployment_app.handler import DataPlane
from model_deployment_app.predictor import PREDICT_PROBA, LoadedModel

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


def _requested_outputs(payload: dict[str, Any], model: LoadedModel) -> list[str]:
    wanted = payload.get("outputs")
    if wanted is None:
        return [model.default_output]
    if not isinstance(wanted, list) or not all(isinstance(o, dict) for o in wanted):
        raise InvalidInput('"outputs" must be a list of {"name": ...}')
    return [model.check_output(str(o.get("name"))) for o in wanted] or [model.default_output]


def _output_tensor(name: str, values: np.ndarray, model: LoadedModel) -> dict[str, Any]:
    flat = values.ravel()
    tensor: dict[str, Any] = {
        "name": name,
        "shape": list(values.shape),
        "datatype": datatype_of(values),
        "data": flat if flat.dtype.kind in "fiub" else flat.tolist(),
    }
    if name == PREDICT_PROBA:
        tensor["parameters"] = {"classes": model.classes}
    return tensor


def _input_metadata(model: LoadedModel) -> list[dict[str, Any]]:
    schema = model.schema
    if schema.layout == "tensor":
        return [{"name": "input-0", "datatype": "FP64", "shape": [-1, schema.width]}]
    return [{"name": c.name, "datatype": c.datatype, "shape": [-1]} for c in schema]


def _metadata(model: LoadedModel) -> dict[str, Any]:
    outputs = []
    for name in model.outputs:
        columns = model.output_width if name == PREDICT_PROBA or model.job == "regression" else None
        shape = [-1] if columns is None else [-1, columns]
        datatype = "FP64" if name == PREDICT_PROBA or model.job == "regression" else "BYTES"
        outputs.append({"name": name, "datatype": datatype, "shape": shape})
    return {
        "name": model.name,
        "versions": [model.sha256[:12]],
        "platform": model.platform,
        "inputs": _input_metadata(model),
        "outputs": outputs,
        "parameters": {"job": model.job, "classes": model.classes, "sha256": model.sha256},
    }


def model_for(plane: DataPlane, name: str) -> LoadedModel:
    model = plane.require_model()
    if name != model.name:
        raise ModelNotFound(f"model {name!r} not found; this server serves {model.name!r}")
    return model


def v2_router(plane: DataPlane, infer: Endpoint) -> APIRouter:
    router = APIRouter(prefix="/v2", tags=["v2"])

    @router.get("/health/live")
    async def live() -> Response:
        return json_response({"live": True})

    @router.get("/health/ready")
    async def ready() -> Response:
        plane.require_model()
        return json_response({"ready": True})

    @router.get("")
    async def server_metadata() -> Response:
        return json_response(
            {"name": "model_deployment_app", "version": __version__, "extensions": []}
        )

    @router.get("/models/{name}")
    async def model_metadata(name: str) -> Response:
        return json_response(_metadata(model_for(plane, name)))

    @router.get("/models/{name}/ready")
    async def model_ready(name: str) -> Response:
        model_for(plane, name)
        return json_response({"name": name, "ready": True})

    router.add_api_route(
        "/models/{name}/infer",
        infer,
        methods=["POST"],
        openapi_extra={
            "requestBody": _INFER_BODY,
            "parameters": [{"name": "name", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
        },
    )  # fmt: skip
    return router


def infer_endpoint(plane: DataPlane) -> Endpoint:
    limits = plane.settings.server

    async def infer(request: Request) -> Response:
        """Open Inference Protocol inference: one tensor [rows, inputSize], or one per column."""
        model = model_for(plane, request.path_params["name"])
        payload = await read_json(request, limits.max_body_bytes)
        rows = decode_inputs(read_tensors(payload), model.schema, limits.max_rows)
        outputs = []
        for output in _requested_outputs(payload, model):
            values = await plane.infer(rows, output)
            outputs.append(_output_tensor(output, values, model))
        reply: dict[str, Any] = {
            "model_name": model.name,
            "model_version": model.sha256[:12],
            "outputs": outputs,
        }
        if isinstance(payload.get("id"), str):
            reply["id"] = payload["id"]
        return json_response(reply)

    return infer
