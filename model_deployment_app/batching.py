"""Adaptive batching: concurrent requests share one model call, then each gets its own rows.

One model call runs at a time. Requests that arrive while it runs queue up and form the next
batch, so batches grow with load and a lone request waits for nothing. Before taking a batch
the batcher gives the event loop turns for as long as each turn adds requests: those whose
bytes are already read, or already waiting on a socket, join this call rather than each
making the next one (a turn costs microseconds; a model call tens of them).
`max_batch_delay_ms` optionally holds a batch open for stragglers.

A call runs in a thread, off the event loop, unless its key may run inline (`inline`) and the
last call for that key took less than `inline_below_seconds` (scaled by rows): then it runs on
the loop itself. Handing a call to a thread and its answer back costs tens of microseconds and
two context switches, more than a small scikit-learn call does; and such a call holds the GIL
all along, so the thread would not have let the loop serve anyone meanwhile anyway.

A merged call that raises is split in halves and retried, down to single requests, so only the
requests that cause the failure get it: one bad request never fails the others batched with it.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from model_deployment_app.inputs import ModelInput, concat

# A batch key says what to compute (here: which loaded model, which output); only requests
# with equal keys share a call.
ModelCall = Callable[[Hashable, ModelInput], np.ndarray]
BatchObserver = Callable[[Hashable, np.ndarray, float], None]  # key, answers, seconds
_KEYS_REMEMBERED = 16


@dataclass
class _Pending:
    key: Hashable
    rows: ModelInput
    future: asyncio.Future[np.ndarray] = field(repr=False)
    timing: list[int] | None = None  # filled with the call's [start ns, end ns, rows]


class Batcher:
    def __init__(
        self,
        call: ModelCall,
        executor: Executor,
        max_rows: int,
        max_delay_seconds: float = 0.0,
        observe: BatchObserver | None = None,
        inline_below_seconds: float = 0.0,
        inline: Callable[[Hashable], bool] = lambda key: True,
    ) -> None:
        self._call = call
        self._executor = executor
        self._max_rows = max_rows
        self._max_delay = max_delay_seconds
        self._observe = observe
        self._inline_below = inline_below_seconds
        self._may_inline = inline
        # hash(key): (seconds, rows) of its last call and of the one before. By hash, so that
        # a model swapped out is never kept alive by its measurement.
        self._last_call: dict[int, tuple[tuple[float, int], tuple[float, int]]] = {}
        self._queue: list[_Pending] = []
        self._queued_rows = 0
        self._wakeup: asyncio.Event | None = None
        self._full: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None

    async def predict(
        self, key: Hashable, rows: ModelInput, timing: list[int] | None = None
    ) -> np.ndarray:
        """Return the model's answer for `key` and `rows`, computed in some batch. `timing`:
        filled with that call's start and end (epoch nanoseconds) and its rows (a trace's)."""
        if self._worker is None or self._worker.done():
            self._start()
        assert self._wakeup is not None and self._full is not None
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(key, rows, future, timing))
        self._queued_rows += len(rows)
        self._wakeup.set()
        if self._queued_rows >= self._max_rows:
            self._full.set()
        return await future

    def _start(self) -> None:
        self._wakeup, self._full = asyncio.Event(), asyncio.Event()
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="mda-batcher")

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        for pending in self._queue:
            if not pending.future.done():
                pending.future.cancel()
        self._queue.clear()
        self._queued_rows = 0

    def _take_batch(self) -> list[_Pending]:
        """Requests in arrival order up to max_rows (one request alone may exceed it)."""
        taken, rows = 0, 0
        for pending in self._queue:
            if taken and rows + len(pending.rows) > self._max_rows:
                break
            taken += 1
            rows += len(pending.rows)
        batch, self._queue = self._queue[:taken], self._queue[taken:]
        self._queued_rows -= rows
        return batch

    async def _run(self) -> None:
        assert self._wakeup is not None and self._full is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            await self._gather_ready()
            if self._max_delay and self._queued_rows < self._max_rows:
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self._max_delay)
            batch = self._take_batch()
            for key in dict.fromkeys(p.key for p in batch):
                group = [p for p in batch if p.key == key and not p.future.done()]
                if group:
                    await self._run_group(loop, key, group)

    async def _gather_ready(self) -> None:
        """Yield to the event loop until a turn adds no rows or the batch is full."""
        seen = -1
        while self._queued_rows != seen and self._queued_rows < self._max_rows:
            seen = self._queued_rows
            await asyncio.sleep(0)

    def _runs_inline(self, key: Hashable, rows: int) -> bool:
        """Whether a call of `rows` rows is expected to be quick enough for the loop: the
        quicker of the last two calls for `key`, scaled up to this many rows (never down),
        under the threshold. (One call the OS preempted, on a busy core, does not send the
        next ones to the thread.)"""
        last = self._last_call.get(hash(key))
        if last is None or not self._may_inline(key):
            return False  # never measured (the thread measures it), or never inline
        return min(s * max(1.0, rows / r) for s, r in last) < self._inline_below

    def _remember(self, key: Hashable, seconds: float, rows: int) -> None:
        if hash(key) not in self._last_call and len(self._last_call) >= _KEYS_REMEMBERED:
            self._last_call.clear()  # keys of models no longer served: let them go
        last = self._last_call.get(hash(key))
        self._last_call[hash(key)] = ((seconds, rows), last[0] if last else (seconds, rows))

    async def _run_group(
        self, loop: asyncio.AbstractEventLoop, key: Hashable, group: list[_Pending]
    ) -> None:
        rows = concat([p.rows for p in group])
        started, started_ns = time.perf_counter(), time.time_ns()
        try:
            if self._runs_inline(key, len(rows)):
                result = self._call(key, rows)
            else:
                result = await loop.run_in_executor(self._executor, self._call, key, rows)
            if len(result) != len(rows):
                raise RuntimeError(f"the model returned {len(result)} rows for {len(rows)}")
        except Exception as error:
            if len(group) == 1:
                if not group[0].future.done():
                    group[0].future.set_exception(error)
                return
            half = len(group) // 2  # find the guilty: each half on its own
            await self._run_group(loop, key, group[:half])
            await self._run_group(loop, key, group[half:])
            return
        seconds = time.perf_counter() - started
        self._remember(key, seconds, len(rows))
        if self._observe is not None:
            self._observe(key, result, seconds)
        offset = 0
        for pending in group:
            end = offset + len(pending.rows)
            if pending.timing is not None:
                pending.timing[:] = (started_ns, started_ns + int(seconds * 1e9), len(rows))
            if not pending.future.done():
                pending.future.set_result(result[offset:end])
            offset = end
