"""One bad request harms no other: values the model refuses are a 422 naming the row, only
for the request that sent them, even when batched with good ones."""

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from model_deployment_app.api import create_app
from model_deployment_app.settings import CacheSettings, Settings
from tests.conftest import ServerProcess, loaded

POISON = 1e39  # finite in float64, past float32: trees cast to float32 and fail on it


@pytest.fixture(scope="module")
def forest() -> RandomForestClassifier:
    X, y = load_iris(return_X_y=True)
    return RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def scaled_forest() -> Pipeline:
    """The forest behind a scaler: the server cannot tell its range up front."""
    X, y = load_iris(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=10, random_state=0)
    return make_pipeline(StandardScaler(), forest).fit(X, y)


def test_a_tree_models_float32_range_is_checked_up_front(forest: RandomForestClassifier) -> None:
    with TestClient(create_app(Settings(), model=loaded(forest, "classification", 4))) as client:
        reply = client.post("/predict", json=[[5.1, 3.5, 1.4, 0.2], [5.1, POISON, 1.4, 0.2]])
    assert reply.status_code == 422
    assert reply.json()["error"].startswith("row 1, feature 1: 1e+39 is past what the model")


def test_values_the_model_refuses_are_422_naming_the_first_such_row(
    scaled_forest: Pipeline,
) -> None:
    settings = Settings(cache=CacheSettings(cache_enabled=True))
    model = loaded(scaled_forest, "classification", 4)
    with TestClient(create_app(settings, model=model)) as client:
        good = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
        client.post("/predict", json=good)  # cached: the bad request is only partly computed
        reply = client.post("/predict", json=[*good, [1.0, 1.0, 1.0, 1.0], [POISON, 1, 1, 1]])
        assert reply.status_code == 422, reply.text
        assert reply.json()["error"].startswith("row 3: the model cannot take it: ")
        answer = client.post("/predict", json=good).json()["predictions"]
    np.testing.assert_allclose(answer, scaled_forest.predict_proba(good))


async def mixed_load(url: str, good: np.ndarray, poisoned: set[int]) -> list[httpx.Response]:
    rows = [[POISON, 1.0, 1.0, 1.0] if i in poisoned else good[i].tolist()
            for i in range(len(good))]  # fmt: skip
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=60), timeout=30) as client:
        return await asyncio.gather(*(client.post(url, json=[row]) for row in rows))


@pytest.mark.slow
def test_poison_requests_among_200_concurrent_good_ones_fail_alone(
    start_server: Callable[..., ServerProcess], write_model: Callable, scaled_forest: Pipeline
) -> None:
    config, _ = write_model(scaled_forest, job="classification", input_size=4)
    server = start_server(config, MDA_MAX_BATCH_DELAY_MS="5", MDA_CACHE_ENABLED="false")
    good = np.random.default_rng(5).uniform(0, 8, size=(200, 4))
    poisoned = set(range(3, 200, 20))
    replies = asyncio.run(mixed_load(f"{server.url}/predict", good, poisoned))
    for index, reply in enumerate(replies):
        if index in poisoned:
            assert reply.status_code == 422, reply.text
            assert reply.json()["error"].startswith("row 0: the model cannot take it")
        else:
            assert reply.status_code == 200, reply.text
            expected: Any = scaled_forest.predict_proba(good[index : index + 1])
            np.testing.assert_allclose(reply.json()["predictions"], expected)
    metrics = httpx.get(f"{server.url}/metrics").text
    sizes = [line for line in metrics.splitlines() if line.startswith("mda_batch_rows_sum")]
    count = [line for line in metrics.splitlines() if line.startswith("mda_batch_rows_count")]
    assert float(sizes[0].split()[-1]) / float(count[0].split()[-1]) > 1, "batches were merged"
    server.process.terminate()
    server.process.wait(timeout=15)
    log = server.output()
    assert log.count("the model refused row") == len(poisoned)  # one line each
    assert "Traceback" not in log
