"""The HTTP API in-process: predictions equal the model's own, errors follow CONTRACT 3."""

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.pipeline import Pipeline

from model_deployment_app.api import create_app
from model_deployment_app.predictor import LoadedModel
from model_deployment_app.settings import CacheSettings, ServerSettings, Settings
from tests.conftest import loaded


def settings(**server: Any) -> Settings:
    return Settings(server=ServerSettings(**server), cache=CacheSettings(cache_enabled=False))


@pytest.fixture
def iris_model(iris_pipeline: Pipeline) -> LoadedModel:
    return loaded(iris_pipeline, "classification", 4, name="iris")


@pytest.fixture
def client(iris_model: LoadedModel) -> Iterator[TestClient]:
    app = create_app(settings(max_body_bytes=4096, max_rows=50), model=iris_model)
    with TestClient(app) as client:
        yield client


def v2_body(rows: np.ndarray, *, nested: bool = False, outputs: list[str] | None = None,
            datatype: str = "FP64") -> dict[str, Any]:  # fmt: skip
    tensor = {"name": "input-0", "shape": list(rows.shape), "datatype": datatype,
              "data": rows.tolist() if nested else rows.ravel().tolist()}  # fmt: skip
    body: dict[str, Any] = {"id": "req-1", "inputs": [tensor]}
    if outputs is not None:
        body["outputs"] = [{"name": name} for name in outputs]
    return body


# --- predictions --------------------------------------------------------------------------


def test_predict_returns_full_probability_rows_in_classes_order(
    client: TestClient, iris_pipeline: Pipeline, iris: tuple
) -> None:
    X = iris[0][::10]
    reply = client.post("/predict", json={"instances": X.tolist()})
    assert reply.status_code == 200
    body = reply.json()
    assert body["classes"] == ["setosa", "versicolor", "virginica"]
    assert body["classes"] == iris_pipeline.classes_.tolist()
    np.testing.assert_allclose(body["predictions"], iris_pipeline.predict_proba(X), atol=1e-9)


def test_a_bare_array_of_rows_is_accepted(client: TestClient, iris_pipeline: Pipeline) -> None:
    rows = [[5.9, 3.0, 5.1, 1.8]]
    reply = client.post("/predict", json=rows)
    np.testing.assert_allclose(reply.json()["predictions"], iris_pipeline.predict_proba(rows),
                               atol=1e-9)  # fmt: skip


@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_v2_infer_predict_proba_flat_or_nested(
    client: TestClient, iris_pipeline: Pipeline, iris: tuple, nested: bool, datatype: str
) -> None:
    X = iris[0][::15]
    reply = client.post("/v2/models/iris/infer", json=v2_body(X, nested=nested, datatype=datatype))
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["model_name"], body["id"]) == ("iris", "req-1")
    [output] = body["outputs"]
    assert output["name"] == "predict_proba"
    assert output["shape"] == [len(X), 3]
    np.testing.assert_allclose(
        np.reshape(output["data"], output["shape"]), iris_pipeline.predict_proba(X), atol=1e-9
    )


def test_v2_may_ask_a_classifier_for_labels_and_probabilities(
    client: TestClient, iris_pipeline: Pipeline, iris: tuple
) -> None:
    X = iris[0][::30]
    reply = client.post("/v2/models/iris/infer",
                        json=v2_body(X, outputs=["predict", "predict_proba"]))  # fmt: skip
    labels, probabilities = reply.json()["outputs"]
    assert labels["name"] == "predict" and labels["datatype"] == "BYTES"
    assert labels["data"] == iris_pipeline.predict(X).tolist()
    np.testing.assert_allclose(probabilities["data"], iris_pipeline.predict_proba(X).ravel(),
                               atol=1e-9)  # fmt: skip


@pytest.mark.parametrize("fixture", ["gb_regressor", "multi_output_regressor"])
def test_regression_on_both_apis(
    fixture: str, request: pytest.FixtureRequest, diabetes: tuple
) -> None:
    estimator = request.getfixturevalue(fixture)
    X = diabetes[0][:25]
    expected = estimator.predict(X)
    with TestClient(create_app(settings(), model=loaded(estimator, "regression", 10))) as c:
        rest = c.post("/predict", json={"instances": X.tolist()}).json()
        v2 = c.post("/v2/models/toy/infer", json=v2_body(X)).json()["outputs"][0]
    assert "classes" not in rest
    np.testing.assert_allclose(rest["predictions"], expected, atol=1e-9)
    assert v2["name"] == "predict" and v2["shape"] == list(expected.shape)
    np.testing.assert_allclose(np.reshape(v2["data"], v2["shape"]), expected, atol=1e-9)


def test_pytorch_estimator_on_both_apis() -> None:
    torch = pytest.importorskip("torch")
    from model_deployment_app.model import PyTorchEstimator

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    estimator = PyTorchEstimator(module, job="classification", classes=["x", "y", "z"])
    X = np.random.default_rng(1).normal(size=(9, 6))
    with TestClient(create_app(settings(), model=loaded(estimator, "classification", 6))) as c:
        rest = c.post("/predict", json={"instances": X.tolist()}).json()
        v2 = c.post("/v2/models/toy/infer", json=v2_body(X, outputs=["predict"])).json()
        metadata = c.get("/v2/models/toy").json()
    assert rest["classes"] == ["x", "y", "z"]
    np.testing.assert_allclose(rest["predictions"], estimator.predict_proba(X), atol=1e-9)
    assert v2["outputs"][0]["data"] == estimator.predict(X).tolist()
    assert metadata["platform"] == "pytorch"


def test_model_metadata_describes_inputs_and_outputs(client: TestClient) -> None:
    metadata = client.get("/v2/models/iris").json()
    assert metadata["name"] == "iris"
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert [o["name"] for o in metadata["outputs"]] == ["predict_proba", "predict", "classes"]
    assert metadata["outputs"][0]["shape"] == [-1, 3]
    assert metadata["outputs"][2] == {"name": "classes", "datatype": "BYTES", "shape": [3]}


def test_health_metrics_and_docs(client: TestClient) -> None:
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/iris/ready").status_code == 200
    client.post("/predict", json=[[1, 2, 3, 4]])
    metrics = client.get("/metrics").text
    assert (
        'mda_requests_total{method="POST",model="iris",route="/predict",status="200"} 1.0'
        in metrics
    )
    assert "mda_batch_rows_bucket" in metrics and 'mda_model_ready{model="iris"} 1.0' in metrics
    assert client.get("/docs").status_code == 200
    assert "/v2/models/{name}/infer" in client.get("/openapi.json").json()["paths"]


# --- bad input: CONTRACT section 3 -------------------------------------------------------

BAD_REQUESTS = [
    ("/predict", b'{"instances": [[1, 2, 3, 4]', 400, "malformed JSON"),
    ("/predict", b"", 400, "empty request body"),
    ("/predict", b'{"instances": [[1, 2, 3]]}', 422, "row 0: expected 4 features"),
    ("/predict", b'{"instances": [[1, 2, 3, 4], [1, 2]]}', 422, "row 1: expected 4 features"),
    ("/predict", b'{"instances": []}', 422, "empty batch"),
    ("/predict", b'{"rows": [[1, 2, 3, 4]]}', 422, '"instances"'),
    ("/predict", b'{"instances": [[1, "a", 3, 4]]}', 422, "row 0, feature 1: expected a number"),
    ("/predict", b'{"instances": [[1, 2, 3, NaN]]}', 422, "row 0, feature 3: expected a finite"),
    ("/predict", b'{"instances": [[1, 2, 3, 1e999]]}', 422, "row 0, feature 3: expected a finite"),
    ("/predict", b'[[1, 2, 3, Infinity]]', 422, "expected a finite number"),
    ("/predict", b'{"instances": [' + b"[1,2,3,4]," * 51 + b"[1,2,3,4]]}", 413, "limit"),
    ("/predict", b'{"instances": [[' + b"1," * 3000 + b"1]]}", 413, "limit"),
    ("/v2/models/iris/infer", b'{"inputs": []}', 422, "a list of tensors"),
    ("/v2/models/iris/infer",
     b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "REAL", "data": [1, 2, 3, 4]}]}',
     422, "datatype 'REAL' is not one of"),
    ("/v2/models/iris/infer",
     b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "BYTES", "data": ["a", "b"]}]}',
     422, "datatype BYTES is not numeric"),
    ("/v2/models/iris/infer",
     b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]},'
     b' {"name": "y", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}',
     422, "expected one input tensor [rows, 4], got 2"),
    ("/predict", b'{"instances": [{"a": 1}]}', 422, "has no named inputs"),
    ("/predict", b'{"dataframe_records": [{"a": 1}]}', 422, "has no named inputs"),
    ("/predict", b'{"dataframe_split": {"columns": ["a"], "data": [[1]]}}', 422, "with 4 columns"),
    ("/v2/models/iris/infer",
     b'{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}',
     422, "shape [1, 3], expected [rows, 4] (inputSize)"),
    ("/v2/models/iris/infer",
     b'{"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}',
     422, "needs 8 values, got 4"),
    ("/v2/models/iris/infer",
     b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}],'
     b' "outputs": [{"name": "decision_function"}]}', 422, "unknown output 'decision_function'"),
    ("/v2/models/other/infer", b'{"inputs": []}', 404, "model 'other' not found"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "status", "message"), BAD_REQUESTS)
def test_bad_requests_get_their_4xx_and_the_server_keeps_serving(
    client: TestClient, path: str, body: bytes, status: int, message: str
) -> None:
    reply = client.post(path, content=body, headers={"content-type": "application/json"})
    assert reply.status_code == status, reply.text
    assert list(reply.json()) == ["error"]
    assert message in reply.json()["error"]
    assert client.post("/predict", json=[[5.1, 3.5, 1.4, 0.2]]).status_code == 200


def test_unknown_routes_and_methods_answer_in_json(client: TestClient) -> None:
    assert client.get("/nope").json() == {"error": "Not Found"}
    reply = client.get("/predict")
    assert reply.status_code == 405 and "error" in reply.json()


def test_every_request_before_the_model_is_ready_is_503(iris_model: LoadedModel) -> None:
    release = threading.Event()

    def slow_loader() -> LoadedModel:
        release.wait(timeout=30)
        return iris_model

    with TestClient(create_app(settings(), loader=slow_loader)) as client:
        assert client.get("/v2/health/live").status_code == 200
        guarded = [
            ("GET", "/v2/health/ready"),
            ("POST", "/predict"),
            ("GET", "/v2/models/iris"),
            ("POST", "/v2/models/iris/infer"),
        ]
        for method, path in guarded:
            reply = client.request(method, path, json=[[1, 2, 3, 4]])
            assert reply.status_code == 503, path
            assert "loading" in reply.json()["error"]
        release.set()
        for _ in range(100):
            if client.get("/v2/health/ready").status_code == 200:
                break
            threading.Event().wait(0.05)
        assert client.post("/predict", json=[[1, 2, 3, 4]]).status_code == 200


# --- concurrency and cache ----------------------------------------------------------------


def test_200_concurrent_requests_with_distinct_rows_each_get_their_own_answer(
    iris_model: LoadedModel, iris_pipeline: Pipeline
) -> None:
    rows = np.random.default_rng(7).normal(loc=4, scale=2, size=(200, 4))
    app = create_app(settings(), model=iris_model)

    async def run() -> list[Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mda") as client:
            replies = await asyncio.gather(
                *(client.post("/predict", json=[row.tolist()]) for row in rows)
            )
        await app.state.plane.close()
        return [r.json()["predictions"][0] for r in replies]

    answers = asyncio.run(run())
    np.testing.assert_allclose(answers, iris_pipeline.predict_proba(rows), atol=1e-9)


def test_cached_answers_equal_computed_ones_and_are_counted(
    iris_model: LoadedModel, iris_pipeline: Pipeline
) -> None:
    app = create_app(Settings(server=ServerSettings()), model=iris_model)
    first, second = [[5.0, 3.0, 1.5, 0.2]], [[5.0, 3.0, 1.5, 0.2], [6.1, 2.8, 4.7, 1.2]]
    with TestClient(app) as client:
        a = client.post("/predict", json=first).json()
        b = client.post("/predict", json=second).json()
        metrics = client.get("/metrics").text
    assert b["predictions"][0] == a["predictions"][0]
    np.testing.assert_allclose(b["predictions"], iris_pipeline.predict_proba(second), atol=1e-9)
    assert 'mda_cache_hits_total{model="iris"} 1.0' in metrics
    assert 'mda_cache_misses_total{model="iris"} 2.0' in metrics


def test_behind_a_prefix_stripping_proxy_docs_point_at_the_prefixed_schema(
    iris_model: LoadedModel,
) -> None:
    app = create_app(settings(), model=iris_model)
    with TestClient(app, root_path="/iris") as client:  # as uvicorn sets it from MDA_ROOT_PATH
        assert "/iris/openapi.json" in client.get("/docs").text
        assert client.post("/predict", json=[[5.1, 3.5, 1.4, 0.2]]).status_code == 200
        assert client.get("/openapi.json").status_code == 200


def test_a_client_that_disconnects_mid_body_is_counted_and_not_answered(
    iris_model: LoadedModel,
) -> None:
    app = create_app(settings(), model=iris_model)
    sent: list[dict[str, Any]] = []
    messages = iter(
        [
            {"type": "http.request", "body": b'{"instances": [[1, 2', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": [],
             "query_string": b"", "root_path": ""}  # fmt: skip
    asyncio.run(app(scope, receive, send))
    assert sent == []
    metrics = app.state.metrics.render().decode()
    assert 'route="/predict",status="499"} 1.0' in metrics


@pytest.mark.parametrize("path", ["/v2/health/ready", "/v2/models/iris", "/docs", "/metrics"])
def test_head_answers_as_get_without_a_body(client: TestClient, path: str) -> None:
    got = client.get(path)
    head = client.head(path)
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]


def test_the_docs_pages_are_counted_under_their_own_route(client: TestClient) -> None:
    client.get("/docs")
    client.get("/openapi.json")
    client.get("/no/such/page")
    metrics = client.get("/metrics").text
    assert 'route="/docs",status="200"' in metrics
    assert 'route="/openapi.json",status="200"' in metrics
    assert 'route="unmatched",status="404"' in metrics


@pytest.mark.parametrize("root", ["", "/iris"])
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_everything_from_the_server_itself(
    iris_model: LoadedModel, root: str, page: str
) -> None:
    import re

    app = create_app(settings(root_path=root), model=iris_model)
    with TestClient(app) as client:
        html = client.get(root + page).text
        urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html)
        assert len(urls) >= 3, html  # the script, the styles or the schema, the favicon
        for url in urls:
            assert url.startswith(root + "/"), f"{url} is not on this server"
            assert client.get(url).status_code == 200, url
