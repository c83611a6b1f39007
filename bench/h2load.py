"""Measure with h2load (Debian's nghttp2-client): the same C load generator for gRPC (HTTP/2)
and for REST (HTTP/1.1), so the two are compared on equal terms.

A gRPC call is an HTTP/2 POST of a 5-byte frame header and the protobuf message, which h2load
sends as it is; every reply is checked afterwards by one real gRPC call (h2load sees only the
HTTP status, 200 even for a gRPC error)."""

import resource
import shutil
import subprocess
import tempfile
from array import array
from pathlib import Path

from loadgen import LoadResult


def available() -> bool:
    return shutil.which("h2load") is not None


GRPC_HEADERS = {"content-type": "application/grpc", "te": "trailers"}


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: no compression, 4-byte big-endian length."""
    return b"\0" + len(message).to_bytes(4, "big") + message


def run(
    url: str, body: bytes, headers: dict[str, str], clients: int, duration_s: float, http1: bool
) -> LoadResult:
    """`clients` connections, one request in flight on each, for `duration_s` seconds."""
    with tempfile.TemporaryDirectory(prefix="mda-h2load-") as tmp:
        data, log = Path(tmp) / "body", Path(tmp) / "log"
        data.write_bytes(body)
        duration_ms = max(1, round(duration_s * 1000))
        command = [
            "h2load", "-c", str(clients), "-m", "1", "-t", "1", "-D", f"{duration_ms}ms",
            "-d", str(data), "--log-file", str(log), *(["--h1"] if http1 else []),
        ]  # fmt: skip
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            [*command, url], capture_output=True, text=True, timeout=duration_s + 60
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise RuntimeError(f"h2load failed: {done.stderr.strip() or done.stdout[-500:]}")
        result = LoadResult(elapsed_s=duration_s)
        result.client_cpu_s = (after.ru_utime - before.ru_utime) + (
            after.ru_stime - before.ru_stime
        )
        latencies = array("q")
        for line in log.read_text().splitlines():
            _start, status, duration_us = line.split("\t")[:3]
            if status.startswith("2"):
                result.ok += 1
                latencies.append(int(duration_us) * 1000)
            else:
                result.errors += 1
        result.latencies_ns = latencies
        return result
