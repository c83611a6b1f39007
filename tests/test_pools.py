"""A model pool (`models:`): many models in one real server, each on its own path, within a
memory budget."""

import asyncio
import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import joblib
import numpy as np
import pandas as pd
import psutil
import pytest
import yaml
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline

from model_deployment_app.grpc_v2 import grpc_predict_v2_pb2 as pb
from model_deployment_app.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.conftest import PEOPLE_INPUTS, TEXT_INPUTS, ServerProcess, serving_config

Start = Callable[..., ServerProcess]


def write_pool(folder: Path, models: list[tuple[str, Any, dict[str, Any]]]) -> Path:
    """Dump each (name, estimator, config keys) and write one pool config naming them all."""
    entries = []
    for name, estimator, keys in models:
        artifact = folder / f"{name}.joblib"
        joblib.dump(estimator, artifact)
        entries.append(serving_config(artifact, name=name, **keys))
    path = folder / "pool.yaml"
    path.write_text(yaml.safe_dump({"models": entries}))
    return path


def index(server: ServerProcess, **headers: str) -> dict[str, dict[str, str]]:
    reply = httpx.post(f"{server.url}/v2/repository/index", headers=headers)
    assert reply.status_code == 200, reply.text
    return {entry["name"]: entry for entry in reply.json()}


def metric(server: ServerProcess, line_start: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(line_start))


@pytest.fixture
def family_pool(
    tmp_path: Path,
    iris_pipeline: Pipeline,
    mixed_pipeline: Pipeline,
    text_pipeline: Pipeline,
    gb_regressor: Any,
) -> Path:
    return write_pool(tmp_path, [
        ("iris", iris_pipeline, {"job": "classification", "input_size": 4}),
        ("people", mixed_pipeline, {"job": "classification", "inputs": PEOPLE_INPUTS}),
        ("reviews", text_pipeline, {"job": "classification", "inputs": TEXT_INPUTS}),
        ("diabetes", gb_regressor, {"job": "regression", "input_size": 10}),
    ])  # fmt: skip


def test_every_model_of_a_pool_answers_on_every_route_form_with_its_own_answers(
    start_server: Start,
    family_pool: Path,
    iris: tuple[np.ndarray, np.ndarray],
    iris_pipeline: Pipeline,
    people: tuple[pd.DataFrame, np.ndarray],
    mixed_pipeline: Pipeline,
    text_pipeline: Pipeline,
    diabetes: tuple[np.ndarray, np.ndarray],
    gb_regressor: Any,
) -> None:
    server = start_server(family_pool)
    url = server.url
    rows = iris[0][:3]
    frame = people[0].head(3)
    texts = ["loved it", "boring plot"]
    numbers = diabetes[0][:3]

    # /<name>/predict, as the model's own chart would answer it
    got = httpx.post(f"{url}/iris/predict", json={"instances": rows.tolist()}).json()
    np.testing.assert_allclose(got["predictions"], iris_pipeline.predict_proba(rows), atol=1e-9)
    records = frame.to_dict(orient="records")
    got = httpx.post(f"{url}/people/predict", json={"instances": records}).json()
    np.testing.assert_allclose(got["predictions"], mixed_pipeline.predict_proba(frame), atol=1e-9)
    got = httpx.post(f"{url}/reviews/predict", json={"instances": texts}).json()
    np.testing.assert_allclose(got["predictions"], text_pipeline.predict_proba(texts), atol=1e-9)
    got = httpx.post(f"{url}/diabetes/predict", json={"instances": numbers.tolist()}).json()
    np.testing.assert_allclose(got["predictions"], gb_regressor.predict(numbers), atol=1e-9)

    # V2 by name, with and without the model's prefix
    tensor = {"name": "input-0", "shape": [3, 4], "datatype": "FP64", "data": rows.ravel().tolist()}
    expected = iris_pipeline.predict_proba(rows).ravel()
    for path in ("/v2/models/iris/infer", "/iris/v2/models/iris/infer"):
        reply = httpx.post(f"{url}{path}", json={"inputs": [tensor]}).json()
        assert reply["model_name"] == "iris"
        np.testing.assert_allclose(reply["outputs"][0]["data"], expected, atol=1e-9)
    regression = {"name": "input-0", "shape": [3, 10], "datatype": "FP64",
                  "data": numbers.ravel().tolist()}  # fmt: skip
    reply = httpx.post(f"{url}/v2/models/diabetes/infer", json={"inputs": [regression]}).json()
    np.testing.assert_allclose(
        reply["outputs"][0]["data"], gb_regressor.predict(numbers), atol=1e-9
    )

    # gRPC by model_name
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        request = pb.ModelInferRequest(model_name="diabetes", inputs=[
            pb.ModelInferRequest.InferInputTensor(
                name="input-0", datatype="FP64", shape=[3, 10],
                contents=pb.InferTensorContents(fp64_contents=numbers.ravel().tolist()),
            )
        ])  # fmt: skip
        answer = stub.ModelInfer(request)
        values = np.frombuffer(answer.raw_output_contents[0], dtype=np.float64)
        np.testing.assert_allclose(values, gb_regressor.predict(numbers), atol=1e-9)
        assert stub.ModelReady(pb.ModelReadyRequest(name="people")).ready
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelInfer(pb.ModelInferRequest(model_name="nope", inputs=request.inputs))
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        assert "'nope'" in str(refused.value.details())

    # each model's metadata, playground and readiness under its own path
    meta = httpx.get(f"{url}/people/v2/models/people").json()
    assert [i["name"] for i in meta["inputs"]] == [i["name"] for i in PEOPLE_INPUTS]
    assert httpx.get(f"{url}/reviews/").headers["content-type"].startswith("text/html")
    facts = httpx.get(f"{url}/reviews/playground/model").json()
    assert facts["name"] == "reviews" and facts["classes"] == ["neg", "pos"]
    assert httpx.get(f"{url}/diabetes/v2/health/ready").status_code == 200
    assert set(index(server)) == {"iris", "people", "reviews", "diabetes"}
    assert {e["state"] for e in index(server).values()} == {"READY"}
    assert metric(server, 'mda_requests_total{method="POST",model="people"') == 1

    # unknown names, and a model's path asked for another's
    for method, path in [
        ("POST", "/nope/predict"), ("POST", "/v2/models/nope/infer"), ("GET", "/v2/models/nope"),
        ("POST", "/iris/v2/models/people/infer"), ("POST", "/predict"),
    ]:  # fmt: skip
        reply = httpx.request(method, f"{url}{path}", json={"inputs": [tensor]})
        assert reply.status_code == 404, (path, reply.text)
        assert "not found" in reply.json()["error"] or "pool" in reply.json()["error"], reply.text


def forests(count: int, trees: int) -> list[tuple[RandomForestClassifier, np.ndarray]]:
    """`count` forests of a few MiB each, each trained on its own data (so each answers its
    own way), with rows to ask them."""
    made = []
    for seed in range(count):
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(3000, 8))
        y = (X[:, seed % 8] + rng.normal(scale=0.5, size=3000) > 0).astype(int)
        forest = RandomForestClassifier(n_estimators=trees, random_state=seed).fit(X, y)
        made.append((forest, rng.normal(size=(4, 8))))
    return made


def forest_pool(folder: Path, made: list[tuple[RandomForestClassifier, np.ndarray]]) -> Path:
    """A pool of `forests`, named forest-0, forest-1..."""
    return write_pool(folder, [
        (f"forest-{i}", forest, {"job": "classification", "input_size": 8})
        for i, (forest, _) in enumerate(made)
    ])  # fmt: skip


def forest_sizes(server: ServerProcess, count: int) -> list[float]:
    """What each of a forest pool's models holds, as the server measured it."""
    return [metric(server, f'mda_model_memory_bytes{{model="forest-{i}"}}') for i in range(count)]


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_budget_for_two_of_four_forests_serves_them_all_in_any_order(
    start_server: Start, tmp_path: Path
) -> None:
    made = forests(4, trees=40)
    config = forest_pool(tmp_path, made)
    sizing = start_server(config, MDA_CACHE_ENABLED="false", MDA_COMPILE="off")
    sizes = forest_sizes(sizing, 4)
    assert min(sizes) > 1 << 20, sizes  # each a few MiB: measured, not guessed
    sizing.stop()
    budget = int(sorted(sizes)[-1] + sorted(sizes)[-2]) + (256 << 10)
    server = start_server(
        config, MDA_MEMORY_BUDGET=str(budget), MDA_CACHE_ENABLED="false", MDA_COMPILE="off"
    )
    states = index(server)
    assert sum(e["state"] == "READY" for e in states.values()) == 2, states

    draw = random.Random(5)
    order = [draw.randrange(4) for _ in range(120)]
    seen_loaded: list[int] = []

    async def ask(client: httpx.AsyncClient, which: int) -> tuple[int, Any]:
        rows = made[which][1]
        reply = await client.post(f"/forest-{which}/predict", json={"instances": rows.tolist()})
        return which, reply

    async def watch(client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            reply = await client.post("/v2/repository/index")
            seen_loaded.append(sum(e["state"] == "READY" for e in reply.json()))
            await asyncio.sleep(0.01)

    async def run() -> list[tuple[int, Any]]:
        limits = httpx.Limits(max_connections=8)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
            stop = asyncio.Event()
            watcher = asyncio.create_task(watch(client, stop))
            results = await asyncio.gather(*(ask(client, which) for which in order))
            stop.set()
            await watcher
            return results

    for which, reply in asyncio.run(run()):
        assert reply.status_code == 200, reply.text
        forest, rows = made[which]
        np.testing.assert_allclose(reply.json()["predictions"], forest.predict_proba(rows))
    assert seen_loaded and max(seen_loaded) <= 2, seen_loaded
    assert metric(server, "mda_model_evictions_total") > 0
    assert metric(server, "mda_model_loads_total") > 4, httpx.get(f"{server.url}/metrics").text
    loaded = metric(server, "mda_model_memory_bytes")
    assert loaded <= budget
    # The process holds the loaded models within the budget, plus what a server holds anyway
    # (measured: the same server with no model loaded beyond the smallest).
    rss = resident_mib(server.process.pid)
    lone_folder = tmp_path / "lone"
    lone_folder.mkdir()
    lone = start_server(
        forest_pool(lone_folder, made[:1]), MDA_CACHE_ENABLED="false", MDA_COMPILE="off"
    )
    baseline = resident_mib(lone.process.pid) - sizes[0] / (1 << 20)
    assert rss <= baseline + budget / (1 << 20) + 16, (rss, baseline, budget / (1 << 20))


def test_a_model_bigger_than_the_budget_stops_the_pool_in_one_line(
    start_server: Start, tmp_path: Path
) -> None:
    [(forest, _)] = forests(1, trees=40)
    config = write_pool(tmp_path, [("big", forest, {"job": "classification", "input_size": 8})])
    server = start_server(config, wait=False, MDA_MEMORY_BUDGET="1Mi")
    assert server.process.wait(timeout=60) == 1
    lines = [line for line in server.output().splitlines() if line.startswith("mda: error:")]
    assert len(lines) == 1, server.output()
    assert "'big'" in lines[0] and "1.0 MiB" in lines[0] and "MDA_MEMORY_BUDGET" in lines[0]


def test_a_bad_model_is_unavailable_alone(
    start_server: Start, tmp_path: Path, iris_pipeline: Pipeline, iris: tuple[np.ndarray, Any]
) -> None:
    config = write_pool(tmp_path, [
        ("iris", iris_pipeline, {"job": "classification", "input_size": 4}),
        ("wrong", iris_pipeline, {"job": "classification", "input_size": 7}),
    ])  # fmt: skip
    server = start_server(config)
    states = index(server)
    assert states["iris"]["state"] == "READY"
    assert (
        states["wrong"]["state"] == "UNAVAILABLE" and "inputSize is 7" in states["wrong"]["reason"]
    )
    assert httpx.post(f"{server.url}/wrong/predict", json=[[0] * 7]).status_code == 503
    assert httpx.get(f"{server.url}/wrong/v2/health/ready").status_code == 503
    rows = iris[0][:2].tolist()
    assert httpx.post(f"{server.url}/iris/predict", json=rows).status_code == 200


def test_one_model_of_a_pool_is_refreshed_alone(
    start_server: Start, tmp_path: Path, iris_pipeline: Pipeline, iris: tuple[np.ndarray, Any]
) -> None:
    X, y = iris
    first = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    second = RandomForestClassifier(n_estimators=7, random_state=1).fit(X, y)
    config = write_pool(tmp_path, [
        ("iris", iris_pipeline, {"job": "classification", "input_size": 4}),
        ("forest", first, {"job": "classification", "input_size": 4, "refreshSeconds": 1}),
    ])  # fmt: skip
    server = start_server(config, MDA_CACHE_ENABLED="false")
    before = index(server)
    staged = tmp_path / "staged.joblib"
    joblib.dump(second, staged)
    staged.replace(tmp_path / "forest.joblib")
    deadline = time.monotonic() + 30
    while index(server)["forest"]["version"] == before["forest"]["version"]:
        assert time.monotonic() < deadline, "the new version was not picked up"
        time.sleep(0.2)
    after = index(server)
    assert after["iris"]["version"] == before["iris"]["version"]
    got = httpx.post(f"{server.url}/forest/predict", json=X[:5].tolist()).json()
    np.testing.assert_allclose(got["predictions"], second.predict_proba(X[:5]))
    assert metric(server, 'mda_model_reloads_total{model="forest"}') == 1
    assert metric(server, 'mda_model_reloads_total{model="iris"}') == 0


def pod_pss_mib(pid: int) -> float:
    """The proportional set size of a server and its workers together: pages they share
    (copy-on-write after the fork) counted once."""
    root = psutil.Process(pid)
    processes = [root, *root.children(recursive=True)]
    return sum(p.memory_full_info().pss for p in processes) / (1 << 20)


def test_two_workers_hold_the_budget_of_the_pod_together(
    start_server: Start, tmp_path: Path
) -> None:
    made = forests(4, trees=40)
    config = forest_pool(tmp_path, made)
    quiet = {"MDA_CACHE_ENABLED": "false", "MDA_COMPILE": "off"}
    sizing = start_server(config, **quiet)
    sizes = forest_sizes(sizing, 4)
    sizing.stop()
    # Each worker holds what half the budget fits: two forests each, never all four.
    budget = 2 * int(sorted(sizes)[-1] + sorted(sizes)[-2]) + (512 << 10)
    server = start_server(config, MDA_WORKERS="2", MDA_MEMORY_BUDGET=str(budget), **quiet)

    async def ask_all() -> list[tuple[int, Any]]:
        limits = httpx.Limits(max_connections=8)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
            order = [random.Random(9).randrange(4) for _ in range(160)]
            replies = await asyncio.gather(*(
                client.post(f"/forest-{i}/predict", json={"instances": made[i][1].tolist()})
                for i in order
            ))  # fmt: skip
            return list(zip(order, replies, strict=True))

    for which, reply in asyncio.run(ask_all()):
        assert reply.status_code == 200, reply.text
        forest, rows = made[which]
        np.testing.assert_allclose(reply.json()["predictions"], forest.predict_proba(rows))
    assert len(psutil.Process(server.process.pid).children()) == 2
    pool_pss = pod_pss_mib(server.process.pid)
    loaded = metric(server, "mda_model_memory_bytes")  # both workers' series, summed
    assert loaded <= budget, (loaded, budget)
    # What the same two-worker pod holds with one forest and no budget to fill.
    lone_folder = tmp_path / "lone"
    lone_folder.mkdir()
    lone = start_server(forest_pool(lone_folder, made[:1]), MDA_WORKERS="2", **quiet)
    httpx.post(f"{lone.url}/forest-0/predict", json={"instances": made[0][1].tolist()})
    baseline = pod_pss_mib(lone.process.pid)
    # Measured here: about 33 MiB over the lone pod for a 17 MiB budget; the rest is what two
    # workers' heaps keep of 160 requests and of the loads they freed (glibc's arenas).
    assert pool_pss <= baseline + budget / (1 << 20) + 24, (pool_pss, baseline, budget >> 20)


def test_a_model_loaded_on_demand_is_compiled_once_it_is_asked_often(
    start_server: Start, tmp_path: Path
) -> None:
    made = forests(2, trees=40)
    config = forest_pool(tmp_path, made)
    settings = {"MDA_CACHE_ENABLED": "false", "MDA_COMPILE": "approx"}
    # A budget too small for either says what the first takes (before any engine).
    sizing = start_server(config, wait=False, MDA_MEMORY_BUDGET="1Mi", **settings)
    assert sizing.process.wait(timeout=60) == 1
    size = re.search(r"takes ([0-9.]+) MiB", sizing.output())
    assert size is not None, sizing.output()
    budget = int(float(size.group(1)) * 1.4 * (1 << 20))  # one forest, not two
    server = start_server(config, MDA_MEMORY_BUDGET=str(budget), **settings)
    assert index(server)["forest-1"]["state"] != "READY"  # only one fits
    forest, rows = made[1]

    def engine() -> dict[str, float]:
        return {
            name: metric(server, f'mda_model_engine{{engine="{name}",model="forest-1"')
            for name in ("sklearn", "onnxruntime")
        }

    for count in range(100):
        reply = httpx.post(f"{server.url}/forest-1/predict", json=rows.tolist())
        assert reply.status_code == 200, reply.text
        if count == 0:  # loaded on demand: served as it is, not converted for one request
            time.sleep(3)  # a conversion started now would be done (measured: about 1 s)
            assert engine() == {"sklearn": 1, "onnxruntime": 0}
        np.testing.assert_allclose(reply.json()["predictions"], forest.predict_proba(rows))
    deadline = time.monotonic() + 60
    while engine()["onnxruntime"] != 1:
        assert time.monotonic() < deadline, engine()
        time.sleep(0.2)
    reply = httpx.post(f"{server.url}/forest-1/predict", json=rows.tolist())
    np.testing.assert_allclose(reply.json()["predictions"], forest.predict_proba(rows), atol=1e-6)
