"""Traces with OpenTelemetry's SDK and OTLP exporters, set up by the standard `OTEL_*` variables
(`OTEL_EXPORTER_OTLP_ENDPOINT` or `..._TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_PROTOCOL` grpc or
http/protobuf, `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`...). Without an endpoint there are no
traces, and nothing on a request's way asks for one.

A request's span joins the caller's W3C `traceparent` (an HTTP header, or gRPC metadata) and
has a child for the cache look-up, one for the wait in the batcher, and one for the model call,
with the batch's rows and the engine as attributes. A model call answers every request of its
batch: each request's trace has a span of it, with the call's own start and end.
"""

import logging
import os
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any

log = logging.getLogger(__name__)

_PROTOCOLS = ("grpc", "http/protobuf")
# The W3C trace context's fields, as HTTP header names (bytes) and gRPC metadata keys (text).
_PROPAGATED = frozenset({b"traceparent", b"tracestate", "traceparent", "tracestate"})


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _env(name: str) -> str:
    return os.environ.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or os.environ.get(
        f"OTEL_EXPORTER_OTLP_{name}", ""
    )


def configured() -> bool:
    """Whether traces are asked for: an OTLP endpoint, the SDK not disabled, the exporter not
    `none`."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(_env("ENDPOINT"))


class Tracing:
    """The server's tracer, made in the process that serves (`start`, after any fork: the
    exporter's thread would not survive one) and flushed at shutdown (`close`)."""

    def __init__(self, service: str) -> None:
        from model_deployment_app.errors import StartupError

        self.protocol = _env("PROTOCOL").strip() or "http/protobuf"  # the specification's default
        if self.protocol not in _PROTOCOLS:
            raise StartupError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL={self.protocol!r}: use grpc or http/protobuf"
            )
        self.service = os.environ.get("OTEL_SERVICE_NAME") or service
        self.tracer: Any = None
        self._provider: Any = None
        self._context: Any = None
        self._trace: Any = None
        self._propagator: Any = None

    def start(self) -> None:
        from opentelemetry import context, trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        if self.protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
                OTLPSpanExporter,
            )
        # The sampler comes from OTEL_TRACES_SAMPLER(_ARG), resource attributes from the env too.
        self._provider = TracerProvider(resource=Resource.create({"service.name": self.service}))
        self._provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self.tracer = self._provider.get_tracer("model_deployment_app")
        # What each request uses, looked up once (not an import statement a request).
        self._context, self._trace = context, trace
        self._propagator = TraceContextTextMapPropagator()
        log.info("traces: OTLP over %s to %s, as %s", self.protocol, _env("ENDPOINT"),
                 self.service)  # fmt: skip

    def close(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()  # what the exporter holds is sent
            self._provider = None

    def request(
        self, name: str, headers: Iterable[tuple[str | bytes, str | bytes]], **attributes: Any
    ) -> Any:
        """A server span for one request, its parent the caller's `traceparent` if any (in
        HTTP headers as bytes, or gRPC metadata as text), made the current span: (span,
        token), for `ended`."""
        carrier = {
            _text(key): _text(value) for key, value in headers if key in _PROPAGATED
        }  # fmt: skip
        parent = self._propagator.extract(carrier) if carrier else None
        trace = self._trace
        span = self.tracer.start_span(
            name, context=parent, kind=trace.SpanKind.SERVER, attributes=attributes
        )
        return span, self._context.attach(trace.set_span_in_context(span))

    def ended(self, handle: Any, status: int, error: str = "") -> None:
        span, token = handle
        span.set_attribute("mda.status", status)
        if status >= 500:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, error))
        span.end()
        self._context.detach(token)

    @staticmethod
    def trace_id(handle: Any) -> str:
        return format(handle[0].get_span_context().trace_id, "032x")

    def step(self, name: str, **attributes: Any) -> AbstractContextManager[Any]:
        """A child span of the current one around a step (the cache look-up)."""
        return self.tracer.start_as_current_span(name, attributes=attributes)

    def past(self, name: str, start_ns: int, end_ns: int, **attributes: Any) -> None:
        """A child span of the current one for a step already over (the batch's model call)."""
        self.tracer.start_span(name, start_time=start_ns, attributes=attributes).end(end_ns)
