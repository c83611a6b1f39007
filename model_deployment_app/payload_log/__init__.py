"""The payload log (`MDA_PAYLOAD_LOG`): what each model received and answered, request by
request, written in the background to stdout, a file, GCS or a CloudEvents endpoint
(docs: guides/watching.md).

`PayloadLog.begin` starts an exchange for a request (every request gets an id, echoed in
`x-request-id`; `MDA_PAYLOAD_LOG_SAMPLE` decides which are recorded), the data plane notes what
the model saw in the current exchange, and `finish` hands it to the writer. Off (unset), none
of this runs.
"""

import os
import random
import uuid
from collections.abc import Callable

from model_deployment_app.metrics import Metrics
from model_deployment_app.payload_log.exchange import CURRENT, Exchange
from model_deployment_app.payload_log.sinks import sink_for
from model_deployment_app.payload_log.writer import Writer
from model_deployment_app.settings import PayloadLogSettings

__all__ = ["CURRENT", "Exchange", "PayloadLog"]


class PayloadLog:
    def __init__(self, settings: PayloadLogSettings, metrics: Metrics, track: str,
                 workers: int, version_of: Callable[[str], str]) -> None:  # fmt: skip
        assert settings.payload_log is not None
        self.settings = settings
        self.metrics = metrics
        self.track = track
        self.workers = workers
        self.sample = settings.payload_log_sample
        self.version_of = version_of  # a model's version now, for a request refused early
        self.writer: Writer | None = None
        # Refuse a target that is no sink at start, in one line (before any fork).
        sink_for(settings.payload_log, 0, settings.payload_log_max_bytes, None).close()

    def start(self) -> None:
        """Open the sink and start the writer in the process that serves (after a fork)."""
        settings = self.settings
        assert settings.payload_log is not None
        sink = sink_for(
            settings.payload_log, settings.payload_log_flush_seconds,
            settings.payload_log_max_bytes, os.getpid() if self.workers > 1 else None,
        )  # fmt: skip
        self.writer = Writer(
            sink, settings.redacted, settings.payload_log_queue,
            self.metrics.payload_log_dropped, self.metrics.payload_log_records,
        )  # fmt: skip

    def begin(self, request_id: str | None, model: str, route: str, protocol: str) -> Exchange:
        exchange = Exchange(request_id or uuid.uuid4().hex, model, self.track, route, protocol)
        exchange.sampled = self.sample >= 1.0 or random.random() < self.sample
        return exchange

    def finish(self, exchange: Exchange, status: int, error: str = "") -> None:
        if exchange.sampled and self.writer is not None:
            exchange.finish(status, error)
            if not exchange.version:
                exchange.version = self.version_of(exchange.model)
            self.writer.submit(exchange)

    def close(self, timeout: float) -> None:
        if self.writer is not None:
            self.writer.close(timeout)
            self.writer = None
