"""Where payload records go (`MDA_PAYLOAD_LOG`), one class per kind of destination.

Each sink takes a batch of records from the writer's thread and raises when it cannot write
them (the writer counts them as dropped and says so once). `flush_seconds` is how long a
sink may hold records before it must write them (0: at once).

- `stdout`: one JSON line per record;
- `file:///path`: the same lines appended, rotated by size (the standard library's
  `RotatingFileHandler`), flushed with each batch;
- `gs://bucket/prefix/`: the lines batched into objects under the prefix, written every
  `MDA_PAYLOAD_LOG_FLUSH_SECONDS` and at shutdown, with google-cloud-storage's client and
  credentials, as the model source;
- `http(s)://...`: CloudEvents in binary mode, as KServe's logger sends them: a request event
  and a response event per inference, sharing `ce-id`.
"""

import logging
import logging.handlers
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from model_deployment_app.errors import StartupError

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
REQUEST_EVENT = "org.kubeflow.serving.inference.request"
RESPONSE_EVENT = "org.kubeflow.serving.inference.response"


class Sink(Protocol):
    flush_seconds: float

    def write(self, records: list[dict[str, Any]]) -> None: ...

    def close(self) -> None: ...


def _line(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record, option=_OPTIONS) + b"\n"


class StdoutSink:
    flush_seconds = 0.0

    def write(self, records: list[dict[str, Any]]) -> None:
        sys.stdout.buffer.write(b"".join(_line(r) for r in records))
        sys.stdout.buffer.flush()

    def close(self) -> None:
        sys.stdout.flush()


class FileSink:
    flush_seconds = 0.0

    def __init__(self, path: Path, max_bytes: int, backups: int = 5) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handler = logging.handlers.RotatingFileHandler(
                path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
            )
        except OSError as error:
            raise StartupError(f"MDA_PAYLOAD_LOG: cannot write {path}: {error.strerror}") from None
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        self._handler.handleError = self._raise  # type: ignore[method-assign]

    @staticmethod
    def _raise(record: logging.LogRecord) -> None:
        raise  # the exception being handled: the writer reports it

    def write(self, records: list[dict[str, Any]]) -> None:
        # One write and one flush a batch; emit() rotates first when it would pass max_bytes.
        lines = b"".join(_line(record) for record in records)[:-1].decode()
        self._handler.emit(logging.makeLogRecord({"msg": lines}))

    def close(self) -> None:
        self._handler.close()


class GcsSink:
    """Objects `<prefix><UTC time>-<host>-<pid>-<n>.jsonl`, one per flush."""

    def __init__(self, bucket: str, prefix: str, flush_seconds: float) -> None:
        from google.cloud import storage

        self.flush_seconds = flush_seconds
        # A client of its own: the writer's thread uploads while model polls download.
        self._bucket = storage.Client().bucket(bucket)
        self._prefix = prefix
        self._name = f"{socket.gethostname()}-{os.getpid()}"
        self._count = 0

    def write(self, records: list[dict[str, Any]]) -> None:
        self._count += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        blob = self._bucket.blob(f"{self._prefix}{stamp}-{self._name}-{self._count:06d}.jsonl")
        blob.upload_from_string(
            b"".join(_line(r) for r in records), content_type="application/x-ndjson", timeout=30
        )

    def close(self) -> None:
        pass


class CloudEventsSink:
    """Two binary-mode CloudEvents per record, posted to `url`: the inputs as the request
    event's data, the outputs (or the error) as the response event's, both with the record's
    id and the model's name, version and track as extensions."""

    flush_seconds = 0.0

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        import httpx
        from cloudevents.core.bindings.http import to_binary_event
        from cloudevents.core.v1.event import CloudEvent

        self._event, self._binary = CloudEvent, to_binary_event  # imported once, not a batch
        self._url = url
        self._client = httpx.Client(timeout=timeout)
        self._source = f"http://{socket.gethostname()}/"

    def write(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            common = {
                "id": record["id"], "source": self._source, "datacontenttype": "application/json",
                "inferenceservicename": record["model"] or "model", "track": record["track"],
                "endpoint": record["route"],
                **({"modelversion": record["version"]} if record["version"] else {}),
            }  # fmt: skip
            request = {"inputs": record["inputs"], "time_sent": record["time"]}
            response = {k: record[k] for k in ("outputs", "status", "error", "latency_ms")}
            for kind, data in ((REQUEST_EVENT, request), (RESPONSE_EVENT, response)):
                event = self._event({**common, "type": kind}, orjson.dumps(data, option=_OPTIONS))
                message = self._binary(event)
                self._client.post(
                    self._url, headers=message.headers, content=message.body
                ).raise_for_status()

    def close(self) -> None:
        self._client.close()


def check_target(target: str) -> None:
    """StartupError in one line unless `target` names a sink (nothing is opened)."""
    parts = urlsplit(target)
    if target == "stdout" or (parts.scheme == "file" and parts.path):
        return
    if parts.scheme in ("gs", "http", "https") and parts.netloc:
        return
    raise StartupError(
        f"MDA_PAYLOAD_LOG={target!r}: use stdout, file:///path, gs://bucket/prefix/ or an "
        "http(s):// URL (CloudEvents)"
    )


def sink_for(target: str, flush_seconds: float, max_bytes: int, worker: int | None) -> Sink:
    """The sink `MDA_PAYLOAD_LOG` names (`check_target` has said it is one). With several
    workers, each writes its own file (`<path>.<worker>`): rotation is per writer."""
    check_target(target)
    parts = urlsplit(target)
    if target == "stdout":
        return StdoutSink()
    if parts.scheme == "file":
        return FileSink(Path(parts.path + (f".{worker}" if worker is not None else "")), max_bytes)
    if parts.scheme == "gs":
        prefix = parts.path.lstrip("/")
        return GcsSink(parts.netloc, prefix if not prefix or prefix.endswith("/") else prefix + "/",
                       flush_seconds)  # fmt: skip
    return CloudEventsSink(target)
