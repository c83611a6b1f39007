"""Prometheus metrics, one registry per app; multiprocess-aware when workers > 1.

With several workers, `PROMETHEUS_MULTIPROC_DIR` is set by `server.serve` before
prometheus-client is imported, and `/metrics` aggregates every worker's files.
"""

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        disable_created_metrics()  # the *_created series only add noise here
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "mda_requests", "HTTP requests by route and status", ["route", "method", "status"],
            registry=r,
        )  # fmt: skip
        self.request_latency = Histogram(
            "mda_request_duration_seconds", "HTTP request latency by route and status",
            ["route", "method", "status"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.inference_latency = Histogram(
            "mda_inference_duration_seconds", "Time in the model call, per batch",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_rows = Histogram(
            "mda_batch_rows", "Rows per model call", buckets=_BATCH_BUCKETS, registry=r
        )
        self.cache_hits = Counter("mda_cache_hits", "Rows answered from the cache", registry=r)
        self.cache_misses = Counter("mda_cache_misses", "Rows the model computed", registry=r)
        self.model_load_seconds = Gauge(
            "mda_model_load_seconds", "Time to fetch and load the model", registry=r,
            multiprocess_mode="max",
        )  # fmt: skip
        self.model_info = Gauge(
            "mda_model_info", "1 for the model version being served", ["version", "track"],
            registry=r,
            multiprocess_mode="max",
        )  # fmt: skip
        self.model_engine = Gauge(
            "mda_model_engine", "1 for the engine answering the served version (onnxruntime "
            "once compiled, else the model family's own)", ["version", "engine"], registry=r,
            multiprocess_mode="max",
        )  # fmt: skip
        self.model_reloads = Counter(
            "mda_model_reloads", "New model versions swapped in", registry=r
        )
        self.model_reload_failures = Counter(
            "mda_model_reload_failures", "New model versions refused (the old one kept serving)",
            registry=r,
        )  # fmt: skip
        self.model_ready = Gauge(
            "mda_model_ready", "1 once the model is loaded", registry=r,
            multiprocess_mode="max",
        )  # fmt: skip

    def observe_batch(self, rows: int, seconds: float) -> None:
        self.batch_rows.observe(rows)
        self.inference_latency.observe(seconds)

    def render(self) -> bytes:
        if _multiprocess():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
