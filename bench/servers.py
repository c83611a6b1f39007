"""Start, wait for, measure and stop the servers under test: one subprocess each, loopback only.

Each server gets its own session (process group), so that stopping it also stops the worker
processes it forked, and a Ctrl-C in the terminal reaches the benchmark, which then stops
its servers in order, instead of reaching every process at once.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
READY_PATH = "/v2/health/ready"
_UVICORN_FLAGS = ("--http", "httptools", "--loop", "uvloop", "--no-access-log")


@dataclass(frozen=True)
class Launch:
    """How to start one server: its command line, its extra environment, its port, and
    whether it answers HTTP (ready: `GET /v2/health/ready` is 200) or only gRPC (ready: its
    port takes connections)."""

    command: list[str]
    env: dict[str, str]
    port: int
    http: bool = True


# Set by `--pin`: the core every server is started on (the load generator keeps the others).
PIN_CORE: int | None = None


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def uvicorn_app(app: str, port: int, env: Mapping[str, str] | None = None) -> Launch:
    """An app of bench/ under uvicorn with the settings `mda serve` uses: httptools, uvloop,
    no access log, one process."""
    command = [
        sys.executable, "-m", "uvicorn", app, "--app-dir", str(BENCH_DIR),
        "--host", HOST, "--port", str(port), "--log-level", "warning", *_UVICORN_FLAGS,
    ]  # fmt: skip
    return Launch(command, dict(env or {}), port)


def grpc_bare(kind: str, port: int) -> Launch:
    """bench/grpc_bare.py: grpcio answering a fixed message (`asyncio` or `threads`)."""
    return Launch([sys.executable, str(BENCH_DIR / "grpc_bare.py"), kind, str(port)], {}, port,
                  http=False)  # fmt: skip


def mda_serve(config: Path, port: int, cache: bool, workers: int = 1, **settings: str) -> Launch:
    """`mda serve` from this interpreter's environment; `settings` are more MDA_* variables."""
    env = {
        "MDA_CONFIG_PATH": str(config),
        "PORT": str(port),
        "MDA_HOST": HOST,
        "MDA_CACHE_ENABLED": "true" if cache else "false",
        "MDA_WORKERS": str(workers),
        "MDA_LOG_LEVEL": "warning",
        "MDA_GRPC_PORT": "0",  # a scenario that measures gRPC passes its own port
        **{f"MDA_{name.upper()}": value for name, value in settings.items()},
    }
    return Launch([str(Path(sys.executable).with_name("mda")), "serve"], env, port)


@contextmanager
def running(name: str, launch: Launch, timeout_s: float = 120.0) -> Iterator[int]:
    """Run a server until the block ends (even on error or Ctrl-C), yielding its pid once it
    answers GET /v2/health/ready with 200. Its output is shown if it fails to start."""
    with tempfile.TemporaryFile() as log:
        command = launch.command
        if PIN_CORE is not None and command[0] != "taskset":
            command = ["taskset", "-c", str(PIN_CORE), *command]
        try:
            process = subprocess.Popen(
                command,
                env={**os.environ, **launch.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as error:
            raise RuntimeError(f"{name} could not start: {error}") from error
        try:
            _wait_ready(name, process, launch, timeout_s, log)
            yield process.pid
        finally:
            stop(process)


def _wait_ready(
    name: str, process: subprocess.Popen[bytes], launch: Launch, timeout_s: float, log: IO[bytes]
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{_tail(log)}")
        if launch.http and _get_status(launch.port, READY_PATH) == 200:
            return
        if not launch.http and _accepts(launch.port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{name} not ready after {timeout_s:.0f} s:\n{_tail(log)}")


def _tail(log: IO[bytes], limit: int = 4000) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-limit:]


def _accepts(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=2).close()
    except OSError:
        return False
    return True


def _get_status(port: int, path: str) -> int | None:
    connection = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def stop(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM the server's process group, then SIGKILL what is left after `grace_s`."""
    if process.poll() is None:
        _signal_group(process.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(grace_s)
    _signal_group(process.pid, signal.SIGKILL)  # workers that outlived their parent
    process.wait()


def _signal_group(pgid: int, signum: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def pss_bytes(pid: int) -> int:
    """Proportional set size of a process and all its descendants: shared pages (the model
    a forking server loads once) count once in total, not once per process."""
    root = psutil.Process(pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            rollup = Path(f"/proc/{process.pid}/smaps_rollup").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited between the listing and the read
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024
                break
    return total


def metric(port: int, name: str) -> float:
    """One unlabelled series of the server's /metrics (0 when absent)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def wait_for_engine(port: int, model: str, engine: str, timeout_s: float = 120.0) -> float:
    """Seconds until the model's metadata names `engine` (`parameters.engine`: the compiled
    engine switches in after the model is ready)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        connection = http.client.HTTPConnection(HOST, port, timeout=5)
        try:
            connection.request("GET", f"/v2/models/{model}")
            found = json.loads(connection.getresponse().read())["parameters"].get("engine")
        except (OSError, ValueError, KeyError):
            found = None
        finally:
            connection.close()
        if found == engine:
            return time.monotonic() - started
        time.sleep(0.02)
    raise RuntimeError(f"{model}: the engine did not become {engine} within {timeout_s:.0f} s")
