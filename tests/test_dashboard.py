"""The Grafana dashboard reads only metrics the server exports."""

import json
import re
from pathlib import Path

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
