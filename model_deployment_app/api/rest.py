"""The plain REST API: `POST /predict`."""

from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from model_deployment_app.api.body import (
    HUGE_INTEGER,
    OFF_LOOP_BYTES,
    check_row_count,
    decode,
    json_response,
    parse_json,
    parse_json_exactly,
    read_body,
)
from model_deployment_app.api.errors import documented_errors
from model_deployment_app.api.fastpath import Endpoint
from model_deployment_app.codecs.rest import decode_predict
from model_deployment_app.errors import InvalidInput
from model_deployment_app.inputs import ModelInput
from model_deployment_app.repository import Repository
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
    try:
        return decode_predict(parse_json(body), schema, max_rows)
    except InvalidInput:
        if HUGE_INTEGER.search(body) is None:
            raise
        # Refused, and an integer past 64 bits may be why: refuse it as the client wrote it.
        return decode_predict(parse_json_exactly(body), schema, max_rows)


def predict_endpoint(repository: Repository) -> Endpoint:
    limits = repository.settings.server
    track = (b"model-track", limits.track.encode())

    async def predict(request: Request) -> Response:
        """Classification: a probability row per instance and the classes; regression: values."""
        plane = repository.for_scope(request.scope)
        model = await plane.acquire()
        body = await read_body(request, limits.max_body_bytes)
        if len(body) < OFF_LOOP_BYTES:  # the usual case, decoded here and now
            rows = _decode(body, model.schema, limits.max_rows)
        else:
            if model.schema.layout == "tensor":
                check_row_count(body, limits.max_rows)
            decoder = partial(_decode, schema=model.schema, max_rows=limits.max_rows)
            rows = await decode(body, decoder)
        predictions = await plane.infer(model, rows, model.default_output)
        answered = [(b"model-version", model.version_bytes), track]  # who answered
        if model.classes is not None:
            payload = {"predictions": predictions, "classes": model.classes}
            return json_response(payload, raw=answered)
        return json_response({"predictions": predictions}, raw=answered)

    return predict


def rest_router(predict: Endpoint) -> APIRouter:
    router = APIRouter(tags=["predict"])
    router.add_api_route(
        "/predict",
        predict,
        methods=["POST"],
        openapi_extra={"requestBody": _PREDICT_BODY},
        responses=documented_errors(400, 401, 408, 413, 415, 422, 429, 503),
    )
    return router
