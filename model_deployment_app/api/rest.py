"""The plain REST API: `POST /predict`."""

from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from model_deployment_app.api.body import (
    check_row_count,
    decode,
    json_response,
    parse_json,
    read_body,
)
from model_deployment_app.api.errors import documented_errors
from model_deployment_app.api.fastpath import Endpoint
from model_deployment_app.codecs.rest import decode_predict
from model_deployment_app.handler import DataPlane
from model_deployment_app.inputs import ModelInput
from model_deployment_app.schema import InputSchema

_ROWS = {"type": "array", "items": {"type": "array"}, "minItems": 1}
_RECORDS = {"type": "array", "items": {"type": "object"}, "minItems": 1}
_VALUES = {"type": "array", "items": {"type": ["string", "number", "boolean"]}, "minItems": 1}

_PREDICT_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {
                        "type": "object",
                        "description": "Rows in column order, records of named columns, or "
                        "one value per row (a one-input model, e.g. text).",
                        "properties": {"instances": {"oneOf": [_ROWS, _RECORDS, _VALUES]}},
                        "required": ["instances"],
                    },
                    {
                        "type": "object",
                        "description": "MLflow's split DataFrame layout.",
                        "properties": {
                            "dataframe_split": {
                                "type": "object",
                                "properties": {
                                    "columns": {"type": "array", "items": {"type": "string"}},
                                    "data": _ROWS,
                                },
                                "required": ["columns", "data"],
                            }
                        },
                        "required": ["dataframe_split"],
                    },
                    {
                        "type": "object",
                        "description": "MLflow's records DataFrame layout.",
                        "properties": {"dataframe_records": _RECORDS},
                        "required": ["dataframe_records"],
                    },
                    {**_ROWS, "description": "A bare array of rows."},
                ]
            },
            "examples": {
                "rows": {"value": {"instances": [[5.1, 3.5, 1.4, 0.2]]}},
                "records": {"value": {"instances": [{"age": 31, "city": "Paris"}]}},
                "text": {"value": {"instances": ["a great film"]}},
                "dataframe_split": {
                    "value": {
                        "dataframe_split": {"columns": ["age", "city"], "data": [[31, "Paris"]]}
                    }
                },
                "dataframe_records": {
                    "value": {"dataframe_records": [{"age": 31, "city": "Paris"}]}
                },
            },
        }
    },
}


def _decode(body: bytes, schema: InputSchema, max_rows: int) -> ModelInput:
    # Booleans are only possible where the JSON spells them: a byte search is cheaper than
    # looking at every value's type.
    bools_possible = b"true" in body or b"false" in body
    return decode_predict(parse_json(body), schema, max_rows, bools_possible=bools_possible)


def predict_endpoint(plane: DataPlane) -> Endpoint:
    limits = plane.settings.server
    track = limits.track

    async def predict(request: Request) -> Response:
        """Classification: a probability row per instance and the classes; regression: values."""
        model = plane.require_model()
        body = await read_body(request, limits.max_body_bytes)
        if model.schema.layout == "tensor":
            check_row_count(body, limits.max_rows)
        rows = await decode(body, partial(_decode, schema=model.schema, max_rows=limits.max_rows))
        predictions = await plane.infer(model, rows, model.default_output)
        version = {"model-version": model.version, "model-track": track}  # who answered
        if model.classes is not None:
            payload = {"predictions": predictions, "classes": model.classes}
            return json_response(payload, headers=version)
        return json_response({"predictions": predictions}, headers=version)

    return predict


def rest_router(predict: Endpoint) -> APIRouter:
    router = APIRouter(tags=["predict"])
    router.add_api_route(
        "/predict",
        predict,
        methods=["POST"],
        openapi_extra={"requestBody": _PREDICT_BODY},
        responses=documented_errors(400, 408, 413, 415, 422, 503),
    )
    return router
