"""Prometheus metrics, one registry per app; multiprocess-aware when workers > 1.

With several workers, `PROMETHEUS_MULTIPROC_DIR` is set by `server.serve` before
prometheus-client is imported, and `/metrics` aggregates every worker's files.
"""

import os
from bisect import bisect_left

import numpy as np
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
# The top class's probability: where a classifier's answers sit, per track (canary or not).
_CONFIDENCE_BUCKETS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0)
# A regressor's values, either sign, by order of magnitude.
_VALUE_BUCKETS = tuple(
    sorted({sign * 10.0**power for sign in (-1, 1) for power in range(-2, 7)} | {0.0})
)


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        disable_created_metrics()  # the *_created series only add noise here
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "mda_requests", "HTTP and gRPC requests by model, route and status",
            ["model", "route", "method", "status"], registry=r,
        )  # fmt: skip
        self.request_latency = Histogram(
            "mda_request_duration_seconds", "Request latency by model, route and status",
            ["model", "route", "method", "status"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.inference_latency = Histogram(
            "mda_inference_duration_seconds", "Time in the model call, per batch", ["model"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_rows = Histogram(
            "mda_batch_rows", "Rows per model call", ["model"], buckets=_BATCH_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.cache_hits = Counter(
            "mda_cache_hits", "Rows answered from the cache", ["model"], registry=r
        )
        self.cache_misses = Counter(
            "mda_cache_misses", "Rows the model computed", ["model"], registry=r
        )
        self.model_load_seconds = Gauge(
            "mda_model_load_seconds", "Time to fetch and load the model", ["model"], registry=r,
            multiprocess_mode="max",
        )  # fmt: skip
        self.model_info = Gauge(
            "mda_model_info", "1 for the model version being served",
            ["model", "version", "track"], registry=r, multiprocess_mode="max",
        )  # fmt: skip
        self.model_engine = Gauge(
            "mda_model_engine", "1 for the engine answering the served version (onnxruntime "
            "once compiled, else the model family's own)", ["model", "version", "engine"],
            registry=r, multiprocess_mode="max",
        )  # fmt: skip
        self.model_reloads = Counter(
            "mda_model_reloads", "New model versions swapped in", ["model"], registry=r
        )
        self.model_reload_failures = Counter(
            "mda_model_reload_failures", "New model versions refused (the old one kept serving)",
            ["model"], registry=r,
        )  # fmt: skip
        self.model_ready = Gauge(
            "mda_model_ready", "1 while the model is loaded", ["model"], registry=r,
            multiprocess_mode="max",
        )  # fmt: skip
        self.model_memory = Gauge(
            "mda_model_memory_bytes", "Memory the loaded model holds (its objects and compiled "
            "engine; 0 when unloaded)", ["model"], registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.prediction_confidence = Histogram(
            "mda_prediction_confidence", "A classifier's top class probability, per row the "
            "model computed", ["model"], buckets=_CONFIDENCE_BUCKETS, registry=r,
        )  # fmt: skip
        self.prediction_value = Histogram(
            "mda_prediction_value", "A regressor's predicted values, per row the model computed",
            ["model"], buckets=_VALUE_BUCKETS, registry=r,
        )  # fmt: skip
        self.model_loads = Counter(
            "mda_model_loads", "Times a pool loaded the model (at start or on demand)", ["model"],
            registry=r,
        )  # fmt: skip
        self.model_evictions = Counter(
            "mda_model_evictions", "Times a pool unloaded the model to stay within its memory "
            "budget", ["model"], registry=r,
        )  # fmt: skip

        self.payload_log_records = Counter(
            "mda_payload_log_records", "Payload records written to the sink", registry=r
        )
        self.payload_log_dropped = Counter(
            "mda_payload_log_dropped", "Payload records dropped: the queue was full or the "
            "sink failed", registry=r,
        )  # fmt: skip

    def of(self, model: str) -> "ModelMetrics":
        """The series of one model, its label bound once."""
        return ModelMetrics(self, model)

    def render(self) -> bytes:
        if _multiprocess():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


class ModelMetrics:
    """One model's series (`labels()` is not free: each child is looked up here, once)."""

    def __init__(self, metrics: Metrics, model: str) -> None:
        self.model = model
        self._metrics = metrics
        self.cache_hits = metrics.cache_hits.labels(model)
        self.cache_misses = metrics.cache_misses.labels(model)
        self.model_load_seconds = metrics.model_load_seconds.labels(model)
        self.model_ready = metrics.model_ready.labels(model)
        self.model_reloads = metrics.model_reloads.labels(model)
        self.model_reload_failures = metrics.model_reload_failures.labels(model)
        self.model_memory = metrics.model_memory.labels(model)
        self.model_loads = metrics.model_loads.labels(model)
        self.model_evictions = metrics.model_evictions.labels(model)
        self._batch_rows = metrics.batch_rows.labels(model)
        self._confidence = metrics.prediction_confidence.labels(model)
        self._value = metrics.prediction_value.labels(model)
        self._inference_latency = metrics.inference_latency.labels(model)

    def observe_batch(self, rows: int, seconds: float) -> None:
        self._batch_rows.observe(rows)
        self._inference_latency.observe(seconds)

    def observe_answers(self, output: str, answers: np.ndarray, classifier: bool) -> None:
        """What the model said: a classifier's top probability per row, a regressor's values
        (labels say nothing a histogram can hold)."""
        if classifier and output == "predict_proba" and answers.ndim == 2:
            _observe_many(self._confidence, answers.max(axis=1))
        elif not classifier and answers.dtype.kind == "f":
            _observe_many(self._value, answers.ravel())

    def serving(self, version: str, track: str, value: int) -> None:
        """`mda_model_info` of one version: 1 while it serves."""
        self._metrics.model_info.labels(self.model, version, track).set(value)

    def engine(self, version: str, engine: str, value: int) -> None:
        """`mda_model_engine`: 1 for the engine answering `version`."""
        self._metrics.model_engine.labels(self.model, version, engine).set(value)


_FEW = 16  # values below which a Python loop beats numpy's fixed cost per call (5 us)


def _observe_many(histogram: Histogram, values: np.ndarray) -> None:
    """`observe` of every value, as one count per bucket: a 64-row batch is a few additions,
    not 64 calls; a batch of a few rows, a bisection each (numpy's calls cost more than that).
    Counted as prometheus-client's own `observe` does (the first bucket whose bound is at least
    the value; NaN in none); through its public `observe` if its internals differ."""
    buckets, total = getattr(histogram, "_buckets", None), getattr(histogram, "_sum", None)
    bounds = getattr(histogram, "_upper_bounds", None)
    if buckets is None or total is None or bounds is None:
        for value in values.tolist():
            histogram.observe(value)
        return
    if len(values) <= _FEW:
        few = values.tolist()
        for value in few:
            if value == value:  # not NaN
                buckets[bisect_left(bounds, value)].inc(1)
        total.inc(sum(few))
        return
    # (ndarray methods and ufuncs directly: numpy's module functions add microseconds.)
    counts = np.bincount(np.asarray(bounds).searchsorted(values), minlength=len(buckets))
    for index in counts[: len(buckets)].nonzero()[0].tolist():
        buckets[index].inc(int(counts[index]))
    total.inc(float(np.add.reduce(values)))
