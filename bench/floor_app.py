"""The bare ASGI floor: a constant JSON reply to every request, nothing else.

What uvicorn itself costs per request; every other figure of the benchmark reads as a ratio
to this one. The request body is read (and dropped) so that the server does the same socket
work as for a prediction.
"""

from typing import Any

_BODY = b'{"predictions":[[0.5,0.5]],"classes":[0,1]}'
_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_BODY)).encode("ascii")),
    ],
}
_RESPONSE = {"type": "http.response.body", "body": _BODY}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":  # lifespan: nothing to start
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
        return
    more_body = True
    while more_body:
        message = await receive()
        more_body = message.get("more_body", False)
    await send(_START)
    await send(_RESPONSE)
