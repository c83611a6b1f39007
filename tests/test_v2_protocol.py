"""The Open Inference Protocol in-process: the binary tensor extension built by hand from its
published layout, version routes, and spec-valid (scalar) parameters."""

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from model_deployment_app.api import create_app
from model_deployment_app.settings import CacheSettings, ServerSettings, Settings
from tests.conftest import TEXT_INPUTS, loaded

HEADER = "Inference-Header-Content-Length"


@pytest.fixture
def iris_client(iris_pipeline: Pipeline) -> Iterator[TestClient]:
    settings = Settings(server=ServerSettings(), cache=CacheSettings(cache_enabled=False))
    with TestClient(create_app(settings, model=loaded(iris_pipeline, "classification", 4,
                                                      name="iris"))) as client:  # fmt: skip
        yield client


def binary_request(inputs: list[tuple[str, str, list[int], bytes]], **extra: Any) -> tuple:
    """(body, headers) of a binary request: a JSON header, then each input's raw bytes."""
    header = {
        "inputs": [
            {"name": n, "datatype": d, "shape": s, "parameters": {"binary_data_size": len(raw)}}
            for n, d, s, raw in inputs
        ],
        **extra,
    }
    head = json.dumps(header).encode()
    body = head + b"".join(raw for *_, raw in inputs)
    return body, {HEADER: str(len(head)), "content-type": "application/octet-stream"}


def split_binary_reply(reply: Any) -> tuple[dict[str, Any], dict[str, bytes]]:
    size = int(reply.headers[HEADER])
    header = orjson.loads(reply.content[:size])
    raws, offset = {}, size
    for output in header["outputs"]:
        length = output["parameters"]["binary_data_size"]
        raws[output["name"]] = reply.content[offset : offset + length]
        offset += length
    assert offset == len(reply.content)
    return header, raws


def bytes_elements(raw: bytes) -> list[bytes]:
    values, offset = [], 0
    while offset < len(raw):
        length = int.from_bytes(raw[offset : offset + 4], "little")
        values.append(raw[offset + 4 : offset + 4 + length])
        offset += 4 + length
    return values


@pytest.mark.parametrize("datatype", ["FP32", "FP64", "INT64"])
def test_binary_input_and_binary_outputs(
    iris_client: TestClient, iris_pipeline: Pipeline, iris: tuple, datatype: str
) -> None:
    X = iris[0][::20]
    if datatype == "INT64":
        X = X.round()
    dtype = {"FP32": "<f4", "FP64": "<f8", "INT64": "<i8"}[datatype]
    raw = X.astype(dtype).tobytes()
    body, headers = binary_request(
        [("input-0", datatype, list(X.shape), raw)],
        outputs=[
            {"name": "predict_proba", "parameters": {"binary_data": True}},
            {"name": "predict", "parameters": {"binary_data": True}},
        ],
    )
    reply = iris_client.post("/v2/models/iris/infer", content=body, headers=headers)
    assert reply.status_code == 200, reply.text
    header, raws = split_binary_reply(reply)
    proba = np.frombuffer(raws["predict_proba"], "<f8").reshape(header["outputs"][0]["shape"])
    expected_input = X.astype(dtype).astype(np.float64)
    np.testing.assert_allclose(proba, iris_pipeline.predict_proba(expected_input), atol=1e-9)
    labels = [b.decode() for b in bytes_elements(raws["predict"])]
    assert labels == iris_pipeline.predict(expected_input).tolist()


def test_binary_data_output_on_the_request_and_json_where_not_asked(
    iris_client: TestClient, iris_pipeline: Pipeline, iris: tuple
) -> None:
    X = iris[0][:2]
    body, headers = binary_request(
        [("x", "FP64", [2, 4], X.tobytes())], parameters={"binary_data_output": True}
    )
    header, raws = split_binary_reply(
        iris_client.post("/v2/models/iris/infer", content=body, headers=headers)
    )
    assert "data" not in header["outputs"][0]
    np.testing.assert_allclose(
        np.frombuffer(raws["predict_proba"], "<f8"), iris_pipeline.predict_proba(X).ravel()
    )
    body, headers = binary_request([("x", "FP64", [2, 4], X.tobytes())])
    reply = iris_client.post("/v2/models/iris/infer", content=body, headers=headers)
    assert reply.headers["content-type"] == "application/json"
    np.testing.assert_allclose(reply.json()["outputs"][0]["data"],
                               iris_pipeline.predict_proba(X).ravel())  # fmt: skip


def test_binary_bytes_input_for_a_text_model(text_pipeline: Pipeline) -> None:
    texts = ["a great film", "dull and slow", "café"]
    raw = b"".join(len(t.encode()).to_bytes(4, "little") + t.encode() for t in texts)
    model = loaded(text_pipeline, "classification", name="reviews", inputs=TEXT_INPUTS)
    with TestClient(create_app(Settings(), model=model)) as client:
        body, headers = binary_request([("review", "BYTES", [3], raw)])
        reply = client.post("/v2/models/reviews/infer", content=body, headers=headers)
    assert reply.status_code == 200, reply.text
    np.testing.assert_allclose(
        reply.json()["outputs"][0]["data"], text_pipeline.predict_proba(texts).ravel()
    )


ROW = np.zeros((1, 4)).tobytes()
BAD_BINARY = {
    "size past the body": (
        [("x", "FP64", [1, 4], ROW)], lambda b: b[:-8], 400, "runs past the end of the body"
    ),
    "wrong element count": (
        [("x", "FP64", [2, 4], ROW)], lambda b: b, 400, "[2, 4] of FP64 needs 64 bytes, got 32"
    ),
    "BYTES prefix past the end": (
        [("x", "BYTES", [1, 1], (100).to_bytes(4, "little") + b"abc")], lambda b: b, 400,
        "BYTES element 0 says 100 bytes, past the end",
    ),
    "BYTES shape past its data": (
        [("x", "BYTES", [1, 4], (3).to_bytes(4, "little") + b"abc")], lambda b: b, 400,
        "shape [1, 4] of BYTES needs at least 16 bytes, got 7",
    ),
    "bytes after the last input": (
        [("x", "FP64", [1, 4], ROW)], lambda b: b + b"junk", 400, "4 bytes of binary data follow"
    ),
}  # fmt: skip


@pytest.mark.parametrize(("inputs", "mangle", "status", "message"), BAD_BINARY.values(),
                         ids=BAD_BINARY.keys())  # fmt: skip
def test_malformed_binary_bodies_are_400_and_say_what_is_wrong(
    iris_client: TestClient, inputs: list, mangle: Any, status: int, message: str
) -> None:
    body, headers = binary_request(inputs)
    reply = iris_client.post("/v2/models/iris/infer", content=mangle(body), headers=headers)
    assert reply.status_code == status, reply.text
    assert message in reply.json()["error"]
    assert iris_client.post("/predict", json=[[5.1, 3.5, 1.4, 0.2]]).status_code == 200


@pytest.mark.parametrize("datatype", ["FP64", "BYTES"])
def test_an_empty_binary_tensor_is_an_empty_batch(
    iris_client: TestClient, text_pipeline: Pipeline, datatype: str
) -> None:
    if datatype == "FP64":
        body, headers = binary_request([("x", "FP64", [0, 4], b"")])
        reply = iris_client.post("/v2/models/iris/infer", content=body, headers=headers)
    else:
        model = loaded(text_pipeline, "classification", name="reviews", inputs=TEXT_INPUTS)
        with TestClient(create_app(Settings(), model=model)) as client:
            body, headers = binary_request([("review", "BYTES", [0], b"")])
            reply = client.post("/v2/models/reviews/infer", content=body, headers=headers)
    assert reply.status_code == 422 and "empty batch" in reply.json()["error"]


@pytest.mark.parametrize("value", ["x", "-1", "999999"])
def test_a_bad_header_length_is_400(iris_client: TestClient, value: str) -> None:
    reply = iris_client.post("/v2/models/iris/infer", content=b"{}", headers={HEADER: value})
    assert reply.status_code == 400 and "Inference-Header-Content-Length" in reply.json()["error"]


def test_the_advertised_version_answers_and_others_are_404(iris_client: TestClient) -> None:
    [version] = iris_client.get("/v2/models/iris").json()["versions"]
    base = f"/v2/models/iris/versions/{version}"
    assert iris_client.get(base).json()["versions"] == [version]
    assert iris_client.get(f"{base}/ready").status_code == 200
    tensor = {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}
    reply = iris_client.post(f"{base}/infer", json={"inputs": [tensor]})
    assert reply.status_code == 200 and reply.json()["model_version"] == version
    for path in ("/v2/models/iris/versions/7", "/v2/models/iris/versions/7/ready"):
        missing = iris_client.get(path)
        assert missing.status_code == 404
        assert missing.json()["error"] == (
            f"model 'iris' has no version '7'; it serves version {version!r}"
        )
    assert iris_client.post("/v2/models/iris/versions/7/infer",
                            json={"inputs": [tensor]}).status_code == 404  # fmt: skip


def test_parameters_are_scalars_and_classes_are_an_output(
    iris_client: TestClient, iris_pipeline: Pipeline
) -> None:
    metadata = iris_client.get("/v2/models/iris").json()
    assert all(isinstance(v, str | int | float | bool) for v in metadata["parameters"].values())
    assert json.loads(metadata["parameters"]["classes"]) == iris_pipeline.classes_.tolist()
    tensor = {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}
    body = {"inputs": [tensor], "outputs": [{"name": "predict_proba"}, {"name": "classes"}]}
    proba, classes = iris_client.post("/v2/models/iris/infer", json=body).json()["outputs"]
    assert "parameters" not in proba
    assert classes == {"name": "classes", "shape": [3], "datatype": "BYTES",
                       "data": iris_pipeline.classes_.tolist()}  # fmt: skip
    server = iris_client.get("/v2").json()
    assert "binary_tensor_data" in server["extensions"]


class Float32Regressor(BaseEstimator, RegressorMixin):
    """Answers in float32, as XGBoost's `predict` does."""

    def fit(self, X: Any, y: Any) -> "Float32Regressor":
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(X, dtype=np.float32).sum(axis=1)


@pytest.mark.parametrize("job", ["classification", "regression"])
def test_an_outputs_bytes_are_as_wide_as_its_datatype_says(
    iris: tuple[np.ndarray, np.ndarray], job: str
) -> None:
    X, y = iris
    if job == "classification":  # int32 labels: predict answers int32
        labels = np.unique(y, return_inverse=True)[1].astype(np.int32)
        model: Any = LogisticRegression(max_iter=500).fit(X, labels)
    else:
        model = Float32Regressor().fit(X, y)
    assert model.predict(X[:2]).dtype.itemsize == 4
    with TestClient(create_app(Settings(), model=loaded(model, job, 4, name="m"))) as client:
        declared = {o["name"]: o["datatype"] for o in client.get("/v2/models/m").json()["outputs"]}
        body, headers = binary_request(
            [("x", "FP64", [3, 4], X[:3].tobytes())], outputs=[{"name": "predict"}],
            parameters={"binary_data_output": True},
        )  # fmt: skip
        header, raws = split_binary_reply(
            client.post("/v2/models/m/infer", content=body, headers=headers)
        )
        [output] = header["outputs"]
        assert output["datatype"] == declared["predict"]
        dtype = {"FP64": "<f8", "INT64": "<i8"}[output["datatype"]]
        assert len(raws["predict"]) == 3 * np.dtype(dtype).itemsize
        np.testing.assert_array_equal(np.frombuffer(raws["predict"], dtype), model.predict(X[:3]))
