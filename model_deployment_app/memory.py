"""This process's memory: what it holds, how to give freed memory back, the container's limit,
and byte sizes as people write them (`512Mi`)."""

import ctypes
import ctypes.util
import functools
import gc
import os
import re
from pathlib import Path

_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(Ki|Mi|Gi|K|M|G)?\s*$")


def parse_bytes(text: str) -> int:
    """`1073741824`, `512Mi`, `1.5Gi`, `800M` as bytes; ValueError naming the form otherwise."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size: bytes, or a number with Ki, Mi, Gi (or K, M, G)")
    return int(float(match.group(1)) * _UNITS[match.group(2) or ""])


def resident_bytes() -> int:
    """This process's resident memory (RSS), from /proc; 0 where there is none."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def give_back(collect: bool = True) -> None:
    """Collect what was let go and hand the freed pages back to the system: without
    `malloc_trim`, glibc keeps them, and the process's RSS never falls after an unload.
    `collect=False` while serving: what reference counting freed is handed back without a
    full collection (which holds the GIL for milliseconds, every request's)."""
    if collect:
        gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def container_memory_limit() -> int | None:
    """The cgroup's memory limit in bytes (v2, then v1), or None where there is none."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # v1 says "no limit" with a huge number
            return int(text)
    return None
