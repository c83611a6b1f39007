"""The plain REST API: `POST /predict`."""

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from model_deployment_app.api.body import json_response, read_json
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


def rest_router(plane: DataPlane) -> APIRouter:
    router = APIRouter(tags=["predict"])
    limits = plane.settings.server

    @router.post("/predict", openapi_extra={"requestBody": _PREDICT_BODY})
    async def predict(request: Request) -> Response:
        """Classification: a probability row per instance and the classes; regression: values."""
        model = plane.require_model()
        payload = await read_json(request, limits.max_body_bytes)
        rows = to_rows(_instances(payload), model.input_size, limits.max_rows)
        predictions = await plane.infer(rows, model.default_output)
        if model.classes is not None:
            return json_response({"predictions": predictions, "classes": model.classes})
        return json_response({"predictions": predictions})

    return router
