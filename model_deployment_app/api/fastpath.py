"""A short way in for the hot routes, `POST /predict` and V2 `infer` (with or without a version).

FastAPI's per-request machinery (routing, dependency solving, its middleware stack) costs
more than a cached prediction. These two routes are answered here, by the same endpoint
functions FastAPI has registered for them, so `/docs` still describes them; every other
request goes on to FastAPI untouched.
"""

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from model_deployment_app.access import TWO_TOKENS, Access, Kind, route_kind
from model_deployment_app.api.middleware import MODEL_KEY, RequestRecorder
from model_deployment_app.errors import ModelNotFound, NotReady, ServingError
from model_deployment_app.payload_log import MAX_REQUEST_ID, Exchange, PayloadLog
from model_deployment_app.tracing import Tracing

SHUTTING_DOWN = NotReady("the server is shutting down: retry, another replica will answer")

Endpoint = Callable[[Request], Awaitable[Response]]
ErrorResponder = Callable[[Exception], Response]


class FastPath:
    def __init__(
        self,
        app: ASGIApp,
        routes: list[tuple[Any, Endpoint]],
        error_response: ErrorResponder,
        recorder: RequestRecorder,
        root_path: str = "",
        access: Access | None = None,
        models: frozenset[str] = frozenset(),
        model: str = "",
        payload_log: PayloadLog | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        """`routes`: (FastAPI route, endpoint) pairs, all POST. `root_path`: the prefix the
        server also answers under (`MDA_ROOT_PATH`), e.g. `/iris-classifier`. `access`: who
        may call (tokens, rate limits), asked before any route is served. `models`: a pool's
        model names, each a prefix its model's routes answer under (`/<name>/predict`), noted
        in the scope for the routes (`MODEL_KEY`). `model`: a one-model server's model, the
        label of its requests' metrics. `payload_log`: record each hot request (and echo
        its `x-request-id`). `tracing`: a span for each hot request, joining the caller's
        `traceparent`."""
        self.app = app
        self.payload_log = payload_log
        self.tracing = tracing
        self.models = models
        self.model = model
        self.access = access
        self.guarded = access is not None and access.guards  # every route asks, not only admin
        self.waits = access is not None and access.waits
        self.root = root_path.rstrip("/")
        self.root_slash = self.root + "/"
        self.error_response = error_response
        self.recorder = recorder
        self.exact: dict[str, tuple[Any, Endpoint]] = {}
        self.patterns: list[tuple[re.Pattern[str], Any, Endpoint]] = []
        for route, endpoint in routes:
            if "{" in route.path:
                self.patterns.append((route.path_regex, route, endpoint))
            else:
                self.exact[route.path] = (route, endpoint)

    def _match(self, path: str) -> tuple[Any, Endpoint, dict[str, str]] | None:
        found = self.exact.get(path)
        if found is not None:
            return found[0], found[1], {}
        for regex, route, endpoint in self.patterns:
            match = regex.match(path)
            if match:
                return route, endpoint, match.groupdict()
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if self.root:
            # Under the prefix, the route is what follows it (and links keep the prefix);
            # without it (in-cluster callers of the Service), the path is the route itself.
            if path.startswith(self.root_slash) or path == self.root:
                scope["root_path"] = self.root
                path = path[len(self.root) :] or "/"
            else:
                scope["root_path"] = ""
        unknown = None
        if self.models:
            name, slash, rest = path[1:].partition("/")
            if name in self.models:
                scope["root_path"] = scope.get("root_path", "") + "/" + name
                scope[MODEL_KEY] = name
                path = slash + rest or "/"
            elif slash and scope["method"] == "POST" and self._match(slash + rest) is not None:
                unknown = name  # a model's route under a name the pool does not have
        matched = self._match(path) if scope["method"] == "POST" else None
        if unknown is not None:
            await self._refuse(
                ModelNotFound(f"model {unknown!r} not found in this pool (POST "
                              "/v2/repository/index lists its models)"),
                "unmatched", scope, receive, send,
            )  # fmt: skip
            return
        access = self.access
        if access is not None and (self.guarded or matched is None):
            kind: Kind = "api" if matched is not None else route_kind(path)
            if self.guarded or kind == "admin":
                try:
                    authorization = forwarded = None
                    for name, value in scope["headers"]:
                        if name == b"authorization":
                            if authorization is not None:
                                raise TWO_TOKENS
                            # Tokens are UTF-8 (the token file is read as UTF-8).
                            authorization = value.decode("utf-8", "surrogateescape")
                        elif name == b"x-forwarded-for":
                            forwarded = value.decode("latin-1")
                    client = scope.get("client")
                    peer = client[0] if client else None
                    if self.waits:  # counted in Redis
                        await access.check(kind, authorization, peer, forwarded)
                    else:
                        access.check_here(kind, authorization, peer, forwarded)
                except ServingError as refused:
                    route = matched[0].path if matched is not None else f"({kind})"
                    await self._refuse(refused, route, scope, receive, send)
                    return
        if matched is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        route, endpoint, params = matched
        scope["route"] = route
        scope["path_params"] = params
        named = params.get("name", "")  # a label only when it is one of the pool's own
        model = scope.get(MODEL_KEY) or self.model or (named if named in self.models else "")
        exchange = echo = None
        if self.payload_log is not None:
            echo, exchange = self._begin(scope, model, route.path)
        span = None
        if self.tracing is not None:
            span = self.tracing.request(f"POST {route.path}", scope["headers"], **{
                "http.route": route.path, "mda.model": model,
            })  # fmt: skip
            if exchange is not None:
                exchange.trace_id = self.tracing.trace_id(span)
        refusal = ""
        try:
            response = await endpoint(Request(scope, receive))
        except ClientDisconnect:  # nobody left to answer: count it as nginx does
            self._settled(route.path, 499, started, model, exchange, span, "the client went away")
            return
        except asyncio.CancelledError:  # the drain's deadline: say so, then stop
            response = self.error_response(SHUTTING_DOWN)
            self._settled(route.path, response.status_code, started, model, exchange, span,
                          SHUTTING_DOWN.message)  # fmt: skip
            with contextlib.suppress(Exception):
                await response(scope, receive, send)
            raise
        except Exception as error:
            response = self.error_response(error)
            refusal = getattr(error, "message", "") or "internal server error"
        if echo is not None:
            response.raw_headers.append((b"x-request-id", echo))
        try:
            await response(scope, receive, send)
        finally:
            self._settled(route.path, response.status_code, started, model, exchange, span,
                          refusal)  # fmt: skip

    def _settled(
        self, route: str, status: int, started: float, model: str, exchange: Exchange | None,
        span: Any, refusal: str = "",
    ) -> None:  # fmt: skip
        """A hot request's end, however it ended: its metrics, its payload record, its span."""
        self.recorder.record(route, "POST", status, started, model)
        if exchange is not None:
            self.payload_log.finish(exchange, status, refusal)  # type: ignore[union-attr]
        if span is not None:
            self.tracing.ended(span, status, refusal)  # type: ignore[union-attr]

    def _begin(self, scope: Scope, model: str, route: str) -> tuple[bytes | None, Exchange | None]:
        """The id to echo in `x-request-id` (the caller's, else the record's), and the
        request's payload exchange (None when the sample skips it)."""
        sent = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                sent = value[:MAX_REQUEST_ID]
                break
        protocol = "rest" if route == "/predict" else "v2"
        request_id = sent.decode("latin-1") if sent is not None else None
        exchange = self.payload_log.begin(request_id, model, route, protocol)  # type: ignore[union-attr]
        if exchange is None:
            return sent, None
        return sent or exchange.request_id.encode("latin-1"), exchange

    async def _refuse(
        self, refused: ServingError, route: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        started = time.perf_counter()
        response = self.error_response(refused)
        try:
            await response(scope, receive, send)
        finally:
            self.recorder.record(route, scope["method"], response.status_code, started)
