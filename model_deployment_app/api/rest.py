"""The plain REST API: `POST /predict`."""

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from model_deployment_app.api.body import json_response, read_json
from model_deployment_app.api.fastpath import Endpoint
from model_deployment_app.errors import InvalidInput
from model_deployment_app.handler import DataPlane
from model_deployment_app.rows import to_rows

_PREDICT_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {
                        "type": "object",
                        "properties": {"instances": {"type": "array", "items": {"type": "array"}}},
                        "required": ["instances"],
                    },
                    {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
                ]
            },
            "example": {"instances": [[5.1, 3.5, 1.4, 0.2]]},
        }
    },
}


def _instances(payload: Any) -> Any:
    if isinstance(payload, dict):
        if "instances" not in payload:
            raise InvalidInput('expected {"instances": [[...], ...]} or a JSON array of rows')
        return payload["instances"]
    return payload


def predict_endpoint(plane: DataPlane) -> Endpoint:
    limits = plane.settings.server

    async def predict(request: Request) -> Response:
        """Classification: a probability row per instance and the classes; regression: values."""
        model = plane.require_model()
        payload = await read_json(request, limits.max_body_bytes)
        rows = to_rows(_instances(payload), model.input_size, limits.max_rows)
        predictions = await plane.infer(rows, model.default_output)
        if model.classes is not None:
            return json_response({"predictions": predictions, "classes": model.classes})
        return json_response({"predictions": predictions})

    return predict


def rest_router(predict: Endpoint) -> APIRouter:
    router = APIRouter(tags=["predict"])
    router.add_api_route(
        "/predict", predict, methods=["POST"], openapi_extra={"requestBody": _PREDICT_BODY}
    )
    return router
