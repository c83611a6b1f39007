"""`mda serve`: run the app under uvicorn, in one process or in pre-forked workers.

With one worker the port opens at once and the model loads in the background (readiness
answers 503 until it is in). With several, the parent loads the model once and then forks:
the workers share its memory copy-on-write instead of each loading a copy.
"""

import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import tempfile
from typing import Any

from pydantic import ValidationError

from model_deployment_app.config import LocalSource, ModelConfig, PoolConfig, load_config
from model_deployment_app.errors import StartupError
from model_deployment_app.settings import Settings
from model_deployment_app.storage import check_local

log = logging.getLogger("model_deployment_app")


def _read_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "?"
        variable = name if name.isupper() else f"MDA_{name.upper()}"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise StartupError(f"setting {variable}: {message}") from None


def _freeze_heap() -> None:
    """Move everything alive after start-up (frameworks, model) out of the collector's reach.

    Without this, each full collection walks hundreds of thousands of long-lived objects and
    stalls every request in flight: it was most of the p99 latency under load.
    """
    gc.collect()
    gc.freeze()


def _uvicorn_server(config: Any) -> Any:
    """uvicorn's server, whose shutdown (SIGTERM) also begins the gRPC server's drain, so
    that both ports drain together (not gRPC only once HTTP's requests are done)."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            app: Any = self.config.app
            drain = getattr(app.state, "drain", None)
            if drain is not None:
                drain()
            await super().shutdown(sockets)

    return DrainingServer(config)


def _uvicorn_config(app: Any, settings: Settings) -> Any:
    import uvicorn

    from model_deployment_app.api.protocol import guarded_protocol

    server = settings.server
    return uvicorn.Config(
        app,
        http=guarded_protocol(
            server.header_timeout_seconds,
            server.body_timeout_seconds,
            server.max_connections,
            server.max_header_bytes,
        ),
        host=server.host,
        port=server.port,
        log_level=server.log_level,
        access_log=server.access_log,
        server_header=False,
        # The client's address is the peer's: X-Forwarded-For is believed only from
        # MDA_TRUSTED_PROXIES, by the access policy (uvicorn would believe loopback's).
        proxy_headers=False,
        timeout_graceful_shutdown=int(server.graceful_shutdown_seconds),
    )


def _serve_one(settings: Settings, config: ModelConfig | PoolConfig) -> None:
    from model_deployment_app.api import create_app
    from model_deployment_app.predictor import LoadedModel, load_model

    failures: list[StartupError] = []

    def stop_on_failure(error: StartupError) -> None:
        failures.append(error)
        server.should_exit = True

    def load_and_freeze() -> LoadedModel:
        model = load_model(config, settings)  # type: ignore[arg-type]
        _freeze_heap()
        return model

    if isinstance(config, PoolConfig):
        app = create_app(
            settings, pool=_pool(settings, config), on_load_failure=stop_on_failure, grpc=True
        )
    else:
        app = create_app(
            settings, loader=load_and_freeze, on_load_failure=stop_on_failure, grpc=True,
            source=config,
        )  # fmt: skip
    server = _uvicorn_server(_uvicorn_config(app, settings))
    server.run()
    if failures:
        raise failures[0]


def _bound(host: str, port: int, service: str = "", setting: str = "") -> socket.socket:
    """A TCP socket bound to host:port (address reuse on, as uvicorn's and gRPC's own binds);
    one line naming the service and its setting when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise StartupError(
            f"cannot listen{service} on {host}:{port}{setting}: {error.strerror}"
        ) from None
    return sock


def _listen(settings: Settings) -> socket.socket:
    sock = _bound(settings.server.host, settings.server.port)
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _check_grpc_port(settings: Settings) -> None:
    """Refuse, in one line, a gRPC port another process holds (each worker binds it later)."""
    server = settings.server
    if server.grpc_port:
        _bound(server.host, server.grpc_port, " for gRPC", " (MDA_GRPC_PORT)").close()


def _pool(settings: Settings, config: PoolConfig) -> Any:
    from model_deployment_app.pool import ModelPool

    return ModelPool(config.models, settings)


def _serve_prefork(settings: Settings, config: ModelConfig | PoolConfig) -> None:
    # prometheus-client picks its multiprocess storage when first imported: set it up first.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mda-metrics-")
    from prometheus_client import multiprocess

    from model_deployment_app.api import create_app
    from model_deployment_app.predictor import load_model

    pool = None
    if isinstance(config, PoolConfig):
        pool = _pool(settings, config)
        pool.start()
        app = create_app(settings, pool=pool, grpc=True)
    else:
        model = load_model(config, settings)
        # Everything the workers need is built here, once: the app and uvicorn's loaded
        # config (which imports the event loop and HTTP protocol modules) are shared
        # copy-on-write.
        app = create_app(settings, model=model, grpc=True, source=config)
    server_config = _uvicorn_config(app, settings)
    server_config.load()
    sock = _listen(settings)
    _freeze_heap()  # also keeps those pages shared: the collector never writes to them

    def start_worker() -> int:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                _uvicorn_server(server_config).run(sockets=[sock])
            except BaseException:
                log.exception("worker failed")
                code = 1
            finally:
                os._exit(code)
        return pid

    workers = {start_worker() for _ in range(settings.server.workers)}
    if pool is not None:
        pool.release()  # the workers hold the models now: what they let go is freed
    what = f"a pool of {len(pool.planes)} models" if pool is not None else config.name  # type: ignore[union-attr]
    log.info("serving %s on %s:%d with %d workers", what, settings.server.host,
             settings.server.port, len(workers))  # fmt: skip
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        # Once every worker has stopped accepting, the port closes and new connections are
        # refused at once, instead of waiting in a backlog nobody reads and being reset.
        sock.close()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while workers:
        try:
            pid, _status = os.wait()
        except ChildProcessError:
            break
        workers.discard(pid)
        multiprocess.mark_process_dead(pid)
        if not stopping:
            log.warning("worker %d exited; starting another", pid)
            workers.add(start_worker())
    sock.close()


def _check_protobuf() -> None:
    """The V2 gRPC modules need a protobuf runtime they were generated for: another one is
    one line naming the versions, not a traceback at the first gRPC call."""
    try:
        from model_deployment_app.grpc_v2 import grpc_predict_v2_pb2_grpc  # noqa: F401
    except Exception as error:  # protobuf's VersionError, grpcio's RuntimeError, ImportError
        from importlib.metadata import PackageNotFoundError, version

        installed = {}
        for package in ("protobuf", "grpcio"):
            try:
                installed[package] = version(package)
            except PackageNotFoundError:
                installed[package] = "missing"
        raise StartupError(
            f"the V2 gRPC modules cannot load with protobuf {installed['protobuf']} and grpcio "
            f"{installed['grpcio']}: they need protobuf>=6.31.0,<8 and grpcio>=1.73.1 "
            f"({type(error).__name__}: {str(error).splitlines()[0][:160] if str(error) else ''})"
        ) from None


def serve() -> None:
    """Validate settings and config (failing fast, in one line), then serve."""
    settings = _read_settings()
    _check_protobuf()
    logging.basicConfig(
        level=settings.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    config = load_config(settings.server.config_path)
    # (A pool's missing file makes that model unavailable, not the pool.)
    if isinstance(config, ModelConfig) and isinstance(config.model, LocalSource):
        check_local(config.model, folder=config.is_folder)
    _check_grpc_port(settings)
    if settings.server.workers == 1:
        _serve_one(settings, config)
    else:
        _serve_prefork(settings, config)
