"""Request metrics as a pure ASGI middleware (cheaper than BaseHTTPMiddleware)."""

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from model_deployment_app.metrics import Metrics


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

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
            counter, histogram = self._series(path, scope["method"], status)
            counter.inc()
            histogram.observe(time.perf_counter() - started)

    def _series(self, route: str, method: str, status: int) -> tuple[Any, Any]:
        """The labelled children, looked up once per label set (labels() is not free)."""
        key = (route, method, status)
        series = self._children.get(key)
        if series is None:
            labels = (route, method, str(status))
            series = (
                self.metrics.requests.labels(*labels),
                self.metrics.request_latency.labels(*labels),
            )
            self._children[key] = series
        return series
