"""The payload log (`MDA_PAYLOAD_LOG`): a real server writes what each model received and said
to a file, stdout, the GCS emulator, or a CloudEvents receiver parsed with the `cloudevents` SDK;
a dead sink costs requests nothing; SIGTERM writes what is queued."""

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import grpc
import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from model_deployment_app.grpc_v2 import grpc_predict_v2_pb2 as pb
from model_deployment_app.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.conftest import PEOPLE_INPUTS, ServerProcess, free_port

pytestmark = pytest.mark.slow

Start = Callable[..., ServerProcess]


def lines_of(path: Path, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The file's records once it holds `count` (written through within a second)."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        records = [json.loads(line) for line in text.splitlines()]
        if len(records) >= count or time.monotonic() > deadline:
            return records
        time.sleep(0.05)


def terminated(server: ServerProcess) -> str:
    """SIGTERM, and the server's output once it has exited."""
    server.process.terminate()
    server.process.wait(timeout=30)
    return server.output()


def metric(server: ServerProcess, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


@pytest.fixture
def people_server(
    start_server: Start, write_model: Callable[..., tuple[Path, Path]], mixed_pipeline: Pipeline
) -> Callable[..., ServerProcess]:
    def start(**env: str) -> ServerProcess:
        config, _ = write_model(
            mixed_pipeline, job="classification", inputs=PEOPLE_INPUTS, model_type="skops"
        )
        return start_server(config, MDA_CACHE_ENABLED="false", **env)

    return start


def test_every_wire_form_is_recorded_with_its_inputs_outputs_and_status(
    people_server: Callable[..., ServerProcess],
    tmp_path: Path,
    people: tuple[pd.DataFrame, np.ndarray],
    mixed_pipeline: Pipeline,
) -> None:
    log = tmp_path / "payloads.jsonl"
    server = people_server(MDA_PAYLOAD_LOG=f"file://{log}", MDA_PAYLOAD_LOG_REDACT="city")
    frame = people[0].head(2)
    records = frame.to_dict(orient="records")
    expected = mixed_pipeline.predict_proba(frame)

    rest = httpx.post(f"{server.url}/predict", json={"instances": records},
                      headers={"x-request-id": "rest-1"})  # fmt: skip
    assert rest.status_code == 200 and rest.headers["x-request-id"] == "rest-1"
    tensors = [
        {"name": name, "shape": [2], "datatype": kind,
         "data": frame[name].tolist()} for name, kind in
        ((i["name"], i["datatype"]) for i in PEOPLE_INPUTS)
    ]  # fmt: skip
    v2 = httpx.post(f"{server.url}/v2/models/toy/infer", json={"inputs": tensors})
    assert v2.status_code == 200
    generated = v2.headers["x-request-id"]  # none sent: one made, and echoed
    refused = httpx.post(f"{server.url}/predict", json={"instances": [{"age": 1}]},
                         headers={"x-request-id": "bad-1"})  # fmt: skip
    assert refused.status_code == 422
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        request = pb.ModelInferRequest(model_name="toy", inputs=[
            pb.ModelInferRequest.InferInputTensor(
                name="age", datatype="INT64", shape=[2],
                contents=pb.InferTensorContents(int64_contents=frame["age"].tolist())),
            pb.ModelInferRequest.InferInputTensor(
                name="income", datatype="FP64", shape=[2],
                contents=pb.InferTensorContents(fp64_contents=frame["income"].tolist())),
            pb.ModelInferRequest.InferInputTensor(
                name="city", datatype="BYTES", shape=[2],
                contents=pb.InferTensorContents(
                    bytes_contents=[c.encode() for c in frame["city"]])),
            pb.ModelInferRequest.InferInputTensor(
                name="member", datatype="BOOL", shape=[2],
                contents=pb.InferTensorContents(bool_contents=frame["member"].tolist())),
        ])  # fmt: skip
        stub.ModelInfer(request, metadata=[("x-request-id", "grpc-1")])

    by_id = {record["id"]: record for record in lines_of(log, 4)}
    assert set(by_id) == {"rest-1", generated, "bad-1", "grpc-1"}, by_id.keys()
    version = httpx.get(f"{server.url}/v2/models/toy").json()["versions"][0]
    for request_id, protocol in (("rest-1", "rest"), (generated, "v2"), ("grpc-1", "grpc")):
        record = by_id[request_id]
        assert (record["model"], record["version"], record["track"]) == ("toy", version, "stable")
        assert (record["status"], record["error"], record["protocol"]) == (200, None, protocol)
        assert record["inputs"]["age"] == frame["age"].tolist()
        assert record["inputs"]["member"] == frame["member"].tolist()
        assert record["inputs"]["city"] == ["***", "***"]  # MDA_PAYLOAD_LOG_REDACT
        np.testing.assert_allclose(record["outputs"]["predict_proba"], expected, atol=1e-9)
        assert record["latency_ms"] > 0 and record["time"].endswith("+00:00")
    bad = by_id["bad-1"]
    assert bad["status"] == 422 and "income" in bad["error"] and bad["outputs"] == {}


def test_a_sample_of_requests_is_recorded(
    people_server: Callable[..., ServerProcess], tmp_path: Path, people: tuple[pd.DataFrame, Any]
) -> None:
    log = tmp_path / "sampled.jsonl"
    server = people_server(MDA_PAYLOAD_LOG=f"file://{log}", MDA_PAYLOAD_LOG_SAMPLE="0.3")
    body = {"instances": people[0].head(1).to_dict(orient="records")}
    with httpx.Client(base_url=server.url) as client:
        for _ in range(300):
            assert client.post("/predict", json=body).status_code == 200
    time.sleep(1.5)  # written through within a second
    recorded = len(lines_of(log, 0))
    assert 40 <= recorded <= 140, recorded  # 90 expected; 6 standard deviations either way
    assert metric(server, "mda_payload_log_records_total") == recorded


def test_stdout_lines_are_the_requests_sent(
    people_server: Callable[..., ServerProcess], people: tuple[pd.DataFrame, Any]
) -> None:
    server = people_server(MDA_PAYLOAD_LOG="stdout")
    sent = [f"req-{i}" for i in range(20)]
    body = {"instances": people[0].head(1).to_dict(orient="records")}
    for request_id in sent:
        httpx.post(f"{server.url}/predict", json=body, headers={"x-request-id": request_id})
    output = terminated(server)  # SIGTERM: what is queued is written
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert [r["id"] for r in records] == sent
    assert all(r["inputs"]["age"] == [int(people[0]["age"].iloc[0])] for r in records)


def test_a_dead_sink_costs_requests_nothing_and_is_logged_once(
    people_server: Callable[..., ServerProcess], people: tuple[pd.DataFrame, Any]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/events"  # nothing listens there
    server = people_server(MDA_PAYLOAD_LOG=dead)
    body = {"instances": people[0].head(1).to_dict(orient="records")}
    slowest = 0.0
    with httpx.Client(base_url=server.url) as client:
        for _ in range(300):
            started = time.perf_counter()
            assert client.post("/predict", json=body).status_code == 200
            slowest = max(slowest, time.perf_counter() - started)
    assert slowest < 1.0, slowest  # no request waits on the sink (a hang check, not a speed one)
    deadline = time.monotonic() + 10
    while metric(server, "mda_payload_log_dropped_total") < 300:
        assert time.monotonic() < deadline, metric(server, "mda_payload_log_dropped_total")
        time.sleep(0.1)
    assert terminated(server).count("payload log: cannot write to its sink") == 1


class Receiver(BaseHTTPRequestHandler):
    """Collects what is posted: (headers, body)."""

    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:  # the standard library's name
        body = self.rfile.read(int(self.headers["content-length"]))
        self.received.append((dict(self.headers.items()), body))
        self.send_response(202)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/events", Receiver.received
    server.shutdown()
    server.server_close()


def test_cloudevents_in_binary_mode_a_request_and_a_response_per_inference(
    people_server: Callable[..., ServerProcess],
    receiver: tuple[str, list[tuple[dict[str, str], bytes]]],
    people: tuple[pd.DataFrame, Any],
    mixed_pipeline: Pipeline,
) -> None:
    from cloudevents.core.bindings.http import HTTPMessage, from_http_event

    url, received = receiver
    server = people_server(MDA_PAYLOAD_LOG=url)
    frame = people[0].head(3)
    reply = httpx.post(f"{server.url}/predict", json={"instances": frame.to_dict("records")},
                       headers={"x-request-id": "ce-1"})  # fmt: skip
    assert reply.status_code == 200
    deadline = time.monotonic() + 5
    while len(received) < 2:
        assert time.monotonic() < deadline, received
        time.sleep(0.05)
    events = [from_http_event(HTTPMessage(headers, body)) for headers, body in received]
    assert [e.get_type() for e in events] == [
        "org.kubeflow.serving.inference.request",
        "org.kubeflow.serving.inference.response",
    ]
    assert {e.get_id() for e in events} == {"ce-1"}
    assert all(e.get_extension("inferenceservicename") == "toy" for e in events)
    assert all(headers["ce-specversion"] == "1.0" for headers, _ in received)  # binary mode
    request, response = (
        data if isinstance(data := e.get_data(), dict) else json.loads(data)  # type: ignore[arg-type]
        for e in events
    )
    assert request["inputs"]["city"] == frame["city"].tolist()
    np.testing.assert_allclose(
        response["outputs"]["predict_proba"], mixed_pipeline.predict_proba(frame), atol=1e-9
    )


def test_gcs_objects_hold_every_record_once_sigterm_flushed(
    people_server: Callable[..., ServerProcess],
    gcs_emulator: str,
    gcs_bucket: Any,
    people: tuple[pd.DataFrame, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    server = people_server(
        MDA_PAYLOAD_LOG=f"gs://{gcs_bucket.name}/payloads/toy",
        MDA_PAYLOAD_LOG_FLUSH_SECONDS="60",  # nothing is written before the SIGTERM
    )
    body = {"instances": people[0].head(1).to_dict(orient="records")}
    sent = [f"gcs-{i}" for i in range(50)]
    for request_id in sent:
        httpx.post(f"{server.url}/predict", json=body, headers={"x-request-id": request_id})
    assert list(gcs_bucket.client.list_blobs(gcs_bucket)) == []  # held for the flush
    terminated(server)
    blobs = list(gcs_bucket.client.list_blobs(gcs_bucket, prefix="payloads/toy/"))
    assert blobs and all(b.name.endswith(".jsonl") for b in blobs)
    ids = [json.loads(line)["id"] for b in blobs for line in b.download_as_bytes().splitlines()]
    assert sorted(ids) == sorted(sent)


@pytest.mark.parametrize("target", ["s3://bucket/x", "file://", "gs://", "syslog"])
def test_a_target_that_is_no_sink_stops_the_server_in_one_line(
    people_server: Callable[..., ServerProcess], target: str, tmp_path: Path
) -> None:
    with pytest.raises(AssertionError, match=r"server exited \(1\): mda: error: MDA_PAYLOAD_LOG="):
        people_server(MDA_PAYLOAD_LOG=target)


def test_a_file_sink_with_two_workers_writes_one_file_each(
    people_server: Callable[..., ServerProcess], tmp_path: Path, people: tuple[pd.DataFrame, Any]
) -> None:
    log = tmp_path / "logs" / "payloads.jsonl"
    server = people_server(MDA_PAYLOAD_LOG=f"file://{log}", MDA_WORKERS="2")
    body = {"instances": people[0].head(1).to_dict(orient="records")}
    with httpx.Client(base_url=server.url) as client:  # new connections: both workers answer
        for index in range(40):
            client.post("/predict", json=body, headers={"x-request-id": f"w-{index}",
                                                         "connection": "close"})  # fmt: skip
    terminated(server)
    files = sorted((tmp_path / "logs").iterdir())
    assert not log.exists() and all(f.name.startswith("payloads.jsonl.") for f in files)
    ids = [json.loads(line)["id"] for f in files for line in f.read_text().splitlines()]
    assert sorted(ids) == sorted(f"w-{index}" for index in range(40))


def test_a_callers_request_id_is_kept_to_its_first_200_characters() -> None:
    from model_deployment_app.metrics import Metrics
    from model_deployment_app.payload_log import CURRENT, MAX_REQUEST_ID, PayloadLog
    from model_deployment_app.settings import PayloadLogSettings

    log = PayloadLog(PayloadLogSettings(payload_log="stdout"), Metrics(), "stable", 1, str)
    exchange = log.begin("x" * 5000, "toy", "/inference.GRPCInferenceService/ModelInfer", "grpc")
    assert exchange is not None and exchange.request_id == "x" * MAX_REQUEST_ID == "x" * 200
    assert CURRENT.get() is exchange  # the data plane fills the current one
    made = log.begin(None, "toy", "/predict", "rest")
    assert made is not None and made.request_id != exchange.request_id
