"""How many threads a model's library may use: the container's CPU budget divided among the
workers, so N workers never run N times the cores (LightGBM's and ONNX Runtime's defaults take
every core of the node, whatever the pod's limit)."""

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Thread counts to apply in a pre-forked worker, once forked (see `use_threads`).
_after_fork: list[tuple[Callable[[int], Any], int]] = []
_in_forked_worker = False


def _after_fork_in_child() -> None:
    global _in_forked_worker
    _in_forked_worker = True
    for apply, threads in _after_fork:
        apply(threads)


os.register_at_fork(after_in_child=_after_fork_in_child)


def cpu_budget() -> float:
    """The CPUs this container may use: its cgroup quota (a pod's `limits.cpu`), else the
    cores it is allowed to run on."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            return max(1.0, int(quota) / int(period))
    except (OSError, ValueError):
        pass
    return float(len(os.sched_getaffinity(0)))


def threads_per_worker(workers: int) -> int:
    return max(1, int(cpu_budget() // max(1, workers)))


def use_threads(apply: Callable[[int], Any], threads: int, workers: int) -> None:
    """Call `apply(threads)` to size a library's thread pool, without breaking pre-forked
    workers: OpenMP's pool (XGBoost, LightGBM, torch) and ONNX Runtime's do not survive a fork,
    so a parent that ran a parallel region leaves its children hanging in their first one. A
    parent about to fork keeps one thread (no pool); each worker takes its share once forked."""
    if workers > 1 and not _in_forked_worker:
        _after_fork.append((apply, threads))
        apply(1)
    else:
        apply(threads)
