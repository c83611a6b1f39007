"""A client's numbers never size an allocation before they are checked: a 100-byte request
declaring a huge shape is refused in microseconds, over every wire form, while the server's
memory stays put and it keeps answering."""

import json
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import pytest
from fastapi.testclient import TestClient
from sklearn.pipeline import Pipeline

from model_deployment_app.api import create_app
from model_deployment_app.grpc_v2 import grpc_predict_v2_pb2 as pb
from model_deployment_app.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from model_deployment_app.settings import Settings
from tests.conftest import TEXT_INPUTS, ServerProcess, loaded
from tests.memory_watch import rss_growth_below

HEADER = "inference-header-content-length"
INFER = "/v2/models/toy/infer"
HUGE_ROWS = [125_000_000, 4]  # the probe's: 4 GB of Python objects for 4 bytes sent
ABSURD = [10**12, 4]  # numpy cannot even allocate it: was a 500


def binary(datatype: str, shape: list[int], raw: bytes) -> tuple[bytes, dict[str, str]]:
    tensor = {"name": "review", "shape": shape, "datatype": datatype,
              "parameters": {"binary_data_size": len(raw)}}  # fmt: skip
    head = json.dumps({"inputs": [tensor]}).encode()
    return head + raw, {HEADER: str(len(head)), "content-type": "application/octet-stream"}


def json_tensor(datatype: str, shape: list[int], data: list[Any]) -> dict[str, Any]:
    return {"inputs": [{"name": "review", "shape": shape, "datatype": datatype, "data": data}]}


# what is sent -> (HTTP status, words of the message)
HTTP_CASES = {
    "binary BYTES, rows past the limit": (
        binary("BYTES", HUGE_ROWS, b"\0" * 4), 413, "125000000 rows"),
    "binary BYTES, absurd rows": (binary("BYTES", ABSURD, b"\0" * 4), 413, "1000000000000 rows"),
    "binary BYTES, one row, absurd width": (
        binary("BYTES", [1, 10**12], b"\0" * 4), 400, "needs at least 4000000000000 bytes"),
    "binary FP64, absurd rows": (binary("FP64", ABSURD, b"\0" * 8), 413, "1000000000000 rows"),
    "JSON BYTES, rows past the limit": (
        (json.dumps(json_tensor("BYTES", HUGE_ROWS, ["a"])).encode(), {}), 413, "125000000 rows"),
    "JSON FP64, absurd rows": (
        (json.dumps(json_tensor("FP64", ABSURD, [1.0])).encode(), {}), 413,
        "shape [1000000000000, 4]"),
}  # fmt: skip


def grpc_tensor(shape: list[int], **contents: Any) -> pb.ModelInferRequest.InferInputTensor:
    return pb.ModelInferRequest.InferInputTensor(
        name="review", datatype="BYTES", shape=shape,
        contents=pb.InferTensorContents(**contents) if contents else None,
    )  # fmt: skip


GRPC_CASES = {
    "raw, rows past the limit": (
        {"inputs": [grpc_tensor(HUGE_ROWS)], "raw_input_contents": [b"\0" * 4]},
        grpc.StatusCode.RESOURCE_EXHAUSTED, "125000000 rows"),
    "raw, absurd width": (
        {"inputs": [grpc_tensor([1, 10**12])], "raw_input_contents": [b"\0" * 4]},
        grpc.StatusCode.INVALID_ARGUMENT, "needs at least 4000000000000 bytes"),
    "typed, rows past the limit": (
        {"inputs": [grpc_tensor(ABSURD, bytes_contents=[b"a"])]},
        grpc.StatusCode.RESOURCE_EXHAUSTED, "1000000000000 rows"),
    "typed, absurd width": (
        {"inputs": [grpc_tensor([1, 10**12], bytes_contents=[b"a"])]},
        grpc.StatusCode.INVALID_ARGUMENT, "needs 1000000000000 values, got 1"),
}  # fmt: skip


@pytest.fixture
def text_server(
    start_server: Callable[..., ServerProcess], write_model: Callable, text_pipeline: Pipeline
) -> ServerProcess:
    config, _ = write_model(text_pipeline, job="classification", inputs=TEXT_INPUTS)
    return start_server(config, MDA_CACHE_ENABLED="false")


def live_now(server: ServerProcess) -> bool:
    return httpx.get(f"{server.url}/v2/health/live", timeout=5).json() == {"live": True}


@pytest.mark.slow
def test_a_huge_declared_shape_is_refused_over_http_without_taking_memory(
    text_server: ServerProcess,
) -> None:
    with rss_growth_below(text_server.process.pid, bound_mib=40):
        for name, ((body, headers), status, words) in HTTP_CASES.items():
            reply = httpx.post(f"{text_server.url}{INFER}", content=body, headers=headers)
            assert reply.status_code == status, (name, reply.text)
            assert words in reply.json()["error"], name
            assert live_now(text_server)
    good = httpx.post(f"{text_server.url}{INFER}", json=json_tensor("BYTES", [1], ["great fun"]))
    assert good.status_code == 200, good.text


@pytest.mark.slow
def test_a_huge_declared_shape_is_refused_over_grpc_without_taking_memory(
    text_server: ServerProcess,
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{text_server.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with rss_growth_below(text_server.process.pid, bound_mib=40):
            for name, (fields, code, words) in GRPC_CASES.items():
                with pytest.raises(grpc.RpcError) as refused:
                    stub.ModelInfer(pb.ModelInferRequest(model_name="toy", **fields), timeout=10)
                assert refused.value.code() == code, name
                assert words in refused.value.details(), name
                assert stub.ServerLive(pb.ServerLiveRequest(), timeout=5).live
        one = grpc_tensor([1], bytes_contents=[b"great fun"])
        answer = stub.ModelInfer(pb.ModelInferRequest(model_name="toy", inputs=[one]))
        assert answer.outputs[0].name == "predict_proba"


@pytest.mark.parametrize(
    ("datatype", "value"),
    [("INT8", 1000), ("INT8", -129), ("UINT8", 256), ("INT16", 40_000), ("INT32", 2**31),
     ("UINT32", -1), ("INT64", 2**63), ("INT32", 1.5)],
)  # fmt: skip
def test_each_integer_datatype_holds_its_values_to_its_range(
    iris_pipeline: Pipeline, datatype: str, value: Any
) -> None:
    model = loaded(iris_pipeline, "classification", 4)
    with TestClient(create_app(Settings(), model=model)) as client:
        tensor = {"name": "x", "shape": [1, 4], "datatype": datatype, "data": [1, 2, 3, value]}
        reply = client.post("/v2/models/toy/infer", json={"inputs": [tensor]})
        assert reply.status_code == 422, reply.text
        assert f"is not an {datatype}" in reply.json()["error"]
        assert json.dumps(value) in reply.json()["error"]
        tensor["data"] = [1, 2, 3, 4]
        assert client.post("/v2/models/toy/infer", json={"inputs": [tensor]}).status_code == 200
