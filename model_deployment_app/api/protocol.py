"""uvicorn's HTTP protocol (httptools), guarded: a request's headers must arrive within
`MDA_HEADER_TIMEOUT_SECONDS` of the connection or of its first byte, and its body within
`MDA_BODY_TIMEOUT_SECONDS` of its headers (else a JSON 408 and the connection closes); its
head (request line and headers) must fit in `MDA_MAX_HEADER_BYTES` (else a JSON 431); at most
`MDA_MAX_CONNECTIONS` are open at once (past that, a JSON 503 and close); and the 400s uvicorn
writes itself for unparsable HTTP are JSON too, like every other error of this server.

Idle keep-alive connections are closed by uvicorn itself (`timeout_keep_alive`); this closes
the ones that open and never send a request, or trickle it (slowloris), which uvicorn leaves
open. The deadline is armed only while a request is incomplete at the end of a read, so a
request that arrives whole (the usual case) costs no timer at all, and the phase is read from
uvicorn's own state after each read, so no callback of ours runs per request.
"""

import asyncio
from typing import Any, Literal

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

Phase = Literal["waiting", "headers", "body"]

# After a refusal, how long what the client still sends is read and dropped before close.
LINGER_SECONDS = 1.0


def _json_reply(status: bytes, message: str) -> bytes:
    body = orjson.dumps({"error": message})
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
    )


class _HeadTooLarge(Exception):
    """Raised from the parser's callback: httptools stops parsing, uvicorn asks for a 400."""


class GuardedHttpProtocol(HttpToolsProtocol):
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 2048
    max_header_bytes: int = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_phase: Phase | None = None
        # Bytes read while a request's head was still incomplete, and in the current read:
        # together an upper bound of the head's size, so only a large read measures it.
        self._head_bytes = 0
        self._reading = 0
        self._head_too_large = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            # Nothing was read yet, and lingering would hold the very connections refused.
            self._refuse(
                b"503 Service Unavailable", "too many connections; try again shortly", linger=False
            )
            return
        self._arm("waiting")

    def data_received(self, data: bytes) -> None:
        self._reading = len(data)
        super().data_received(data)
        phase = self._awaited()
        if phase == "headers" or phase == "waiting":
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self._refuse_head()
                return
        elif self._head_bytes:
            self._head_bytes = 0
        if phase is None:
            if self._deadline is not None:
                self._disarm()
        elif self._deadline_phase != phase:
            self._arm(phase)

    def on_headers_complete(self) -> None:
        if self._head_bytes + self._reading > self.max_header_bytes:
            size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
            if size > self.max_header_bytes:
                self._head_too_large = True
                raise _HeadTooLarge
        super().on_headers_complete()

    def _refuse_head(self) -> None:
        self._refuse(
            b"431 Request Header Fields Too Large",
            f"the request's headers are larger than {self.max_header_bytes} bytes "
            "(MDA_MAX_HEADER_BYTES)",
        )

    def _awaited(self) -> Phase | None:
        """What the connection still waits for, read from uvicorn's own state (no parser
        callback of ours runs per request): a request's headers once it has begun (its scope
        is new and has no cycle yet), its body once the headers came (the cycle wants more)."""
        scope, cycle = self.scope, self.cycle
        if cycle is None or cycle.scope is not scope:
            return "waiting" if scope is None else "headers"
        if cycle.more_body and not cycle.response_complete:
            return "body"
        return None

    def _arm(self, phase: Phase) -> None:
        self._disarm()
        seconds = self.body_timeout if phase == "body" else self.header_timeout
        self._deadline = self.loop.call_later(seconds, self._expired, phase, seconds)
        self._deadline_phase = phase

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
            self._deadline_phase = None

    def _expired(self, phase: Phase, seconds: float) -> None:
        self._deadline = None
        self._deadline_phase = None
        cycle = self.cycle
        if phase == "body" and cycle is not None and cycle.response_started:
            return  # the app answered already: its own response ends the exchange
        if phase != "body" and cycle is not None and not cycle.response_complete:
            self._arm(phase)  # the request before is still being answered: never cut into it
            return
        what = "body" if phase == "body" else "headers"
        self._refuse(
            b"408 Request Timeout", f"the request {what} did not arrive within {seconds:g}s"
        )

    def _refuse(self, status: bytes, message: str, linger: bool = True) -> None:
        """The JSON answer, then a lingering close: what the client still sends is read and
        dropped for a moment, since closing with unread bytes makes the kernel reset the
        connection, and a reset client loses the answer it was sent."""
        transport = self.transport
        if transport.is_closing():
            return
        self._disarm()
        transport.write(_json_reply(status, message))
        if not linger or not transport.can_write_eof():
            transport.close()
            return
        self.data_received = lambda data: None  # type: ignore[method-assign]
        transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            self._refuse_head()
            return
        self._refuse(b"400 Bad Request", f"malformed HTTP request: {msg}")


def guarded_protocol(
    header_timeout: float, body_timeout: float, max_connections: int, max_header_bytes: int
) -> type[GuardedHttpProtocol]:
    """The protocol class with these limits, for `uvicorn.Config(http=...)`."""
    return type(
        "GuardedHttpProtocol",
        (GuardedHttpProtocol,),
        {
            "header_timeout": header_timeout,
            "body_timeout": body_timeout,
            "max_connections": max_connections,
            "max_header_bytes": max_header_bytes,
        },
    )
