"""Watch a server's memory while a test talks to it: fails when its RSS grows past a bound.

The next bug where a client's number sizes an allocation shows here first: the request may
still get its error in time, but the pod would have held gigabytes for it.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import psutil

MIB = 1024 * 1024


def _rss(process: psutil.Process) -> int:
    total = 0
    for each in (process, *process.children(recursive=True)):
        with suppress(psutil.NoSuchProcess):
            total += each.memory_info().rss
    return total


@contextmanager
def rss_growth_below(pid: int, bound_mib: float, every_s: float = 0.005) -> Iterator[None]:
    """Sample the RSS of `pid` (and its workers) while the block runs; fail when the peak
    exceeds the RSS at the start by more than `bound_mib`."""
    process = psutil.Process(pid)
    start = _rss(process)
    peak = start
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss(process))
            done.wait(every_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield
    finally:
        done.set()
        sampler.join()
        peak = max(peak, _rss(process))
    grown = (peak - start) / MIB
    assert grown <= bound_mib, f"the server's RSS grew by {grown:.0f} MiB (bound {bound_mib})"
