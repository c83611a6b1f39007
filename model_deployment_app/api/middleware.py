"""Request metrics: a recorder shared by the fast path and a pure ASGI middleware for the rest."""

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from model_deployment_app.metrics import Metrics

MODEL_KEY = "mda.model"
"""The ASGI scope key naming the model a request is for, once its route has said."""


class RequestRecorder:
    """Counts a request and its latency under (model, route template, method, status); the
    model is "" for a request no model answers (the server's health, its metrics)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._series: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}

    def record(self, route: str, method: str, status: int, started: float, model: str = "") -> None:
        key = (model, route, method, status)
        series = self._series.get(key)
        if series is None:  # labels() is not free: look the children up once per label set
            labels = (model, route, method, str(status))
            series = (
                self.metrics.requests.labels(*labels),
                self.metrics.request_latency.labels(*labels),
            )
            self._series[key] = series
        series[0].inc()
        series[1].observe(time.perf_counter() - started)


class HeadAsGet:
    """`HEAD` is answered as `GET` without the body (FastAPI's GET routes would say 405)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        scope["method"] = "GET"

        async def send_head(message: Message) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": b""}
            await send(message)

        await self.app(scope, receive, send_head)


class MetricsMiddleware:
    """Records every request that reaches it (the fast path records its own). A request no
    API route took is labelled by its path when that is one of `static_paths` (`/docs`,
    `/openapi.json`: FastAPI's own pages), else `unmatched`, so the labels stay bounded."""

    def __init__(
        self, app: ASGIApp, recorder: RequestRecorder, static_paths: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.recorder = recorder
        self.static_paths = static_paths

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
            path = getattr(route, "path", None)
            if path is None:
                asked = scope["path"][len(scope.get("root_path", "")) :] or "/"
                path = asked if asked in self.static_paths else "unmatched"
            self.recorder.record(path, scope["method"], status, started, scope.get(MODEL_KEY, ""))
