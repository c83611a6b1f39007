"""Rate limits per caller (`MDA_RATE_LIMIT`), counted by the `limits` library.

With `MDA_REDIS_URL` the count lives in Redis and is shared by every replica and worker, so
the limit holds for the model, not per pod. If Redis fails, this pod counts alone (in
memory) and says so once, then tries Redis again after a pause.

The count is a fixed window, in memory as in Redis: one counter per caller and period
(a caller can fit up to twice the limit across a window's edge), counted in lots (see
`RateLimiter`).
`limits`' moving window keeps every hit in a list, and its memory storage sweeps expired
keys from a new timer thread every 10 ms under load, a thread that contends for the GIL with
every request: here the sweep runs inline once a second instead (reads expire keys anyway).
"""

import logging
import math
import time
from typing import Any

log = logging.getLogger(__name__)

# After a Redis failure, how long to count alone before trying Redis again.
REDIS_RETRY_SECONDS = 5.0


def parse_rate(text: str) -> Any:
    """`100/second`, `5000/minute`, `10 per 2 seconds`...: a `limits` rate item, or
    ValueError naming what is accepted."""
    from limits import parse

    try:
        return parse(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a rate limit: give a count per period, e.g. 100/second or 5000/minute"
        ) from None


def _memory_storage() -> Any:
    from limits.storage import MemoryStorage

    class InlineSweepMemoryStorage(MemoryStorage):
        _next_sweep = 0.0

        def _MemoryStorage__schedule_expiry(self) -> None:  # replaces the timer thread's
            now = time.monotonic()
            if now >= self._next_sweep:
                self._next_sweep = now + 1.0
                sweep = getattr(self, "_MemoryStorage__expire_events", None)
                if sweep is not None:
                    sweep()

    return InlineSweepMemoryStorage()


class RateLimiter:
    """Counts each caller's requests in lots of 1 % of the limit (one library call, one Redis
    round trip, a lot): a caller may go over by less than a lot, and a caller found over the
    limit is refused at once until its window lets it in again."""

    def __init__(self, rate: str, redis_url: str | None = None, timeout_s: float = 0.05) -> None:
        from limits.strategies import FixedWindowRateLimiter

        self.rate = parse_rate(rate)
        self._lot = max(1, int(self.rate.amount) // 100)
        self._pending: dict[str, int] = {}
        self._refused_until: dict[str, float] = {}
        self._local = FixedWindowRateLimiter(_memory_storage())
        self._shared: Any = None
        if redis_url:
            from limits.aio import strategies
            from limits.aio.storage import RedisStorage

            uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
            storage = RedisStorage(
                uri, implementation="redispy", wrap_exceptions=True,
                socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                key_prefix="mda-rate",
            )  # fmt: skip
            self._shared = strategies.FixedWindowRateLimiter(storage)  # one round trip a request
        self._shared_down_until = 0.0

    @property
    def shared(self) -> bool:
        return self._shared is not None

    def _still_refused(self, caller: str) -> float | None:
        """The seconds left of a refusal already given to `caller`, if any."""
        until = self._refused_until.get(caller)
        if until is None:
            return None
        left = until - time.monotonic()
        if left > 0:
            return float(math.ceil(left))
        del self._refused_until[caller]
        return None

    def _lot_due(self, caller: str) -> int | None:
        """How many requests of `caller` to count now: None while its lot is filling."""
        if self._lot == 1:
            return 1
        count = self._pending.get(caller, 0) + 1
        if count < self._lot:
            self._pending[caller] = count
            return None
        self._pending[caller] = 0
        return count

    def _refused(self, caller: str, wait: float) -> float:
        for seen in (self._pending, self._refused_until):
            if len(seen) > 100_000:  # callers seen once, long ago: forget them
                seen.clear()
        self._refused_until[caller] = time.monotonic() + wait
        return wait

    def _count_here(self, caller: str, cost: int) -> float | None:
        if self._local.hit(self.rate, caller, cost=cost):
            return None
        return self._refused(caller, self._wait(self._local.get_window_stats(self.rate, caller)))

    def hit_here(self, caller: str) -> float | None:
        """`hit`, counted in this pod alone (no Redis): without an await."""
        wait = self._still_refused(caller)
        if wait is not None:
            return wait
        cost = self._lot_due(caller)
        return None if cost is None else self._count_here(caller, cost)

    async def hit(self, caller: str) -> float | None:
        """Count one request of `caller`: None if it is within the limit, else the seconds
        until it may try again."""
        wait = self._still_refused(caller)
        if wait is not None:
            return wait
        cost = self._lot_due(caller)
        if cost is None:
            return None
        if self._shared is not None and time.monotonic() >= self._shared_down_until:
            try:
                allowed = await self._shared.hit(self.rate, caller, cost=cost)
                if self._shared_down_until:
                    log.warning("rate limit: Redis answers again; counting shared")
                    self._shared_down_until = 0.0
                if allowed:
                    return None
                return self._refused(caller, await self._retry_after(self._shared, caller))
            except Exception as error:  # limits' StorageError, or the transport's own
                if self._shared_down_until == 0.0:
                    log.warning("rate limit: Redis failed (%s); counting in this pod alone",
                                type(error).__name__)  # fmt: skip
                self._shared_down_until = time.monotonic() + REDIS_RETRY_SECONDS
        return self._count_here(caller, cost)

    async def _retry_after(self, limiter: Any, caller: str) -> float:
        try:
            return self._wait(await limiter.get_window_stats(self.rate, caller))
        except Exception:
            return float(self.rate.get_expiry())

    def _wait(self, stats: Any) -> float:
        """Whole seconds until the window lets the caller in again (at least 1)."""
        return max(1.0, math.ceil(stats.reset_time - time.time()))
