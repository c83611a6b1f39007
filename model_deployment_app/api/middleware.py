"""Request metrics: a recorder shared by the fast path and a pure ASGI middleware for the rest."""

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from model_deployment_app.metrics import Metrics


class RequestRecorder:
    """Counts a request and its latency under (route template, method, status)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def record(self, route: str, method: str, status: int, started: float) -> None:
        key = (route, method, status)
        series = self._series.get(key)
        if series is None:  # labels() is not free: look the children up once per label set
            labels = (route, method, str(status))
            series = (
                self.metrics.requests.labels(*labels),
                self.metrics.request_latency.labels(*labels),
            )
            self._series[key] = series
        series[0].inc()
        series[1].observe(time.perf_counter() - started)


class MetricsMiddleware:
    """Records every request that reaches it (the fast path records its own)."""

    def __init__(self, app: ASGIApp, recorder: RequestRecorder) -> None:
        self.app = app
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route: Any = scope.get("route")
            # The route template, not the raw path, keeps label cardinality bounded.
            path = getattr(route, "path", "unmatched")
            self.recorder.record(path, scope["method"], status, started)
