"""Traces: a real server exports its spans over OTLP (http/protobuf and grpc) to receivers
here that decode the protobuf export requests, joining the caller's `traceparent`."""

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as otlp
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as otlp_grpc
from sklearn.pipeline import Pipeline

from model_deployment_app.grpc_v2 import grpc_predict_v2_pb2 as pb
from model_deployment_app.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.conftest import ServerProcess, free_port

pytestmark = pytest.mark.slow

Start = Callable[..., ServerProcess]
QUICK_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "100"}  # ms: spans leave within a moment


class OtlpHttp(BaseHTTPRequestHandler):
    exports: ClassVar[list[otlp.ExportTraceServiceRequest]] = []

    def do_POST(self) -> None:  # the standard library's name
        body = self.rfile.read(int(self.headers["content-length"]))
        assert (
            self.path == "/v1/traces" and self.headers["content-type"] == "application/x-protobuf"
        )
        self.exports.append(otlp.ExportTraceServiceRequest.FromString(body))
        reply = otlp.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        pass


class OtlpGrpc(otlp_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.exports: list[otlp.ExportTraceServiceRequest] = []

    def Export(self, request: Any, context: Any) -> otlp.ExportTraceServiceResponse:
        self.exports.append(request)
        return otlp.ExportTraceServiceResponse()


@pytest.fixture
def http_receiver() -> Iterator[tuple[str, list[otlp.ExportTraceServiceRequest]]]:
    OtlpHttp.exports = []
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), OtlpHttp)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", OtlpHttp.exports
    server.shutdown()
    server.server_close()


@pytest.fixture
def grpc_receiver() -> Iterator[tuple[str, list[otlp.ExportTraceServiceRequest]]]:
    servicer = OtlpGrpc()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    otlp_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"http://127.0.0.1:{port}", servicer.exports
    server.stop(grace=None)


def spans_of(exports: list[otlp.ExportTraceServiceRequest], trace_id: str, count: int) -> list[Any]:
    """The spans of one trace, once `count` have come (the exporter batches them)."""
    deadline = time.monotonic() + 10
    while True:
        spans = [
            (resource.resource, span)
            for export in list(exports)
            for resource in export.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
            if span.trace_id.hex() == trace_id
        ]
        if len(spans) >= count or time.monotonic() > deadline:
            return spans
        time.sleep(0.05)


def attributes(span: Any) -> dict[str, Any]:
    values = {}
    for item in span.attributes:
        kind = item.value.WhichOneof("value")
        values[item.key] = getattr(item.value, kind)
    return values


def test_a_request_joins_the_callers_trace_with_its_cache_wait_and_model_call(
    start_server: Start,
    write_model: Callable[..., tuple[Path, Path]],
    iris_pipeline: Pipeline,
    http_receiver: tuple[str, list[Any]],
    tmp_path: Path,
) -> None:
    endpoint, exports = http_receiver
    config, _ = write_model(iris_pipeline, job="classification", input_size=4)
    log = tmp_path / "payloads.jsonl"
    server = start_server(
        config, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_SERVICE_NAME="iris-traced", MDA_PAYLOAD_LOG=f"file://{log}", **QUICK_EXPORT,
    )  # fmt: skip
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    reply = httpx.post(f"{server.url}/predict", json=[[5.1, 3.5, 1.4, 0.2]],
                       headers={"traceparent": f"00-{trace_id}-{parent}-01"})  # fmt: skip
    assert reply.status_code == 200

    spans = spans_of(exports, trace_id, 4)
    by_name = {span.name: span for _, span in spans}
    assert set(by_name) == {"POST /predict", "cache lookup", "batch wait", "model call"}, by_name
    request = by_name["POST /predict"]
    assert request.parent_span_id.hex() == parent  # the caller's span
    assert request.kind == request.SPAN_KIND_SERVER
    for step in ("cache lookup", "batch wait", "model call"):
        assert by_name[step].parent_span_id == request.span_id, step
    call = attributes(by_name["model call"])
    assert call["mda.batch.rows"] == 1 and call["mda.model"] == "toy"
    assert call["mda.engine"] in ("sklearn", "onnxruntime")
    wait, model_call = by_name["batch wait"], by_name["model call"]
    assert wait.end_time_unix_nano == model_call.start_time_unix_nano
    assert request.start_time_unix_nano <= wait.start_time_unix_nano
    assert model_call.end_time_unix_nano <= request.end_time_unix_nano
    [resource] = {id(r): r for r, _ in spans}.values()
    assert {"key": "service.name", "value": "iris-traced"} in [
        {"key": a.key, "value": a.value.string_value} for a in resource.attributes
    ]
    deadline = time.monotonic() + 5  # the payload log writes within a second
    while not (log.exists() and log.read_text()):
        assert time.monotonic() < deadline, "no payload record"
        time.sleep(0.05)
    [record] = [json.loads(line) for line in log.read_text().splitlines()]
    assert record["trace_id"] == trace_id  # the payload record names its trace


def test_a_grpc_call_exported_over_grpc_joins_the_trace_in_its_metadata(
    start_server: Start,
    write_model: Callable[..., tuple[Path, Path]],
    iris_pipeline: Pipeline,
    grpc_receiver: tuple[str, list[Any]],
) -> None:
    endpoint, exports = grpc_receiver
    config, _ = write_model(iris_pipeline, job="classification", input_size=4)
    server = start_server(
        config, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        MDA_CACHE_ENABLED="false", **QUICK_EXPORT,
    )  # fmt: skip
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        request = pb.ModelInferRequest(model_name="toy", inputs=[
            pb.ModelInferRequest.InferInputTensor(
                name="x", datatype="FP64", shape=[1, 4],
                contents=pb.InferTensorContents(fp64_contents=[5.1, 3.5, 1.4, 0.2]))
        ])  # fmt: skip
        stub.ModelInfer(request, metadata=[("traceparent", f"00-{trace_id}-{parent}-01")])
    spans = {span.name: span for _, span in spans_of(exports, trace_id, 3)}
    assert set(spans) == {"inference.GRPCInferenceService/ModelInfer", "batch wait", "model call"}
    call = spans["inference.GRPCInferenceService/ModelInfer"]
    assert call.parent_span_id.hex() == parent
    assert spans["model call"].parent_span_id == call.span_id


def test_a_protocol_other_than_grpc_or_http_protobuf_stops_the_server_in_one_line(
    start_server: Start, write_model: Callable[..., tuple[Path, Path]], iris_pipeline: Pipeline
) -> None:
    config, _ = write_model(iris_pipeline, job="classification", input_size=4)
    server = start_server(
        config, wait=False, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:1",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/json",
    )  # fmt: skip
    assert server.process.wait(timeout=60) == 1
    lines = [line for line in server.output().splitlines() if line.startswith("mda: error:")]
    assert len(lines) == 1 and "OTEL_EXPORTER_OTLP_PROTOCOL='http/json'" in lines[0], lines
