"""The payload log (`MDA_PAYLOAD_LOG`): what each model received and answered, request by
request, written in the background to stdout, a file, GCS or a CloudEvents endpoint
(docs: guides/watching.md).

`PayloadLog.begin` starts an exchange for a request the sample takes (`MDA_PAYLOAD_LOG_SAMPLE`;
its id the caller's `x-request-id` or one made, echoed in the answer), the data plane notes
what the model saw in the current exchange, and `finish` hands it to the writer. Off (unset), none
of this runs.
"""

import itertools
import os
import random
import uuid
from collections.abc import Callable

from model_deployment_app.metrics import Metrics
from model_deployment_app.payload_log.exchange import CURRENT, Exchange
from model_deployment_app.payload_log.sinks import check_target, sink_for
from model_deployment_app.payload_log.writer import Writer
from model_deployment_app.settings import PayloadLogSettings

__all__ = ["CURRENT", "MAX_REQUEST_ID", "Exchange", "PayloadLog"]

MAX_REQUEST_ID = 200  # characters of a caller's request id kept (and echoed)


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
        self._prefix = uuid.uuid4().hex[:12]
        self._count = itertools.count(1)
        check_target(settings.payload_log)  # at start, in one line, before any fork

    def start(self) -> None:
        """Open the sink and start the writer in the process that serves (after a fork)."""
        settings = self.settings
        assert settings.payload_log is not None
        self._prefix = uuid.uuid4().hex[:12]  # each worker its own
        sink = sink_for(
            settings.payload_log, settings.payload_log_flush_seconds,
            settings.payload_log_max_bytes, os.getpid() if self.workers > 1 else None,
        )  # fmt: skip
        self.writer = Writer(
            sink, settings.redacted, settings.payload_log_queue,
            self.metrics.payload_log_dropped, self.metrics.payload_log_records,
        )  # fmt: skip

    def begin(
        self, request_id: str | None, model: str, route: str, protocol: str
    ) -> Exchange | None:
        """The request's exchange, made the current one of its task (`CURRENT`, which the
        data plane fills), or None when the sample leaves it out."""
        if self.sample < 1.0 and random.random() >= self.sample:
            return None
        if request_id is None:  # this process's prefix and a count: unique, and cheap
            request_id = f"{self._prefix}-{next(self._count)}"
        else:
            request_id = request_id[:MAX_REQUEST_ID]
        exchange = Exchange(request_id, model, self.track, route, protocol)
        CURRENT.set(exchange)
        return exchange

    def finish(self, exchange: Exchange, status: int, error: str = "") -> None:
        if self.writer is not None:
            exchange.finish(status, error)
            if not exchange.version:
                exchange.version = self.version_of(exchange.model)
            self.writer.submit(exchange)

    def close(self, timeout: float) -> None:
        if self.writer is not None:
            self.writer.close(timeout)
            self.writer = None
