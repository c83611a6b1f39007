"""The payload log's background writer: requests hand their exchanges to a bounded queue and
never wait; one thread turns them into records and writes them to the sink.

A slow or dead sink costs requests nothing: when the queue is full, an exchange is dropped and
counted (`mda_payload_log_dropped_total`); a sink that fails is logged once, its records
dropped and counted, and logged once more when it works again. `close` writes what is queued
within its timeout (the server calls it on SIGTERM, within the grace period).
"""

import contextlib
import logging
import queue
import threading
import time
from typing import Any

from model_deployment_app.payload_log.exchange import Exchange
from model_deployment_app.payload_log.sinks import Sink

log = logging.getLogger(__name__)

_BATCH = 256  # records written together at most
_STOP = object()


class Writer:
    def __init__(self, sink: Sink, redact: frozenset[str], capacity: int, dropped: Any,
                 written: Any) -> None:  # fmt: skip
        self.sink = sink
        self.redact = redact
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=capacity)
        self._dropped = dropped  # prometheus counters
        self._written = written
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="mda-payload-log", daemon=True)
        self._thread.start()

    def submit(self, exchange: Exchange) -> None:
        try:
            self._queue.put_nowait(exchange)
        except queue.Full:
            self._dropped.inc()

    def close(self, timeout: float) -> None:
        """Write what is queued, then stop (at most `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._queue.put(_STOP, timeout=max(0.01, deadline - time.monotonic()))
                break
            except queue.Full:
                if time.monotonic() >= deadline:
                    break
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            log.warning("payload log: %d records not written at shutdown", self._queue.qsize())

    def _run(self) -> None:
        pending: list[dict[str, Any]] = []
        oldest = 0.0
        stopping = False
        while not stopping:
            wait = None
            if pending:
                wait = max(0.0, oldest + self.sink.flush_seconds - time.monotonic())
            try:
                item = self._queue.get(timeout=wait if pending else 1.0)
            except queue.Empty:
                item = None
            while item is not None:
                if item is _STOP:
                    stopping = True
                    break
                record = self._record(item)
                if record is not None:
                    if not pending:
                        oldest = time.monotonic()
                    pending.append(record)
                if len(pending) >= _BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = None
            due = pending and (
                stopping or len(pending) >= _BATCH
                or time.monotonic() >= oldest + self.sink.flush_seconds
            )  # fmt: skip
            if due:
                self._write(pending)
                pending = []
        with contextlib.suppress(Exception):  # shutting down: nothing left to tell
            self.sink.close()

    def _record(self, exchange: Exchange) -> dict[str, Any] | None:
        try:
            return exchange.record(self.redact)
        except Exception:  # a record that cannot be made is one record lost, not the writer
            self._dropped.inc()
            log.exception("payload log: cannot make the record of request %s", exchange.request_id)
            return None

    def _write(self, records: list[dict[str, Any]]) -> None:
        try:
            self.sink.write(records)
        except Exception as error:  # whatever the sink raises: serving goes on
            self._dropped.inc(len(records))
            if not self._failing:
                self._failing = True
                log.error(
                    "payload log: cannot write to its sink (%s: %s); records are dropped and "
                    "counted in mda_payload_log_dropped_total until it works again",
                    type(error).__name__, str(error).splitlines()[0] if str(error) else "",
                )  # fmt: skip
            return
        self._written.inc(len(records))
        if self._failing:
            self._failing = False
            log.warning("payload log: its sink works again")
