"""Real V2 clients against `mda serve` as a real process: Triton's `tritonclient` (HTTP with
the binary extension and JSON, and gRPC) and KServe's REST and gRPC clients, each answer
compared with the model's own; bad gRPC requests get their status and the server keeps on."""

import json
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import joblib
import numpy as np
import pytest
import yaml
from sklearn.pipeline import Pipeline

from model_deployment_app.grpc_v2 import grpc_predict_v2_pb2 as pb
from model_deployment_app.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.conftest import PEOPLE_INPUTS, ServerProcess, serving_config
from tests.peers import run_peer

pytestmark = pytest.mark.slow

Start = Callable[..., ServerProcess]
CLIENTS = ["triton-http", "triton-grpc", "kserve-rest", "kserve-grpc"]


@pytest.fixture(scope="module")
def iris_server(tmp_path_factory: pytest.TempPathFactory, iris_pipeline: Pipeline) -> Any:
    """The config of an iris model, for the servers of this module."""
    directory = tmp_path_factory.mktemp("iris")
    joblib.dump(iris_pipeline, directory / "model.joblib")
    config = directory / "config.yaml"
    config.write_text(yaml.safe_dump(
        serving_config(directory / "model.joblib", job="classification", input_size=4, name="iris")
    ))  # fmt: skip
    yield config


def address(server: ServerProcess, client: str) -> str:
    port = server.grpc_port if client.endswith("grpc") else server.port
    return f"127.0.0.1:{port}"


@pytest.mark.parametrize("client", CLIENTS)
def test_each_client_gets_the_models_answers(
    client: str, start_server: Start, iris_server: Any, iris_pipeline: Pipeline, iris: tuple
) -> None:
    server = start_server(iris_server, MDA_WORKERS="2")
    X = iris[0][::25]
    spec = {"model": "iris", "inputs": [{"name": "input-0", "datatype": "FP32",
            "data": X.tolist()}], "outputs": ["predict_proba", "predict", "classes"]}  # fmt: skip
    got = run_peer("v2_clients.py", client, address(server, client), json.dumps(spec))
    assert got["ready"] is True
    proba = got["outputs"]["predict_proba"]
    X32 = X.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(
        np.reshape(proba["data"], proba["shape"]), iris_pipeline.predict_proba(X32), atol=1e-9
    )
    assert got["outputs"]["predict"]["data"] == iris_pipeline.predict(X32).tolist()
    assert got["outputs"]["classes"]["data"] == iris_pipeline.classes_.tolist()


@pytest.mark.parametrize("client", ["triton-http", "triton-grpc"])
def test_triton_clients_with_model_version_json_and_metadata(
    client: str, start_server: Start, iris_server: Any, iris_pipeline: Pipeline, iris: tuple
) -> None:
    server = start_server(iris_server)
    [version] = httpx.get(f"{server.url}/v2/models/iris").json()["versions"]
    X = iris[0][:3]
    spec = {"model": "iris", "version": version, "binary": False, "outputs": [],
            "inputs": [{"name": "x", "datatype": "FP64", "data": X.tolist()}]}  # fmt: skip
    got = run_peer("v2_clients.py", client, address(server, client), json.dumps(spec))
    assert got["ready"] is True
    assert got["metadata"]["versions"] == [version]
    assert [i["name"] for i in got["metadata"]["inputs"]] == ["input-0"]
    proba = got["outputs"]["predict_proba"]
    np.testing.assert_allclose(np.reshape(proba["data"], proba["shape"]),
                               iris_pipeline.predict_proba(X), atol=1e-9)  # fmt: skip


@pytest.mark.parametrize("client", CLIENTS)
def test_each_client_sends_named_mixed_columns(
    client: str, start_server: Start, write_model: Callable, mixed_pipeline: Pipeline,
    people: tuple,
) -> None:  # fmt: skip
    config, _ = write_model(mixed_pipeline, job="classification", inputs=PEOPLE_INPUTS,
                            name="people")  # fmt: skip
    server = start_server(config)
    frame = people[0].iloc[:6]
    inputs = [
        {"name": "age", "datatype": "INT64", "data": frame.age.tolist()},
        {"name": "income", "datatype": "FP64", "data": frame.income.tolist()},
        {"name": "city", "datatype": "BYTES", "data": frame.city.tolist()},
        {"name": "member", "datatype": "BOOL", "data": frame.member.tolist()},
    ]
    spec = {"model": "people", "inputs": inputs, "outputs": ["predict_proba", "predict"]}
    got = run_peer("v2_clients.py", client, address(server, client), json.dumps(spec))
    proba = got["outputs"]["predict_proba"]
    np.testing.assert_allclose(np.reshape(proba["data"], proba["shape"]),
                               mixed_pipeline.predict_proba(frame), atol=1e-9)  # fmt: skip
    assert got["outputs"]["predict"]["data"] == mixed_pipeline.predict(frame).tolist()


def test_bad_grpc_requests_get_their_status_and_the_server_keeps_serving(
    start_server: Start, iris_server: Any, iris_pipeline: Pipeline
) -> None:
    server = start_server(iris_server)
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)

        def infer(**fields: Any) -> pb.ModelInferResponse:
            return stub.ModelInfer(pb.ModelInferRequest(**fields))

        def row(**override: Any) -> pb.ModelInferRequest.InferInputTensor:
            tensor = {
                "name": "x",
                "datatype": "FP64",
                "shape": [1, 4],
                "contents": pb.InferTensorContents(fp64_contents=[5.1, 3.5, 1.4, 0.2]),
            }
            return pb.ModelInferRequest.InferInputTensor(**{**tensor, **override})  # fmt: skip

        cases = [
            ({"model_name": "other", "inputs": [row()]}, grpc.StatusCode.NOT_FOUND,
             "model 'other' not found"),
            ({"model_name": "iris", "model_version": "9", "inputs": [row()]},
             grpc.StatusCode.NOT_FOUND, "has no version '9'"),
            ({"model_name": "iris", "inputs": [row(shape=[1, 3], contents=pb.InferTensorContents(
                fp64_contents=[1, 2, 3]))]},
             grpc.StatusCode.INVALID_ARGUMENT, "expected [rows, 4]"),
            ({"model_name": "iris", "inputs": [row(shape=[2, 4])]},
             grpc.StatusCode.INVALID_ARGUMENT, "shape [2, 4] needs 8 values, got 4"),
            ({"model_name": "iris", "inputs": [row(contents=None)], "raw_input_contents": [b"\0"]},
             grpc.StatusCode.INVALID_ARGUMENT, "needs 32 bytes, got 1"),
            ({"model_name": "iris", "inputs": [row()], "outputs": [{"name": "decision"}]},
             grpc.StatusCode.INVALID_ARGUMENT, "unknown output 'decision'"),
            ({"model_name": "iris", "inputs": [row(contents=pb.InferTensorContents(
                fp64_contents=[1, 2, 3, float("nan")]))]},
             grpc.StatusCode.INVALID_ARGUMENT, "finite"),
        ]  # fmt: skip
        for fields, code, message in cases:
            with pytest.raises(grpc.RpcError) as refused:
                infer(**fields)
            assert refused.value.code() == code, fields
            assert message in refused.value.details()
        with pytest.raises(grpc.RpcError) as too_big:
            infer(model_name="iris", inputs=[row()], raw_input_contents=[b"\0" * (17 << 20)])
        assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        answer = infer(model_name="iris", inputs=[row()])
        proba = np.frombuffer(answer.raw_output_contents[0], "<f8")
        np.testing.assert_allclose(proba, iris_pipeline.predict_proba([[5.1, 3.5, 1.4, 0.2]])[0])
        assert stub.ServerLive(pb.ServerLiveRequest()).live
        assert "binary_tensor_data" in stub.ServerMetadata(pb.ServerMetadataRequest()).extensions
    metrics = httpx.get(f"{server.url}/metrics").text
    infer_lines = [
        line for line in metrics.splitlines()
        if line.startswith("mda_requests_total{")
        and 'route="/inference.GRPCInferenceService/ModelInfer"' in line
    ]  # fmt: skip
    # The unknown name is counted without a model label (a client's names are not series).
    assert [line.split()[-1] for line in infer_lines if 'status="404"' in line] == ["1.0", "1.0"]
    assert any('model="",' in line and 'status="404"' in line for line in infer_lines)
    assert any('model="iris",' in line and 'status="200"' in line for line in infer_lines)


def test_mlservers_numpy_codec_request_is_served(
    start_server: Start, iris_server: Any, iris_pipeline: Pipeline, iris: tuple
) -> None:
    server = start_server(iris_server)
    X = iris[0][::40]
    request = run_peer("mlserver_numpy_request.py", json.dumps(X.tolist()))
    reply = httpx.post(f"{server.url}/v2/models/iris/infer", json=request)
    assert reply.status_code == 200, reply.text
    [output] = reply.json()["outputs"]
    X32 = X.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(np.reshape(output["data"], output["shape"]),
                               iris_pipeline.predict_proba(X32), atol=1e-9)  # fmt: skip
