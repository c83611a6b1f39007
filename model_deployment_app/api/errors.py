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


def error_response(error: Exception) -> Response:
    """The response for any error raised while serving a request."""
    if isinstance(error, ServingError):
        return json_response({"error": error.message}, error.status_code)
    if isinstance(error, HTTPException):
        return json_response({"error": str(error.detail)}, error.status_code)
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
