"""The V2 gRPC service as its users meet it, against `mda serve` as a real process: every RPC
through tritonclient's sync and asyncio clients, raw calls without generated stubs, the
repository calls and their admin token, deadlines (a call past its deadline is never computed),
gRPC and REST at once, two workers on one port, and the drain at SIGTERM."""

import json
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import joblib
import numpy as np
import psutil
import pytest
from sklearn.pipeline import Pipeline

from model_deployment_app.grpc_v2 import grpc_predict_v2_pb2 as pb
from model_deployment_app.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.conftest import ServerProcess
from tests.peers import run_peer
from tests.slow_model import SlowClassifier

pytestmark = pytest.mark.slow

Start = Callable[..., ServerProcess]
INFER = "/inference.GRPCInferenceService/ModelInfer"


def infer_request(model: str, rows: np.ndarray) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="input-0", datatype="FP64", shape=list(rows.shape))
    request.raw_input_contents.append(rows.astype("<f8").tobytes())
    return request


def probabilities(reply: pb.ModelInferResponse) -> np.ndarray:
    [output] = reply.outputs
    return np.frombuffer(reply.raw_output_contents[0], "<f8").reshape(list(output.shape))


def metric(server: ServerProcess, name: str) -> float:
    """The sum of a metric's series (0 when absent)."""
    text = httpx.get(f"{server.url}/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))  # fmt: skip


@pytest.fixture
def iris_config(write_model: Callable, iris_pipeline: Pipeline) -> Path:
    config, _ = write_model(iris_pipeline, job="classification", input_size=4, name="iris")
    return config


@pytest.mark.parametrize("kind", ["sync", "aio"])
def test_tritonclient_calls_every_rpc(
    kind: str, start_server: Start, iris_config: Path, iris_pipeline: Pipeline, iris: tuple
) -> None:
    server = start_server(iris_config)
    rows = iris[0][::30]
    got = run_peer("triton_grpc_rpcs.py", kind, f"127.0.0.1:{server.grpc_port}", "iris",
                   json.dumps(rows.tolist()))  # fmt: skip
    assert got["live"] is True and got["ready"] is True and got["model_ready"] is True
    assert got["server"]["name"] == "model_deployment_app"
    assert "binary_tensor_data" in got["server"]["extensions"]
    [version] = got["metadata"]["versions"]
    assert got["metadata"]["inputs"][0]["shape"] == ["-1", "4"]
    assert got["index"]["models"] == [{"name": "iris", "version": version, "state": "READY"}]
    np.testing.assert_allclose(got["proba"], iris_pipeline.predict_proba(rows), atol=1e-12)
    assert got["classes"] == iris_pipeline.classes_.tolist()
    assert got["unknown_model"]["status"] == "StatusCode.NOT_FOUND"
    assert "this server serves 'iris'" in got["unknown_model"]["message"]
    # No admin tokens: the load call is off, and says how to turn it on.
    assert got["load"]["status"] == "StatusCode.PERMISSION_DENIED"
    assert "MDA_ADMIN_TOKENS_FILE" in got["load"]["message"]


def test_raw_calls_without_generated_stubs(
    start_server: Start, iris_config: Path, iris_pipeline: Pipeline, iris: tuple
) -> None:
    """As grpcurl sends them: bytes in, bytes out, on the method's path."""
    server = start_server(iris_config)
    rows = iris[0][:5]
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        infer = channel.unary_unary(INFER)  # no serializers: raw bytes
        reply = pb.ModelInferResponse.FromString(
            infer(infer_request("iris", rows).SerializeToString(), timeout=10)
        )
        np.testing.assert_allclose(probabilities(reply), iris_pipeline.predict_proba(rows))
        for body, code, says in (
            (b"\xff\xff\xff not protobuf", grpc.StatusCode.INVALID_ARGUMENT,
             "the request is not an inference.ModelInferRequest"),
            (b"", grpc.StatusCode.NOT_FOUND, "model '' not found"),  # an empty one names none
        ):  # fmt: skip
            with pytest.raises(grpc.RpcError) as refused:
                infer(body, timeout=10)
            assert refused.value.code() == code and says in refused.value.details()
        with pytest.raises(grpc.RpcError) as unknown:
            channel.unary_unary("/inference.GRPCInferenceService/ModelConfig")(b"", timeout=10)
        assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED
        again = pb.ModelInferResponse.FromString(
            infer(infer_request("iris", rows).SerializeToString(), timeout=10)
        )
        np.testing.assert_array_equal(probabilities(again), probabilities(reply))


def test_repository_calls_list_the_model_and_reload_it_with_an_admin_token(
    start_server: Start, write_model: Callable, iris_pipeline: Pipeline, iris: tuple,
    tmp_path: Path,
) -> None:  # fmt: skip
    config, artifact = write_model(iris_pipeline, job="classification", input_size=4, name="iris")
    (tmp_path / "admin").write_text("admin-token-0123456789\n")
    (tmp_path / "api").write_text("api-token-0123456789\n")
    server = start_server(config, MDA_ADMIN_TOKENS_FILE=str(tmp_path / "admin"),
                          MDA_API_TOKENS_FILE=str(tmp_path / "api"))  # fmt: skip
    api = (("authorization", "Bearer api-token-0123456789"),)
    admin = (("authorization", "Bearer admin-token-0123456789"),)
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        index = stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True), metadata=api)
        [entry] = index.models
        assert (entry.name, entry.state) == ("iris", "READY")
        load = pb.RepositoryModelLoadRequest(model_name="iris")
        for metadata, code in ((None, grpc.StatusCode.UNAUTHENTICATED),
                               (api, grpc.StatusCode.PERMISSION_DENIED)):  # fmt: skip
            with pytest.raises(grpc.RpcError) as refused:
                stub.RepositoryModelLoad(load, metadata=metadata, timeout=10)
            assert refused.value.code() == code
        # A new version at the source: the load call serves it now, not at the next poll.
        X, y = iris
        joblib.dump(type(iris_pipeline)(iris_pipeline.steps).fit(X[::2], y[::2]), artifact)
        stub.RepositoryModelLoad(load, metadata=admin, timeout=30)
        [new] = stub.RepositoryIndex(pb.RepositoryIndexRequest(), metadata=api).models
        assert new.version != entry.version and new.state == "READY"
        unknown = pb.RepositoryModelLoadRequest(model_name="other")
        with pytest.raises(grpc.RpcError) as missing:
            stub.RepositoryModelLoad(unknown, metadata=admin, timeout=10)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_call_past_its_deadline_is_cancelled_and_its_rows_never_computed(
    start_server: Start, write_model: Callable
) -> None:
    model = SlowClassifier(seconds=0.01).fit(np.zeros((2, 2)), np.array(["a", "b"]))
    model.seconds = 1.0  # a quick warm-up, slow calls
    config, _ = write_model(model, job="classification", input_size=2)
    server = start_server(config, MDA_CACHE_ENABLED="false")
    rows_before = metric(server, "mda_batch_rows_sum")
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(stub.ModelInfer, infer_request("toy", np.ones((1, 2))),
                                timeout=30)  # fmt: skip
            time.sleep(0.3)  # the first call holds the model now: the next one queues
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as late:
                stub.ModelInfer(infer_request("toy", np.ones((5, 2))), timeout=0.3)
            assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert time.monotonic() - started < 0.9  # told at its deadline, not after the model
            assert probabilities(first.result()).shape == (1, 2)
        stub.ModelInfer(infer_request("toy", np.ones((3, 2))), timeout=30)
    # The model computed the first call's row and the last call's three, never the five.
    assert metric(server, "mda_batch_rows_sum") - rows_before == 4
    cancelled = 'mda_requests_total{method="GRPC",model="toy",route="' + INFER + '",status="499"}'
    assert cancelled in httpx.get(f"{server.url}/metrics").text


def test_grpc_and_rest_at_once_each_get_the_models_answers(
    start_server: Start, iris_config: Path, iris_pipeline: Pipeline
) -> None:
    server = start_server(iris_config, MDA_CACHE_ENABLED="false")
    rows = np.random.default_rng(5).normal(5, 2, size=(200, 4))
    expected = iris_pipeline.predict_proba(rows)
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)

        def ask(index: int) -> np.ndarray:
            row = rows[index : index + 1]
            if index % 2:
                return probabilities(stub.ModelInfer(infer_request("iris", row), timeout=30))
            reply = httpx.post(f"{server.url}/predict", json=row.tolist(), timeout=30)
            return np.asarray(reply.json()["predictions"])

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(ask, range(len(rows))))
    np.testing.assert_allclose(np.vstack(answers), expected, atol=1e-12)


def test_two_workers_each_serve_the_grpc_port(
    start_server: Start, iris_config: Path, iris_pipeline: Pipeline, iris: tuple
) -> None:
    server = start_server(iris_config, MDA_WORKERS="2")
    workers = psutil.Process(server.process.pid).children()
    listening = [
        worker.pid for worker in workers
        if any(c.laddr.port == server.grpc_port and c.status == psutil.CONN_LISTEN
               for c in worker.net_connections("tcp"))
    ]  # fmt: skip
    assert len(listening) == 2  # SO_REUSEPORT: the kernel spreads connections over both
    rows = iris[0][:3]
    for _ in range(8):  # a new connection each: both workers answer the same
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            reply = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
                infer_request("iris", rows), timeout=30
            )
        np.testing.assert_allclose(probabilities(reply), iris_pipeline.predict_proba(rows))


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_lets_grpc_calls_in_flight_finish_and_refuses_new_ones(
    workers: str, start_server: Start, write_model: Callable
) -> None:
    model = SlowClassifier(seconds=0.01).fit(np.zeros((2, 2)), np.array(["a", "b"]))
    model.seconds = 3.5  # two calls one after the other: past 5 s, within the 10 s of the drain
    config, _ = write_model(model, job="classification", input_size=2)
    server = start_server(config, MDA_WORKERS=workers, MDA_GRACEFUL_SHUTDOWN_SECONDS="10",
                          MDA_CACHE_ENABLED="false")  # fmt: skip
    address = f"127.0.0.1:{server.grpc_port}"
    replies: list[object] = []

    def call(index: int) -> None:
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            try:
                replies.append(stub.ModelInfer(infer_request("toy", np.ones((1, 2)) * index),
                                               timeout=30).outputs[0].shape)  # fmt: skip
            except grpc.RpcError as error:
                replies.append(error.code())

    threads = [threading.Thread(target=call, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # the calls are in the model now
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as refused:
        pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
            infer_request("toy", np.ones((1, 2))), timeout=5
        )
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    for thread in threads:
        thread.join(timeout=30)
    assert replies == [[1, 2]] * 2
    assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
