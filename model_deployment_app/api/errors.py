"""The one place errors become responses: `{"error": "<message>"}` with the right status."""

import logging

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from model_deployment_app.api.body import json_response
from model_deployment_app.errors import ServingError

log = logging.getLogger(__name__)


_ERROR_BODY = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            }
        }
    }
}
_MEANINGS = {
    400: "Malformed JSON or binary body",
    404: "No such model or version",
    408: "The body did not arrive in time",
    401: "No bearer token, or one the server does not accept (when tokens are on)",
    403: "A prediction token on the admin route, or the admin route is off",
    409: "The source's new model version was refused; the old one keeps serving",
    413: "Body or row count over the limit",
    415: "Content-Encoding other than gzip",
    422: "Input the model cannot take; the message names the row",
    429: "Over the caller's rate limit; Retry-After says when to try again",
    503: "The model is not ready, or the server is shutting down",
}


def documented_errors(*codes: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI `responses` for the error answers a route gives, all `{"error": ...}`."""
    return {code: {"description": _MEANINGS[code], **_ERROR_BODY} for code in codes}


def error_response(error: Exception) -> Response:
    """The response for any error raised while serving a request."""
    if isinstance(error, ServingError):
        return json_response({"error": error.message}, error.status_code, error.headers)
    if isinstance(error, HTTPException):
        # Its headers too, e.g. a 405's Allow.
        return json_response({"error": str(error.detail)}, error.status_code, error.headers)
    log.error("unhandled error", exc_info=error)
    return json_response({"error": "internal server error"}, 500)


async def _respond(request: Request, error: Exception) -> Response:
    return error_response(error)


async def _validation_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    return json_response({"error": f"{where}: {first['msg']}"}, 422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServingError, _respond)
    app.add_exception_handler(HTTPException, _respond)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _respond)
