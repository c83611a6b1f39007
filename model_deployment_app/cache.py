"""Prediction cache, one entry per row: in-process LRU by default, Redis when configured.

Keys are built by the handler from the artifact's sha256, the output name and the row's
float64 bytes, so a new model version never gets old answers. Redis failures never fail a
request: the cache steps aside for `redis_retry_seconds`, logs once, and comes back by itself.
"""

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import orjson

from model_deployment_app.memory import container_memory_limit
from model_deployment_app.settings import CacheSettings

log = logging.getLogger(__name__)


class PredictionCache(Protocol):
    async def get_many(self, keys: Sequence[bytes]) -> list[np.ndarray | None]: ...

    def set_many(self, keys: Sequence[bytes], values: np.ndarray) -> None: ...

    async def close(self) -> None: ...


# What an entry costs beyond its key and value bytes: the dict slot, the tuple, the float,
# the ndarray header (measured with tracemalloc on CPython 3.11, rounded up).
_ENTRY_OVERHEAD = 256


def _entry_bytes(key: bytes, value: np.ndarray) -> int:
    size = len(key) + value.nbytes + _ENTRY_OVERHEAD
    if value.dtype == object:  # labels: the strings themselves
        size += sum(len(str(v)) + 49 for v in value.ravel())
    return size


class MemoryCache:
    """A per-process LRU with a TTL, bounded in entries and in bytes."""

    def __init__(self, max_entries: int, ttl_seconds: float, max_bytes: int = 256 << 20) -> None:
        self._entries: OrderedDict[bytes, tuple[float, np.ndarray, int]] = OrderedDict()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._ttl = ttl_seconds
        self.size_bytes = 0

    async def get_many(self, keys: Sequence[bytes]) -> list[np.ndarray | None]:
        now = time.monotonic()
        found: list[np.ndarray | None] = []
        for key in keys:
            entry = self._entries.get(key)
            if entry is None or entry[0] < now:
                found.append(None)
            else:
                self._entries.move_to_end(key)
                found.append(entry[1])
        return found

    def set_many(self, keys: Sequence[bytes], values: np.ndarray) -> None:
        expires = time.monotonic() + self._ttl
        for key, value in zip(keys, values, strict=True):
            stored = np.array(value)  # a copy; scalars (labels) too
            size = _entry_bytes(key, stored)
            old = self._entries.pop(key, None)
            if old is not None:
                self.size_bytes -= old[2]
            self._entries[key] = (expires, stored, size)
            self.size_bytes += size
        while self._entries and (
            len(self._entries) > self._max_entries or self.size_bytes > self._max_bytes
        ):
            self.size_bytes -= self._entries.popitem(last=False)[1][2]

    async def close(self) -> None:
        self._entries.clear()
        self.size_bytes = 0


def encode(value: np.ndarray) -> bytes:
    if value.dtype == np.float64:
        return (b"s" if value.ndim == 0 else b"v") + value.tobytes()
    return b"j" + orjson.dumps(value.tolist())


def decode(payload: bytes) -> np.ndarray:
    tag, body = payload[:1], payload[1:]
    if tag == b"s":
        return np.frombuffer(body, dtype=np.float64).reshape(())
    if tag == b"v":
        return np.frombuffer(body, dtype=np.float64)
    return np.asarray(orjson.loads(body))


class RedisCache:
    """Redis shared by every replica; fails open."""

    _MAX_PENDING_WRITES = 256

    def __init__(self, url: str, settings: CacheSettings) -> None:
        import redis.asyncio as redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        timeout = settings.redis_timeout_ms / 1000
        self._client: Any = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
        )
        self._ttl_ms = int(settings.cache_ttl_seconds * 1000)
        self._retry_seconds = settings.redis_retry_seconds
        self._down_until = 0.0
        self._writes: set[asyncio.Task[None]] = set()
        self._url = url

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, error: BaseException) -> None:
        if self._down_until == 0.0:
            log.warning(
                "redis cache at %s unavailable (%s); serving without it, retrying every %.0fs",
                self._url, type(error).__name__, self._retry_seconds,
            )  # fmt: skip
        self._down_until = time.monotonic() + self._retry_seconds

    def _succeeded(self) -> None:
        if self._down_until:
            log.warning("redis cache at %s is back", self._url)
            self._down_until = 0.0

    async def get_many(self, keys: Sequence[bytes]) -> list[np.ndarray | None]:
        if not self.available:
            return [None] * len(keys)
        try:
            payloads = await self._client.mget(keys)
        except Exception as error:  # any client, socket or timeout error: serve without
            self._failed(error)
            return [None] * len(keys)
        self._succeeded()
        return [None if p is None else decode(p) for p in payloads]

    def set_many(self, keys: Sequence[bytes], values: np.ndarray) -> None:
        """Write in the background: the response never waits for Redis."""
        if not self.available or len(self._writes) >= self._MAX_PENDING_WRITES:
            return
        task = asyncio.get_running_loop().create_task(self._write(keys, values))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, keys: Sequence[bytes], values: np.ndarray) -> None:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key, value in zip(keys, values, strict=True):
                    pipe.set(key, encode(value), px=self._ttl_ms)
                await pipe.execute()
        except Exception as error:
            self._failed(error)

    async def close(self) -> None:
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        await self._client.aclose()


def default_max_bytes(workers: int) -> int:
    """A quarter of the container's memory, shared by the workers; at most 256 MiB each."""
    limit = container_memory_limit()
    share = limit // 4 // workers if limit else 256 << 20
    return max(1 << 20, min(256 << 20, share))


def build_cache(settings: CacheSettings, workers: int = 1) -> PredictionCache | None:
    if not settings.cache_enabled:
        return None
    if settings.redis_url:
        return RedisCache(settings.redis_url, settings)
    max_bytes = settings.cache_max_bytes or default_max_bytes(workers)
    return MemoryCache(settings.cache_max_entries, settings.cache_ttl_seconds, max_bytes)
