"""A closed-loop HTTP/1.1 load generator: N keep-alive connections, pre-encoded requests.

Each connection is an asyncio Protocol that writes its next request from the callback that
completes the previous response, so a request costs a few dict-free byte operations and no
coroutine switch: the client must never be the bottleneck of what it measures.
Responses must carry Content-Length (uvicorn, Starlette and FastAPI send it).
"""

import asyncio
import time
from array import array
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from typing import cast

_HEADER_END = b"\r\n\r\n"
_CONTENT_LENGTH = b"\r\ncontent-length:"
_CONNECTION_CLOSE = b"\r\nconnection: close"
_RECONNECT_DELAY_S = 0.01
_STRAGGLER_S = 10.0  # how long past the end of a run a reply may still come


def post_request(
    host: str, port: int, path: str, body: bytes, headers: dict[str, str] | None = None
) -> bytes:
    """Encode one keep-alive HTTP/1.1 POST with a body (JSON unless `headers` say else)."""
    extra = {"Content-Type": "application/json", **(headers or {})}
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in extra.items())
        + f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


@dataclass
class LoadResult:
    """What one run measured: successes, errors, wall time and per-request latency (ns)."""

    ok: int = 0
    errors: int = 0
    elapsed_s: float = 0.0
    client_cpu_s: float = 0.0  # this process's CPU time: is the client near its own ceiling?
    latencies_ns: "array[int]" = field(default_factory=lambda: array("q"))

    @property
    def requests_per_s(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        """Nearest-rank percentile of successful requests' latency, in milliseconds."""
        if not self.latencies_ns:
            return float("nan")
        ordered = sorted(self.latencies_ns)
        rank = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
        return ordered[rank] / 1e6


class _Run:
    """State shared by the connections of one run: the request cycle, the bounds, the tally."""

    def __init__(self, requests: Sequence[bytes], duration_s: float, max_requests: int | None):
        self.requests = requests
        self.next_index = 0
        self.deadline_ns = time.perf_counter_ns() + int(duration_s * 1e9)
        self.remaining = max_requests if max_requests is not None else -1
        self.result = LoadResult()

    def take(self) -> bytes | None:
        """The next request to send, or None once the run is over."""
        if self.remaining == 0 or time.perf_counter_ns() >= self.deadline_ns:
            return None
        if self.remaining > 0:
            self.remaining -= 1
        request = self.requests[self.next_index]
        self.next_index = (self.next_index + 1) % len(self.requests)
        return request

    @property
    def over(self) -> bool:
        return self.remaining == 0 or time.perf_counter_ns() >= self.deadline_ns

    def seconds_left(self) -> float:
        return max(0.0, (self.deadline_ns - time.perf_counter_ns()) / 1e9)


class _Connection(asyncio.Protocol):
    def __init__(self, run: _Run, closed: asyncio.Future[None]) -> None:
        self.run = run
        self.closed = closed
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.body_end = -1  # where the response being read ends in the buffer, once known
        self.status = 0
        self.keep_alive = True
        self.sent_ns = 0
        self.in_flight = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        request = self.run.take()
        if request is None:
            self.transport.close()
            return
        self.in_flight = True
        self.sent_ns = time.perf_counter_ns()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.body_end < 0 and not self._parse_head():
                return
            if len(self.buffer) < self.body_end:
                return
            self._complete()
            if not self.in_flight:
                return

    def _parse_head(self) -> bool:
        head_end = self.buffer.find(_HEADER_END)
        if head_end < 0:
            return False
        head = self.buffer[:head_end].lower()
        self.status = int(head[9:12]) if head[9:12].isdigit() else 0
        self.keep_alive = _CONNECTION_CLOSE not in head
        start = head.find(_CONTENT_LENGTH)
        if start < 0 or not self.status:  # chunked, close-delimited or not HTTP: an error
            self.status = 0
            self.keep_alive = False
            self.body_end = head_end + 4
            return True
        start += len(_CONTENT_LENGTH)
        end = head.find(b"\r\n", start)
        length = int(head[start : end if end >= 0 else None])
        self.body_end = head_end + 4 + length
        return True

    def _complete(self) -> None:
        result = self.run.result
        if 200 <= self.status < 300:
            result.ok += 1
            result.latencies_ns.append(time.perf_counter_ns() - self.sent_ns)
        else:
            result.errors += 1
        self.buffer = self.buffer[self.body_end :]
        self.body_end = -1
        self.in_flight = False
        if not self.keep_alive:
            assert self.transport is not None
            self.transport.close()
            return
        self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_flight:
            self.run.result.errors += 1
        if not self.closed.done():
            self.closed.set_result(None)


async def _drive(host: str, port: int, run: _Run) -> None:
    """Keep one connection busy until the run is over, reconnecting after failures."""
    loop = asyncio.get_running_loop()
    while not run.over:
        closed: asyncio.Future[None] = loop.create_future()
        try:
            transport, _ = await loop.create_connection(
                partial(_Connection, run, closed), host, port
            )
        except OSError:
            run.result.errors += 1
            await asyncio.sleep(_RECONNECT_DELAY_S)
            continue
        with suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(closed), run.seconds_left() + _STRAGGLER_S)
        if not closed.done():  # a reply overdue long past the end of the run: an error
            transport.abort()
            await closed


async def run_load(
    host: str,
    port: int,
    requests: Sequence[bytes],
    connections: int,
    duration_s: float,
    max_requests: int | None = None,
) -> LoadResult:
    """Send `requests` in a cycle over `connections` keep-alive connections.

    Stops after `duration_s` or `max_requests` requests, whichever comes first; a request
    cut off by the end of the run is not counted. Errors are non-2xx replies and requests
    lost to connection failures (a refused connection counts once per attempt).
    """
    if not requests:
        raise ValueError("no requests to send")
    run = _Run(requests, duration_s, max_requests)
    started, cpu_started = time.perf_counter(), time.process_time()
    await asyncio.gather(*(_drive(host, port, run) for _ in range(connections)))
    run.result.elapsed_s = time.perf_counter() - started
    run.result.client_cpu_s = time.process_time() - cpu_started
    return run.result
