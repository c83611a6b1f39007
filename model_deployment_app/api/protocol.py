"""uvicorn's HTTP protocol (httptools), guarded: a connection must send its request headers
within `MDA_HEADER_TIMEOUT_SECONDS` (else a JSON 408 and the connection closes), at most
`MDA_MAX_CONNECTIONS` are open at once (past that, a JSON 503 and close), and the 400s uvicorn
writes itself for unparsable HTTP are JSON too, like every other error of this server.

Idle keep-alive connections are closed by uvicorn itself (`timeout_keep_alive`); this closes
the ones that open and never send a request, or never finish its headers (slowloris), which
uvicorn leaves open.
"""

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def _json_reply(status: bytes, message: str) -> bytes:
    body = orjson.dumps({"error": message})
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
    )


class GuardedHttpProtocol(HttpToolsProtocol):
    header_timeout: float = 10.0
    max_connections: int = 2048

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._refuse(b"503 Service Unavailable", "too many connections; try again shortly")
            return
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.cycle is None or self.cycle.response_complete:  # no request under way
            self._refuse(
                b"408 Request Timeout",
                f"the request headers did not arrive within {self.header_timeout:g}s",
            )

    def _refuse(self, status: bytes, message: str) -> None:
        if not self.transport.is_closing():
            self.transport.write(_json_reply(status, message))
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:  # a later request on a kept-alive connection
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self._refuse(b"400 Bad Request", f"malformed HTTP request: {msg}")


def guarded_protocol(header_timeout: float, max_connections: int) -> type[GuardedHttpProtocol]:
    """The protocol class with these limits, for `uvicorn.Config(http=...)`."""
    return type(
        "GuardedHttpProtocol",
        (GuardedHttpProtocol,),
        {"header_timeout": header_timeout, "max_connections": max_connections},
    )
