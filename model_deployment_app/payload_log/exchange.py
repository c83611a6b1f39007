"""One request and its answer, as the payload log records it.

An `Exchange` is begun where a request comes in (the fast path for HTTP, the gRPC servicer),
made the current one for the request's task (`CURRENT`), filled by the data plane with what
the model received and said, and finished with the status. Turning it into a record (lists,
names, redaction) happens in the writer's thread, off the request's path.
"""

import time
from contextvars import ContextVar
from typing import Any

import numpy as np

from model_deployment_app.inputs import ModelInput, Table

CURRENT: ContextVar["Exchange | None"] = ContextVar("mda_payload_exchange", default=None)
REDACTED = "***"


class Exchange:
    __slots__ = (
        "error",
        "input_names",
        "inputs",
        "latency",
        "model",
        "outputs",
        "protocol",
        "request_id",
        "route",
        "sampled",
        "started",
        "status",
        "trace_id",
        "track",
        "version",
        "wall",
    )  # fmt: skip

    def __init__(self, request_id: str, model: str, track: str, route: str, protocol: str) -> None:
        self.request_id = request_id
        self.model = model
        self.version = ""
        self.track = track
        self.route = route
        self.protocol = protocol
        self.trace_id = ""
        self.started = time.perf_counter()
        self.wall = time.time()
        self.inputs: ModelInput | None = None
        self.input_names: tuple[str, ...] | None = None
        self.outputs: dict[str, np.ndarray] = {}
        self.status = 0
        self.error = ""
        self.latency = 0.0

    def saw(self, version: str, names: tuple[str, ...] | None, rows: ModelInput, output: str,
            values: np.ndarray) -> None:  # fmt: skip
        """The data plane's part: the rows the model received and what it answered."""
        self.version = version
        self.inputs, self.input_names = rows, names
        self.outputs[output] = values

    def finish(self, status: int, error: str = "") -> None:
        self.status, self.error = status, error
        self.latency = time.perf_counter() - self.started

    def record(self, redact: frozenset[str]) -> dict[str, Any]:
        """The JSON record (the writer's thread calls this): inputs by column name."""
        return {
            "id": self.request_id,
            "time": _iso_time(self.wall),
            "model": self.model,
            "version": self.version,
            "track": self.track,
            "route": self.route,
            "protocol": self.protocol,
            "status": self.status,
            "error": self.error or None,
            "latency_ms": round(self.latency * 1000, 3),
            "trace_id": self.trace_id or None,
            "inputs": _columns(self.inputs, self.input_names, redact),
            "outputs": {name: _plain(values) for name, values in self.outputs.items()},
        }


_second: list[Any] = [-1, ""]  # the last second formatted (the writer's thread alone asks)


def _iso_time(wall: float) -> str:
    """`2026-12-06T14:02:11.512+00:00`, the second's part formatted once a second."""
    seconds = int(wall)
    if seconds != _second[0]:
        _second[:] = seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{_second[1]}.{int((wall - seconds) * 1000):03d}+00:00"


def _plain(values: np.ndarray) -> Any:
    """What orjson writes as it is (numbers' arrays: OPT_SERIALIZE_NUMPY), else a list."""
    if values.dtype.kind in "biuf" and values.flags.c_contiguous:
        return values
    return values.tolist()


def _columns(
    rows: ModelInput | None, names: tuple[str, ...] | None, redact: frozenset[str]
) -> dict[str, Any] | None:
    """Named columns as lists; rows of numbers by their feature names when the model knows
    them, else as one `input-0` matrix. A redacted column keeps its length, not its values."""
    if rows is None:
        return None
    columns: dict[str, Any]
    if isinstance(rows, Table):
        columns = {name: _plain(values) for name, values in rows.columns.items()}
    elif names is not None and len(names) == rows.shape[1]:
        columns = {name: rows[:, index].tolist() for index, name in enumerate(names)}
    else:
        columns = {"input-0": _plain(rows)}
    for name in redact & columns.keys():
        columns[name] = [REDACTED] * len(columns[name])
    return columns
