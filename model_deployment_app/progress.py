"""A download's progress in the log: every few seconds while it runs (bytes, percent where the
size is known, rate), and once at its end; nothing at all for one that ends within a second
and before the first report. The bytes are read from the files as they grow on disk, so the
same watch serves a GCS object, a GCS folder and an MLflow model."""

import logging
import threading
import time
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

_QUIET_SECONDS = 1.0


def _bytes_under(path: Path) -> int:
    try:
        if path.is_file():
            return path.stat().st_size
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    except OSError:  # a file renamed or removed while counted: the next report counts it
        return 0


def _megabytes(count: float) -> str:
    return f"{count / 1e6:.1f} MB"


class DownloadProgress:
    """`with DownloadProgress(uri, where, total): download()` logs as described above."""

    def __init__(self, uri: str, where: Path, total: int | None, every: float = 5.0) -> None:
        self.uri = uri
        self.where = where
        self.total = total or None
        self.every = every
        self.reports = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="mda-progress", daemon=True)
        self._started = 0.0

    def __enter__(self) -> "DownloadProgress":
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        seconds = time.monotonic() - self._started
        if kind is None and (self.reports or seconds >= _QUIET_SECONDS):
            done = _bytes_under(self.where)
            log.info(
                "downloaded %s: %s in %.1fs (%s/s)",
                self.uri, _megabytes(done), seconds, _megabytes(done / max(seconds, 1e-9)),
            )  # fmt: skip

    def _watch(self) -> None:
        while not self._stop.wait(self.every):
            seconds = time.monotonic() - self._started
            done = _bytes_under(self.where)
            share = (
                f" of {_megabytes(self.total)} ({100 * done / self.total:.0f}%)"
                if self.total
                else ""
            )
            log.info(
                "downloading %s: %s%s, %s/s",
                self.uri, _megabytes(done), share, _megabytes(done / seconds),
            )  # fmt: skip
            self.reports += 1
