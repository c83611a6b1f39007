"""Named, mixed-type and text inputs through `mda serve` as a real process: skops artifacts,
MLServer's own pandas request, and 200 concurrent distinct requests through the cache and
adaptive batching, each answer the model's own."""

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from tests.conftest import PEOPLE_INPUTS, TEXT_INPUTS, ServerProcess
from tests.peers import run_peer
from tests.test_named_inputs import records

pytestmark = pytest.mark.slow

Start = Callable[..., ServerProcess]


def distinct_people(count: int) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, count),
            "income": rng.normal(50_000, 15_000, count).round(3),
            "city": rng.choice(["Paris", "Lyon", "Nice", "Lille", "Brest"], count),
            "member": rng.choice([True, False], count),
        }
    )


async def post_each(url: str, bodies: list[Any]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        return await asyncio.gather(*(client.post(url, json=body) for body in bodies))


@pytest.mark.parametrize("workers", ["1", "2"])
def test_200_concurrent_distinct_mixed_rows_through_cache_and_batching(
    workers: str, start_server: Start, write_model: Callable, mixed_pipeline: Pipeline
) -> None:
    config, _ = write_model(
        mixed_pipeline, job="classification", inputs=PEOPLE_INPUTS, model_type="skops"
    )
    server = start_server(config, MDA_WORKERS=workers, MDA_MAX_BATCH_DELAY_MS="2")
    frame = distinct_people(200)
    bodies = [{"instances": [record]} for record in records(frame)]
    expected = mixed_pipeline.predict_proba(frame)
    for _ in range(2):  # computed in batches, then answered from the cache
        replies = asyncio.run(post_each(f"{server.url}/predict", bodies))
        assert {r.status_code for r in replies} == {200}
        answers = [r.json()["predictions"][0] for r in replies]
        np.testing.assert_allclose(answers, expected, atol=1e-9)
    metrics = httpx.get(f"{server.url}/metrics").text
    hits = metric(metrics, 'mda_cache_hits_total{model="toy"}')
    # One worker answers the whole second pass from its cache; each of two caches its own half.
    assert hits == 200 if workers == "1" else 0 < hits <= 200
    assert metric(metrics, 'mda_batch_rows_count{model="toy"}') < 400 - hits, (
        "requests shared model calls"
    )


def metric(text: str, name: str) -> float:
    [line] = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(line.split()[-1])


def test_mlservers_pandas_codec_request_is_served(
    start_server: Start, write_model: Callable, mixed_pipeline: Pipeline
) -> None:
    config, _ = write_model(
        mixed_pipeline, job="classification", inputs=PEOPLE_INPUTS, name="people"
    )
    server = start_server(config)
    frame = distinct_people(7)
    request = run_peer("mlserver_pandas_request.py", json.dumps(records(frame)))
    reply = httpx.post(f"{server.url}/v2/models/people/infer", json=request)
    assert reply.status_code == 200, reply.text
    [output] = reply.json()["outputs"]
    np.testing.assert_allclose(
        np.reshape(output["data"], output["shape"]), mixed_pipeline.predict_proba(frame), atol=1e-9
    )


def test_a_text_pipeline_from_skops_over_rest_and_v2(
    start_server: Start, write_model: Callable, text_pipeline: Pipeline
) -> None:
    config, _ = write_model(
        text_pipeline, job="classification", inputs=TEXT_INPUTS, model_type="skops", name="reviews"
    )
    server = start_server(config)
    texts = ["what a great film", "dull, boring and slow", "superb"]
    rest = httpx.post(f"{server.url}/predict", json={"instances": texts}).json()
    np.testing.assert_allclose(rest["predictions"], text_pipeline.predict_proba(texts), atol=1e-9)
    tensor = {"name": "review", "shape": [3, 1], "datatype": "BYTES", "data": texts}
    body = {"inputs": [tensor], "outputs": [{"name": "predict"}]}
    v2 = httpx.post(f"{server.url}/v2/models/reviews/infer", json=body).json()
    assert v2["outputs"][0]["data"] == text_pipeline.predict(texts).tolist()
    bad = httpx.post(f"{server.url}/predict", json={"instances": ["fine", 7]})
    assert bad.status_code == 422 and "row 1, column 'review'" in bad.json()["error"]
    assert httpx.post(f"{server.url}/predict", json={"instances": ["ok"]}).status_code == 200
