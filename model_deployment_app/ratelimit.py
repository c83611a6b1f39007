"""Rate limits per caller (`MDA_RATE_LIMIT`), counted by the `limits` library.

With `MDA_REDIS_URL` the count lives in Redis and is shared by every replica and worker, so
the limit holds for the model, not per pod. If Redis fails, this pod counts alone (in
memory) and says so once, then tries Redis again after a pause.
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


class RateLimiter:
    def __init__(self, rate: str, redis_url: str | None = None, timeout_s: float = 0.05) -> None:
        from limits.aio.storage import MemoryStorage
        from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

        self.rate = parse_rate(rate)
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._shared: Any = None
        if redis_url:
            from limits.aio.storage import RedisStorage

            uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
            storage = RedisStorage(
                uri, implementation="redispy", wrap_exceptions=True,
                socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                key_prefix="mda-rate",
            )  # fmt: skip
            # A fixed window in Redis: one round trip a request, and close to the moving one.
            self._shared = FixedWindowRateLimiter(storage)
        self._shared_down_until = 0.0

    async def hit(self, caller: str) -> float | None:
        """Count one request of `caller`: None if it is within the limit, else the seconds
        until it may try again."""
        limiter = self._local
        if self._shared is not None and time.monotonic() >= self._shared_down_until:
            try:
                allowed = await self._shared.hit(self.rate, caller)
                if self._shared_down_until:
                    log.warning("rate limit: Redis answers again; counting shared")
                    self._shared_down_until = 0.0
                return None if allowed else await self._retry_after(self._shared, caller)
            except Exception as error:  # limits' StorageError, or the transport's own
                if self._shared_down_until == 0.0:
                    log.warning("rate limit: Redis failed (%s); counting in this pod alone",
                                type(error).__name__)  # fmt: skip
                self._shared_down_until = time.monotonic() + REDIS_RETRY_SECONDS
        if await limiter.hit(self.rate, caller):
            return None
        return await self._retry_after(limiter, caller)

    async def _retry_after(self, limiter: Any, caller: str) -> float:
        try:
            stats = await limiter.get_window_stats(self.rate, caller)
            return max(1.0, math.ceil(stats.reset_time - time.time()))
        except Exception:
            return float(self.rate.get_expiry())
