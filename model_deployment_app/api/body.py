"""Read a JSON request body within the size limit, and reply in JSON with orjson."""

import json
from typing import Any

import numpy as np
import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from model_deployment_app.errors import MalformedRequest, PayloadTooLarge

_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def _declared_length(request: Request) -> int | None:
    value = header(request, b"content-length")
    return int(value) if value is not None and value.isdigit() else None


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, refused with 413 as soon as it passes `max_bytes`."""
    declared = _declared_length(request)
    if declared is not None and declared > max_bytes:
        raise PayloadTooLarge(f"request body of {declared} bytes; the limit is {max_bytes}")
    chunks, size, more = [], 0, True
    while more:  # the ASGI messages themselves: cheaper than Request.stream()
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"request body over the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def parse_json(body: bytes) -> Any:
    if not body:
        raise MalformedRequest("empty request body: send JSON")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        # NaN and Infinity are not JSON, but Python clients send them: parse them so the
        # row validator can name the value (422) instead of calling the body malformed.
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise MalformedRequest(f"malformed JSON: {error}") from None


async def read_json(request: Request, max_bytes: int) -> Any:
    return parse_json(await read_body(request, max_bytes))


def header(request: Request, name: bytes) -> bytes | None:
    """A request header's raw value (`name` in lower case), without building a Headers."""
    for key, value in request.scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _fallback(value: Any) -> Any:
    """What orjson's numpy support leaves out (object or string arrays) goes as lists."""
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    raise TypeError(f"cannot serialize {type(value).__name__}")


def json_response(payload: Any, status_code: int = 200) -> Response:
    content = orjson.dumps(payload, default=_fallback, option=_NUMPY)
    return Response(content, status_code, media_type="application/json")
