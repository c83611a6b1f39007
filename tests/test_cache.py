"""The prediction cache: in-process LRU, and a real redis-server that dies mid-test."""

import asyncio
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.pipeline import Pipeline

from model_deployment_app.api import create_app
from model_deployment_app.cache import MemoryCache, RedisCache, build_cache, decode, encode
from model_deployment_app.settings import CacheSettings, Settings
from tests.conftest import RedisServer, loaded, start_redis


def test_memory_cache_evicts_the_least_recently_used() -> None:
    cache = MemoryCache(max_entries=2, ttl_seconds=60)
    cache.set_many([b"a", b"b"], np.array([1.0, 2.0]))

    async def go() -> list[object]:
        await cache.get_many([b"a"])  # touch a: b is now the oldest
        cache.set_many([b"c"], np.array([3.0]))
        return await cache.get_many([b"a", b"b", b"c"])

    a, b, c = asyncio.run(go())
    assert (a, b, c) == (1.0, None, 3.0)


def test_memory_cache_entries_expire() -> None:
    cache = MemoryCache(max_entries=10, ttl_seconds=0.05)
    cache.set_many([b"k"], np.array([[0.2, 0.8]]))
    assert asyncio.run(cache.get_many([b"k"]))[0] is not None
    time.sleep(0.1)
    assert asyncio.run(cache.get_many([b"k"])) == [None]


@pytest.mark.parametrize(
    "value",
    [np.array(0.5), np.array([0.1, 0.9]), np.array("setosa"), np.array(3), np.array([1.0, 2.0])],
)
def test_redis_encoding_round_trips(value: np.ndarray) -> None:
    back = decode(encode(value))
    assert back.shape == value.shape
    assert back.tolist() == value.tolist()


def test_disabled_cache_is_none() -> None:
    assert build_cache(CacheSettings(cache_enabled=False)) is None


def redis_settings(server: RedisServer, **changes: float) -> Settings:
    cache = CacheSettings(redis_url=server.url, redis_retry_seconds=0.2, **changes)
    return Settings(cache=cache)


def test_redis_cache_serves_hits_and_survives_redis_dying_and_returning(
    iris_pipeline: Pipeline, iris: tuple
) -> None:
    redis = start_redis()
    port = redis.port
    X = iris[0][::10]
    expected = iris_pipeline.predict_proba(X)
    app = create_app(redis_settings(redis), model=loaded(iris_pipeline, "classification", 4))
    plane = app.state.plane
    assert isinstance(plane.cache, RedisCache)
    try:
        with TestClient(app) as client:

            def predict() -> list[list[float]]:
                reply = client.post("/predict", json={"instances": X.tolist()})
                assert reply.status_code == 200, reply.text
                return reply.json()["predictions"]

            np.testing.assert_allclose(predict(), expected, atol=1e-9)  # misses, then stored
            time.sleep(0.2)  # writes go in the background
            np.testing.assert_allclose(predict(), expected, atol=1e-9)  # hits
            assert plane.metrics.cache_hits._value.get() == len(X)

            redis.stop()  # redis dies mid-test: requests still succeed, without the cache
            started = time.monotonic()
            for _ in range(5):
                np.testing.assert_allclose(predict(), expected, atol=1e-9)
            assert time.monotonic() - started < 5
            assert not plane.cache.available

            redis = start_redis(port)  # it comes back (empty): the cache fills again
            time.sleep(0.3)
            predict()
            time.sleep(0.2)
            hits_before = plane.metrics.cache_hits._value.get()
            np.testing.assert_allclose(predict(), expected, atol=1e-9)
            assert plane.metrics.cache_hits._value.get() == hits_before + len(X)
    finally:
        redis.stop()


def test_a_new_artifact_never_gets_old_answers(iris_pipeline: Pipeline, redis_server: RedisServer
                                               ) -> None:  # fmt: skip
    row = [[5.0, 3.4, 1.5, 0.2]]
    model_a = loaded(iris_pipeline, "classification", 4)
    model_b = loaded(iris_pipeline, "classification", 4)
    model_b.sha256 = "b" * 64
    for model in (model_a, model_b):
        app = create_app(redis_settings(redis_server), model=model)
        with TestClient(app) as client:
            client.post("/predict", json=row)
            time.sleep(0.1)
            assert app.state.plane.metrics.cache_hits._value.get() == 0


def test_the_memory_cache_is_bounded_in_bytes() -> None:
    cache = MemoryCache(max_entries=1_000_000, ttl_seconds=60, max_bytes=1 << 20)
    rng = np.random.default_rng(0)
    for start in range(0, 20_000, 500):
        keys = [f"k{i}".encode() * 10 for i in range(start, start + 500)]
        cache.set_many(keys, rng.normal(size=(500, 3)))
    assert 0.9 * (1 << 20) < cache.size_bytes <= 1 << 20
    newest = asyncio.run(cache.get_many([f"k{19_999}".encode() * 10]))
    oldest = asyncio.run(cache.get_many([b"k0" * 10]))
    assert newest[0] is not None and oldest == [None]


def test_the_default_byte_bound_follows_the_container_limit(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:  # fmt: skip
    from model_deployment_app import cache as cache_module

    monkeypatch.setattr(cache_module, "container_memory_limit", lambda: 1 << 30)
    assert cache_module.default_max_bytes(workers=2) == (1 << 30) // 8
    monkeypatch.setattr(cache_module, "container_memory_limit", lambda: None)
    assert cache_module.default_max_bytes(workers=1) == 256 << 20
