"""Read a JSON request body within the size limit, and reply in JSON with orjson."""

import asyncio
import json
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from model_deployment_app.errors import (
    InvalidInput,
    MalformedRequest,
    PayloadTooLarge,
    UnsupportedEncoding,
)

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
T = TypeVar("T")


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, refused with 413 as soon as it passes `max_bytes`. (A body that does
    not arrive in time is the HTTP protocol's to refuse: see `protocol`.)"""
    length = encoding = None
    for key, value in request.scope["headers"]:  # one pass, without building a Headers
        if key == b"content-length":
            length = value
        elif key == b"content-encoding":
            encoding = bytes(value)
    declared = int(length) if length is not None and length.isdigit() else None
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
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if encoding is None or encoding.lower() == b"identity":
        return body
    if encoding.lower() == b"gzip":
        return _gunzip(body, max_bytes)
    raise UnsupportedEncoding(
        f"Content-Encoding {encoding.decode(errors='replace')!r} is not supported; "
        "send gzip or an uncompressed body"
    )


def _gunzip(body: bytes, max_bytes: int) -> bytes:
    """A gzip body, decompressed within the same size limit as a plain one."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        plain = inflater.decompress(body, max_bytes + 1)
    except zlib.error as error:
        raise MalformedRequest(f"the body is not valid gzip: {error}") from None
    if len(plain) > max_bytes or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"decompressed body over the limit of {max_bytes} bytes")
    if not inflater.eof:
        raise MalformedRequest("the gzip body is truncated")
    return plain


# orjson reads an integer past 64 bits as a float. Where a refusal may quote one, the body is
# read again by the standard library (exact integers): on the error path only, as a scan for
# long digit runs costs more than the parse itself.
HUGE_INTEGER = re.compile(rb"[0-9]{20}")


def parse_json_exactly(body: bytes) -> Any:
    """The body with every integer exact (the standard library's parse), for an error path
    that quotes the values a client sent."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return parse_json(body)


def parse_json(body: bytes) -> Any:
    if not body:
        raise MalformedRequest("empty request body: send JSON")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        problem = error
    # NaN and Infinity are not JSON, but Python clients send them: parse them so the row
    # validator can name the value (422) instead of calling the body malformed.
    try:
        return json.loads(body)
    except ValueError as fallback:
        if "digits" in str(fallback):  # an integer past Python's int-from-text limit
            raise InvalidInput(f"a number in the body is too large: {fallback}") from None
        raise MalformedRequest(f"malformed JSON: {problem}") from None
    except RecursionError:
        raise MalformedRequest(f"malformed JSON: {problem}") from None


# Bodies past this are decoded in a worker thread: the event loop answers other requests
# between the decode's steps instead of after all of them.
OFF_LOOP_BYTES = 1 << 20


async def decode(body: bytes, decoder: Callable[[bytes], T]) -> T:
    """`decoder(body)`, off the event loop when the body is large."""
    if len(body) < OFF_LOOP_BYTES:
        return decoder(body)
    return await asyncio.to_thread(decoder, body)


def check_row_count(body: bytes, max_rows: int) -> None:
    """For bodies of numbers only: more `[` than rows allowed means too many rows, known
    before parsing (which would build a Python list per row first)."""
    if len(body) >= OFF_LOOP_BYTES and body.count(b"[") > max_rows + 8:
        raise PayloadTooLarge(f"more than {max_rows} rows in one request; the limit is {max_rows}")


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


RawHeaders = Sequence[tuple[bytes, bytes]]


class BytesResponse(Response):
    """Bytes with their headers built directly: Starlette's own header handling costs more
    than a whole cached prediction does."""

    def __init__(
        self,
        content: bytes,
        status_code: int = 200,
        raw: RawHeaders = (),
        media_type: bytes = b"application/json",
    ) -> None:
        self.status_code = status_code
        self.body = content
        self.background = None
        self.raw_headers = [
            (b"content-length", str(len(content)).encode()),
            (b"content-type", media_type),
            *raw,
        ]


def json_response(
    payload: Any,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    raw: RawHeaders = (),
) -> Response:
    """`payload` as JSON (numpy arrays too); `raw`: headers already as bytes (hot paths)."""
    content = orjson.dumps(payload, default=_fallback, option=_NUMPY)
    if headers:
        raw = [
            *raw,
            *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
        ]
    return BytesResponse(content, status_code, raw)
