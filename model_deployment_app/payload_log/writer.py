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

DRAIN_SECONDS = 0.2  # how often the writer takes what requests queued
_MOST_HELD = 20_000  # records held for a sink's flush at most (then written at once)


class Writer:
    def __init__(self, sink: Sink, redact: frozenset[str], capacity: int, dropped: Any,
                 written: Any) -> None:  # fmt: skip
        self.sink = sink
        self.redact = redact
        self._queue: queue.SimpleQueue[Exchange] = queue.SimpleQueue()
        self._capacity = capacity
        self._dropped = dropped  # prometheus counters
        self._written = written
        self._failing = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mda-payload-log", daemon=True)
        self._thread.start()

    def submit(self, exchange: Exchange) -> None:
        if self._queue.qsize() >= self._capacity:
            self._dropped.inc()
            return
        self._queue.put(exchange)

    def close(self, timeout: float) -> None:
        """Write what is queued, then stop (at most `timeout` seconds)."""
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("payload log: %d records not written at shutdown", self._queue.qsize())

    def _run(self) -> None:
        """Every DRAIN_SECONDS, take what is queued (one wake-up for many requests: the
        thread shares the GIL with them), and write it once the sink's flush time is due."""
        pending: list[dict[str, Any]] = []
        oldest = 0.0
        while True:
            stopping = self._stop.wait(DRAIN_SECONDS)
            while True:
                try:
                    exchange = self._queue.get_nowait()
                except queue.Empty:
                    break
                record = self._record(exchange)
                if record is None:
                    continue
                if not pending:
                    oldest = time.monotonic()
                pending.append(record)
                if len(pending) >= _MOST_HELD:
                    self._write(pending)
                    pending = []
            if pending and (stopping or time.monotonic() >= oldest + self.sink.flush_seconds):
                self._write(pending)
                pending = []
            if stopping:
                break
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
