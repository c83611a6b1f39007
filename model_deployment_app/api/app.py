"""The app factory. Nothing happens at import; `create_app` builds a self-contained app."""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from model_deployment_app import __version__
from model_deployment_app.access import Access
from model_deployment_app.api.docs import install_docs
from model_deployment_app.api.errors import error_response, install_error_handlers
from model_deployment_app.api.fastpath import FastPath
from model_deployment_app.api.middleware import HeadAsGet, MetricsMiddleware, RequestRecorder
from model_deployment_app.api.repository import repository_router
from model_deployment_app.api.rest import predict_endpoint, rest_router
from model_deployment_app.api.v2 import infer_endpoint, v2_router
from model_deployment_app.cache import build_cache
from model_deployment_app.config import ModelConfig
from model_deployment_app.errors import StartupError
from model_deployment_app.handler import DataPlane
from model_deployment_app.lifecycle import ModelWatcher
from model_deployment_app.metrics import Metrics
from model_deployment_app.pool import ModelPool
from model_deployment_app.predictor import LoadedModel
from model_deployment_app.repository import Repository
from model_deployment_app.settings import Settings
from model_deployment_app.tracing import Tracing, configured

log = logging.getLogger(__name__)

ModelLoader = Callable[[], LoadedModel]
LoadFailureHook = Callable[[StartupError], None]


class ModelServer(FastAPI):
    """FastAPI whose entry point is the fast path for the hot routes (see `fastpath`), then
    request metrics and FastAPI's own stack for the rest. Both ways count every request."""

    entry: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.entry(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    model: LoadedModel | None = None,
    loader: ModelLoader | None = None,
    on_load_failure: LoadFailureHook | None = None,
    grpc: bool = False,
    source: ModelConfig | None = None,
    pool: ModelPool | None = None,
) -> FastAPI:
    """Serve `model`, or the one `loader` returns (loaded in the background at start-up:
    until it is in, readiness and predictions answer 503), or a `pool`'s models (started in
    the background unless already). `grpc`: also serve V2 over gRPC on `MDA_GRPC_PORT` while
    the app runs (`mda serve` asks for it). `source`: the model's configuration, to reload it
    from (on request, and every `refreshSeconds` if set)."""
    settings = settings or Settings()
    if pool is not None:
        metrics, cache = pool.metrics, pool.cache
        watchers = {
            name: ModelWatcher(plane, pool.configs[name], settings, pool.measured_load)
            for name, plane in pool.planes.items()
        }
        repository = Repository(pool.planes, pool.configs, watchers, pool)
    else:
        metrics = Metrics()
        cache = build_cache(settings.cache, settings.server.workers)
        name = source.name if source is not None else model.name if model is not None else "model"
        plane = DataPlane(settings, metrics, cache, name)
        if model is not None:
            plane.set_model(model)
        watchers = {name: ModelWatcher(plane, source, settings)} if source is not None else {}
        repository = Repository(
            {name: plane}, {name: source} if source is not None else {}, watchers
        )
    recorder = RequestRecorder(metrics)
    access = Access(settings.access, settings.cache.redis_url)
    payload_log = None
    if settings.payload_log.payload_log is not None:
        from model_deployment_app.payload_log import PayloadLog

        payload_log = PayloadLog(
            settings.payload_log, metrics, settings.server.track, settings.server.workers,
            repository.version_of,
        )  # fmt: skip
        for plane in repository.planes.values():
            plane.log_payloads()
    tracing = None
    if configured():
        tracing = Tracing(f"mda-{next(iter(repository.planes))}")
        for plane in repository.planes.values():
            plane.trace(tracing)

    def failed(raised: Exception, what: str) -> StartupError:
        if isinstance(raised, StartupError):
            return raised
        return StartupError(f"cannot load {what}: {type(raised).__name__}: {raised}")

    async def load_in_background(load: ModelLoader) -> None:
        assert repository.only is not None
        try:
            repository.only.set_model(await asyncio.to_thread(load))
        except Exception as raised:  # whatever it is, it ends in one line, never silently
            error = failed(raised, "the model")
            repository.only.load_error = f"the model cannot be served: {error}"
            if on_load_failure is not None:
                on_load_failure(error)
            else:
                log.error("%s", repository.only.load_error)

    async def start_pool(pool: ModelPool) -> None:
        try:
            await asyncio.to_thread(pool.start)
        except Exception as raised:
            error = failed(raised, "the pool")
            if on_load_failure is not None:
                on_load_failure(error)
            else:
                log.error("the pool cannot start: %s", error)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        grpc_server = None
        grpc_stopped: asyncio.Future[None] | None = None

        def drain_grpc() -> None:
            """Begin the gRPC server's drain (at SIGTERM, as HTTP's begins): new calls are
            refused (UNAVAILABLE), those in flight have the grace period to finish."""
            nonlocal grpc_stopped
            if grpc_server is not None and grpc_stopped is None:
                grace = settings.server.graceful_shutdown_seconds
                grpc_stopped = asyncio.ensure_future(grpc_server.stop(grace=grace))

        app.state.drain = drain_grpc
        if grpc and settings.server.grpc_port:
            from model_deployment_app.api.grpc import start_grpc_server

            server = settings.server
            grpc_server = await start_grpc_server(
                repository, recorder, server.host, server.grpc_port,
                shared_port=server.workers > 1, access=access, payload_log=payload_log,
                tracing=tracing,
            )  # fmt: skip
        for plane in repository.planes.values():
            plane.start_serving()
        if payload_log is not None:
            payload_log.start()  # its thread in the process that serves (after any fork)
        if tracing is not None:
            tracing.start()  # the same: the exporter's thread
        tasks = []
        if pool is not None and not pool.started:
            tasks.append(asyncio.create_task(start_pool(pool)))
        elif repository.only is not None and repository.only.model is None and loader:
            tasks.append(asyncio.create_task(load_in_background(loader)))
        for watcher in watchers.values():
            if watcher.refresh_seconds:
                tasks.append(asyncio.create_task(watcher.run(), name="mda-model-watcher"))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            drain_grpc()
            if grpc_stopped is not None:
                await grpc_stopped
            for plane in repository.planes.values():
                await plane.stop()
            if payload_log is not None:  # what is queued is written, within the grace period
                await asyncio.to_thread(
                    payload_log.close, max(1.0, settings.server.graceful_shutdown_seconds / 2)
                )
            if tracing is not None:
                await asyncio.to_thread(tracing.close)
            if cache is not None:
                await cache.close()

    app = ModelServer(
        title="model_deployment_app",
        version=__version__,
        description="Predictions from one scikit-learn or PyTorch model, on a plain REST API "
        "and on the Open Inference Protocol (V2).",
        lifespan=lifespan,
        # Metrics are Prometheus's here; FastAPI's OpenTelemetry probe would cost every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        docs_url=None,  # served by install_docs, without a CDN
        redoc_url=None,
    )
    app.state.repository = repository
    app.state.metrics = metrics
    if repository.only is not None:
        app.state.plane = repository.only
    install_error_handlers(app)
    install_docs(app)
    predict, infer = predict_endpoint(repository), infer_endpoint(repository)
    routers = [rest_router(predict), v2_router(repository, infer), repository_router(repository)]
    for router in routers:
        app.include_router(router)
    if settings.server.playground:
        from model_deployment_app.api.playground import playground_router

        app.include_router(playground_router(repository))
    hot_routes = [
        (route, route.endpoint)  # type: ignore[attr-defined]
        for router in routers
        for route in router.routes
        if getattr(route, "endpoint", None) in (predict, infer)
    ]
    assert len(hot_routes) == 3, "the fast path must find every hot route"

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    static_paths = frozenset(
        path for route in app.routes if "{" not in (path := getattr(route, "path", "{"))
    )
    app.entry = FastPath(
        HeadAsGet(MetricsMiddleware(partial(FastAPI.__call__, app), recorder, static_paths)),
        hot_routes,
        error_response,
        recorder,
        root_path=settings.server.root_path,
        access=access,
        models=repository.prefixes,
        model=repository.only.name if repository.only is not None else "",
        payload_log=payload_log,
        tracing=tracing,
    )
    return app
