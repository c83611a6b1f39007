"""The Grafana dashboard reads only metrics the server exports."""

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.pipeline import Pipeline

from model_deployment_app.api import create_app
from model_deployment_app.settings import Settings
from tests.conftest import loaded

DASHBOARD = Path(__file__).parents[1] / "monitoring" / "grafana-dashboard.json"


def test_every_dashboard_query_names_an_exported_metric(iris_pipeline: Pipeline) -> None:
    with TestClient(create_app(Settings(), model=loaded(iris_pipeline, "classification", 4))) as c:
        c.post("/predict", json=[[1, 2, 3, 4]])
        exported = {
            line.split("{")[0].split(" ")[0]
            for line in c.get("/metrics").text.splitlines()
            if line and not line.startswith("#")
        }
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for q in queries for name in re.findall(r"\b(mda_[a-z_]+)", q)}
    assert used, "the dashboard queries no mda_ metric"
    assert used <= exported, f"not exported: {sorted(used - exported)}"


def test_the_dashboard_shows_grpc_traffic() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert any('method="GRPC"' in q for q in queries)
    assert any("/inference.GRPCInferenceService/ModelInfer" in q for q in queries)


def test_the_dashboard_compares_the_stable_and_canary_tracks() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    by_track = [
        p["title"]
        for p in dashboard["panels"]
        if any("by (track" in t["expr"] or "le, track" in t["expr"] for t in p["targets"])
    ]
    assert len(by_track) >= 3, by_track  # requests, errors, latency


def test_the_tracks_are_compared_on_latency_and_on_what_the_model_answers() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    per_track = {
        t["expr"].split("(")[1].split(",")[0] + " " + name
        for p in dashboard["panels"]
        for t in p["targets"]
        if "le, track" in t["expr"]
        for name in re.findall(r"\b(mda_[a-z_]+)", t["expr"])
    }
    assert "0.5 mda_request_duration_seconds_bucket" in per_track  # p50
    assert "0.99 mda_request_duration_seconds_bucket" in per_track  # p99
    assert "0.5 mda_prediction_confidence_bucket" in per_track  # a classifier's answers
    assert "0.5 mda_prediction_value_bucket" in per_track  # a regressor's


def test_the_answer_histograms_hold_what_the_model_said(
    iris_pipeline: Pipeline, gb_regressor: Any, diabetes: tuple[Any, Any]
) -> None:
    model = loaded(iris_pipeline, "classification", 4)
    with TestClient(create_app(Settings(), model=model)) as client:
        rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
        client.post("/predict", json=rows)
        text = client.get("/metrics").text
    top = iris_pipeline.predict_proba(rows).max(axis=1)
    assert f'mda_prediction_confidence_count{{model="toy"}} {len(rows)}.0' in text
    [total] = [
        line for line in text.splitlines() if line.startswith("mda_prediction_confidence_sum")
    ]
    assert float(total.split()[-1]) == pytest.approx(top.sum())
    regressor = loaded(gb_regressor, "regression", 10)
    with TestClient(create_app(Settings(), model=regressor)) as client:
        client.post("/predict", json=diabetes[0][:4].tolist())
        text = client.get("/metrics").text
    values = gb_regressor.predict(diabetes[0][:4])
    assert 'mda_prediction_value_count{model="toy"} 4.0' in text
    below = sum(values <= 100)
    assert f'mda_prediction_value_bucket{{le="100.0",model="toy"}} {below}.0' in text


@pytest.mark.parametrize("size", [500, 16, 3, 1])  # counted at once, or one by one
def test_a_batch_of_answers_counts_as_one_observe_of_each(size: int) -> None:
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from model_deployment_app.metrics import _observe_many

    edges = [0.5, 0.9, 1.0, float("nan"), float("inf"), -1.0]  # on a bound, NaN, the ends
    drawn = np.random.default_rng(3).uniform(0, 1.2, 500)
    values = np.concatenate([edges, drawn])[:size]
    bounds = (0.3, 0.5, 0.9, 1.0)
    at_once, one_by_one = CollectorRegistry(), CollectorRegistry()
    _observe_many(Histogram("a", "a", buckets=bounds, registry=at_once), values)
    single = Histogram("a", "a", buckets=bounds, registry=one_by_one)
    for value in values.tolist():
        single.observe(value)
    exposed = [generate_latest(r).decode().splitlines() for r in (at_once, one_by_one)]
    buckets = [[line for line in text if "_bucket" in line or "_count" in line] for text in exposed]
    assert buckets[0] == buckets[1]
