"""Each model's path on any cluster: Gateway API routes, a canary track, promote and canary in
git, and the server answering under its prefix and without it.

Charts are rendered by the real Helm engine; HTTPRoute and GRPCRoute objects are validated
against the Gateway API's published CRD schemas (the `@kubernetes-models/gateway-api` npm
package), every other object against Kubernetes' own.
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import numpy as np
import pytest
import yaml

from model_deployment_app.config import parse_config
from model_deployment_app.deploy.layout import Repo
from model_deployment_app.deploy.rollout import promote, set_weight
from model_deployment_app.errors import UserError
from tests.conftest import ServerProcess
from tests.test_charts import KUBE_VERSION, MODELS, REPO, _copy_repo, _objects, _one, _plain_helm

ROOT = Path(__file__).resolve().parents[1]
GATEWAY_API = ROOT / ".tools" / "node_modules" / "@kubernetes-models" / "gateway-api"
MODEL = MODELS[0]

ROUTES: dict[str, Any] = {
    "httpRoute": {"enabled": True, "parentRefs": [{"name": "public", "namespace": "gateways"}],
                  "hostnames": ["models.example.com"]},
    "grpcRoute": {"enabled": True, "parentRefs": [{"name": "public", "namespace": "gateways"}]},
}  # fmt: skip
CANARY: dict[str, Any] = {
    **ROUTES,
    "canary": {
        "enabled": True,
        "weight": 10,
        "config": {"model": {"blobDir": f"{MODEL}/v2/model.joblib"}},
        "image": {"tag": "0.2.0"},
        "replicaCount": 2,
        "header": {"name": "x-mda-track", "value": "canary"},
        "mirrorPercent": 5,
    },
}


def gateway_api_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Each Gateway API object checked by the npm package's validator: [] when all pass."""
    if not GATEWAY_API.is_dir():
        pytest.fail("@kubernetes-models/gateway-api is missing: `make test` installs it (npm)")
    script = """
const objects = JSON.parse(require("fs").readFileSync(0, "utf8"));
const problems = objects.map(o => {
  const kind = require(process.argv[1] + "/gateway.networking.k8s.io/v1/" + o.kind)[o.kind];
  try { new kind(o).validate(); return ""; } catch (e) { return o.kind + ": " + e.message; }
});
console.log(JSON.stringify(problems.filter(p => p)));
"""
    result = subprocess.run(
        ["node", "-e", script, str(GATEWAY_API)], input=json.dumps(objects),
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return list(json.loads(result.stdout))


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_routes_are_valid_gateway_api_objects_and_the_rest_valid_kubernetes() -> None:
    objects = _objects(REPO, MODEL, CANARY)
    routes = [o for o in objects if o["apiVersion"].startswith("gateway.networking.k8s.io/")]
    assert sorted(o["kind"] for o in routes) == ["GRPCRoute", "HTTPRoute"]
    assert gateway_api_problems(routes) == []
    for obj in objects:
        if obj not in routes:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_the_validator_would_catch_a_broken_route() -> None:
    route = _one(_objects(REPO, MODEL, ROUTES), "HTTPRoute")
    route["spec"]["rules"][0]["backendRefs"][0]["port"] = "eighty"
    assert gateway_api_problems([route])


def test_the_http_route_matches_the_model_path_and_sends_it_to_the_service() -> None:
    objects = _objects(REPO, MODEL, ROUTES)
    route = _one(objects, "HTTPRoute")
    assert route["spec"]["parentRefs"] == ROUTES["httpRoute"]["parentRefs"]
    assert route["spec"]["hostnames"] == ["models.example.com"]
    [rule] = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": f"/{MODEL}"}}]
    assert "filters" not in rule, "no rewrite: the server answers under its prefix"
    assert rule["backendRefs"] == [{"name": MODEL, "port": 80}]
    grpc = _one(objects, "GRPCRoute")
    assert grpc["spec"]["rules"][0]["backendRefs"] == [{"name": MODEL, "port": 8081}]
    assert _one(objects, "Ingress"), "the Ingress stays on beside the routes"
    alone = _objects(REPO, MODEL, {**ROUTES, "ingress": {"enabled": False}})
    assert not [o for o in alone if o["kind"] == "Ingress"]


def test_a_canary_gets_its_weight_its_header_and_a_mirrored_share() -> None:
    objects = _objects(REPO, MODEL, CANARY)
    header_rule, main_rule = _one(objects, "HTTPRoute")["spec"]["rules"]
    canary = f"{MODEL}-canary"
    assert header_rule["matches"][0]["headers"] == [
        {"type": "Exact", "name": "x-mda-track", "value": "canary"}
    ]
    assert header_rule["backendRefs"] == [{"name": canary, "port": 80}]
    assert main_rule["backendRefs"] == [
        {"name": MODEL, "port": 80, "weight": 90},
        {"name": canary, "port": 80, "weight": 10},
    ]
    assert main_rule["filters"] == [
        {"type": "RequestMirror",
         "requestMirror": {"backendRef": {"name": canary, "port": 80}, "percent": 5}}
    ]  # fmt: skip
    grpc_backends = _one(objects, "GRPCRoute")["spec"]["rules"][0]["backendRefs"]
    assert [b["weight"] for b in grpc_backends] == [90, 10]


def test_the_two_tracks_select_only_their_own_pods() -> None:
    objects = _objects(REPO, MODEL, CANARY)
    deployments, services = by_kind(objects, "Deployment"), by_kind(objects, "Service")
    canary = f"{MODEL}-canary"
    assert sorted(deployments) == sorted(services) == sorted([MODEL, canary])
    for name, track in ((MODEL, "stable"), (canary, "canary")):
        pod_labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert pod_labels["track"] == track
        other = deployments[canary if name == MODEL else MODEL]
        other_labels = other["spec"]["template"]["metadata"]["labels"]
        for selector in (deployments[name]["spec"]["selector"]["matchLabels"],
                         services[name]["spec"]["selector"]):  # fmt: skip
            assert selector.items() <= pod_labels.items()
            assert not selector.items() <= other_labels.items()
    stable_default = _one(_objects(REPO, MODEL), "Deployment")
    assert stable_default["spec"]["selector"] == deployments[MODEL]["spec"]["selector"], (
        "the stable selector is what it was before canaries (selectors are immutable)"
    )
    container = deployments[canary]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].endswith(":0.2.0")
    assert {"name": "MDA_TRACK", "value": "canary"} in container["env"]
    assert deployments[canary]["spec"]["replicas"] == 2


def test_the_canary_config_map_holds_the_merged_config_the_server_accepts() -> None:
    objects = by_kind(_objects(REPO, MODEL, CANARY), "ConfigMap")
    stable = yaml.safe_load(objects[MODEL]["data"]["config.yaml"])
    canary = yaml.safe_load(objects[f"{MODEL}-canary"]["data"]["config.yaml"])
    assert canary["model"]["blobDir"] == f"{MODEL}/v2/model.joblib"
    assert {k: v for k, v in canary["model"].items() if k != "blobDir"} == {
        k: v for k, v in stable["model"].items() if k != "blobDir"
    }
    parse_config(canary)


def test_a_canary_without_an_http_route_fails_in_one_line() -> None:
    with pytest.raises(Exception, match=r"canary\.enabled needs httpRoute\.enabled") as raised:
        _objects(REPO, MODEL, {"canary": {"enabled": True, "weight": 10}})
    assert f"canary of {MODEL}" in str(raised.value)


def test_plain_helm_renders_the_canary_as_mda_does(tmp_path: Path) -> None:
    repo = _copy_repo(tmp_path)
    plain = _plain_helm(repo.charts_dir / MODEL, CANARY)
    ours = sorted(_objects(REPO, MODEL, CANARY), key=lambda o: (o["kind"], o["metadata"]["name"]))
    assert plain == ours


@pytest.mark.parametrize(
    "values",
    [
        {"canary": {"enabled": True, "weight": 101}},
        {"canary": {"enabled": True, "mirrorPercent": -1}},
        {"canary": {"enabled": True, "header": {"name": "x"}}},
        {"httpRoute": {"enabled": True, "parentRefs": [{"namespace": "gateways"}]}},
        {"grpcRoute": {"enabled": "yes"}},
    ],
)
def test_the_schema_refuses_bad_route_and_canary_values(values: dict[str, Any]) -> None:
    with pytest.raises(Exception, match=r"values don't meet the specifications|schema"):
        _objects(REPO, MODEL, values)


# --- promote and canary, in git ----------------------------------------------------------


def with_canary(tmp_path: Path) -> Repo:
    repo = _copy_repo(tmp_path)
    values = repo.charts_dir / MODEL / "values.yaml"
    text = values.read_text()
    switch = "canary:\n  # Render the canary track (needs httpRoute.enabled).\n  enabled: "
    text = text.replace(switch + "false", switch + "true")
    text = text.replace("  config: {}\n  # The canary's image.",
                        f"  config:\n    model:\n      blobDir: {MODEL}/v2/model.joblib  # v2\n"
                        "  # The canary's image.")  # fmt: skip
    values.write_text(text)
    return repo


def test_canary_sets_the_weight_keeping_comments_and_order(tmp_path: Path) -> None:
    repo = with_canary(tmp_path)
    values = repo.charts_dir / MODEL / "values.yaml"
    before = values.read_text()
    diff = set_weight(repo, MODEL, 25)
    after = values.read_text()
    assert "-  weight: 0" in diff and "+  weight: 25" in diff
    changed = [
        (a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b
    ]
    assert changed == [("  weight: 0", "  weight: 25")]


def test_promote_merges_the_canary_config_and_switches_it_off(tmp_path: Path) -> None:
    repo = with_canary(tmp_path)
    values = repo.charts_dir / MODEL / "values.yaml"
    before = values.read_text()
    diff = promote(repo, MODEL)
    data = yaml.safe_load(values.read_text())
    assert data["config"]["model"]["blobDir"] == f"{MODEL}/v2/model.joblib"
    assert data["canary"]["enabled"] is False and data["canary"]["config"] == {}
    assert any(
        line.startswith("+    blobDir: ") and f"{MODEL}/v2/model.joblib" in line
        for line in diff.splitlines()
    ), diff
    comments = [line for line in before.splitlines() if line.lstrip().startswith("#")]
    assert comments == [
        line for line in values.read_text().splitlines() if line.lstrip().startswith("#")
    ]
    parse_config(data["config"])


def test_promote_and_canary_refuse_without_an_enabled_canary_in_one_line(tmp_path: Path) -> None:
    repo = _copy_repo(tmp_path)
    for call in (lambda: promote(repo, MODEL), lambda: set_weight(repo, MODEL, 5)):
        with pytest.raises(UserError, match="has no enabled canary"):
            call()
    with pytest.raises(UserError, match="no chart for model 'nope'"):
        promote(repo, "nope")
    run = subprocess.run(
        [sys.executable, "-m", "model_deployment_app", "promote", MODEL, "--root", str(repo.root)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("mda: error: ")


# --- the server under its prefix, and without it --------------------------------------------


@pytest.mark.slow
def test_the_server_answers_under_its_prefix_and_without_it(
    tmp_path: Path, start_server: Any, write_model: Any, iris_pipeline: Any
) -> None:
    config, _ = write_model(iris_pipeline, job="classification", input_size=4, name="iris")
    server: ServerProcess = start_server(config, MDA_ROOT_PATH="/iris-classifier")
    row = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
    expected = iris_pipeline.predict_proba([[5.1, 3.5, 1.4, 0.2]]).tolist()
    v2 = {
        "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]
    }
    for prefix in ("/iris-classifier", ""):
        base = f"{server.url}{prefix}"
        answer = httpx.post(f"{base}/predict", json=row)
        assert answer.status_code == 200
        # (ONNX Runtime may answer by now: equal to scikit-learn's within MDA_COMPILE's 1e-9.)
        np.testing.assert_allclose(answer.json()["predictions"], expected, rtol=0, atol=1e-9)
        assert answer.headers["model-track"] == "stable"
        assert httpx.post(f"{base}/v2/models/iris/infer", json=v2).status_code == 200
        assert httpx.get(f"{base}/v2/health/ready").json() == {"ready": True}
        assert "mda_requests_total" in httpx.get(f"{base}/metrics").text
        docs = httpx.get(f"{base}/docs").text
        assert f"url: '{prefix}/openapi.json'" in docs
        assert httpx.get(f"{base}/openapi.json").status_code == 200
    assert httpx.get(f"{server.url}/iris-classifierx/predict").status_code == 404


def test_notes_show_the_route_the_canarys_share_and_how_to_promote() -> None:
    from tests.test_charts import _render

    notes = "".join(t for p, t in _render(REPO, MODEL, CANARY).items() if p.endswith("NOTES.txt"))
    assert f"at /{MODEL}" in notes and "models.example.com" in notes
    assert f"Canary: 10 % of requests go to {MODEL}-canary" in notes
    assert f"make k8s-promote MODEL={MODEL}" in notes


def test_new_model_writes_a_transformers_chart_the_server_accepts(tmp_path: Path) -> None:
    from model_deployment_app.deploy.scaffold import ModelSpec, new_model

    repo = _copy_repo(tmp_path)
    new_model(repo, ModelSpec("sentiment", model_type="transformers", bucket="b", project="p"))
    objects = _objects(repo, "sentiment")
    config = yaml.safe_load(_one(objects, "ConfigMap")["data"]["config.yaml"])
    assert config["modelType"] == "transformers" and config["model"]["blobDir"] == "sentiment/"
    assert "inputSize" not in config and "inputs" not in config
    parse_config(config)
    for obj in objects:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    [image] = {
        c["image"] for c in _one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    }
    version = yaml.safe_load((repo.root / "k8s_dev/sentiment/Chart.yaml").read_text())["appVersion"]
    assert image.endswith(f":{version}-transformers"), "a text model runs the transformers image"
    comments = (repo.root / "k8s_dev/sentiment/values.yaml").read_text()
    assert "or transformers (the folder save_pretrained wrote" in comments


@pytest.mark.parametrize(
    ("model_type", "blob"),
    [("xgboost", "model.json"), ("lightgbm", "model.txt"), ("catboost", "model.cbm"),
     ("onnx", "model.onnx")],
)  # fmt: skip
def test_new_model_writes_a_chart_for_each_family_on_its_image(
    model_type: str, blob: str, tmp_path: Path
) -> None:
    from model_deployment_app.deploy.scaffold import ModelSpec, new_model

    repo = _copy_repo(tmp_path)
    new_model(repo, ModelSpec("trees", model_type=model_type, bucket="b", project="p"))
    objects = _objects(repo, "trees")
    config = yaml.safe_load(_one(objects, "ConfigMap")["data"]["config.yaml"])
    assert config["modelType"] == model_type and config["model"]["blobDir"] == f"trees/{blob}"
    assert parse_config(config).input_size == 4
    for obj in objects:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    [image] = {
        c["image"] for c in _one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    }
    version = yaml.safe_load((repo.root / "k8s_dev/trees/Chart.yaml").read_text())["appVersion"]
    assert image.endswith(f":{version}-{model_type}"), "each family runs its own image variant"


def test_a_pool_of_a_hundred_models_with_a_canary_renders_valid_routes(tmp_path: Path) -> None:
    from model_deployment_app.deploy.pool_chart import add_to_pool, new_pool
    from model_deployment_app.deploy.scaffold import ModelSpec

    repo = _copy_repo(tmp_path)
    new_pool(repo, "stores")
    add_to_pool(repo, "stores", ModelSpec("store-0"))
    models = [
        {"name": f"store-{i}", "modelType": "joblib", "job": "classification", "inputSize": 4,
         "model": {"method": "LOCAL", "path": f"/models/{i}.joblib"}} for i in range(100)
    ]  # fmt: skip
    canary = {key: value for key, value in CANARY["canary"].items() if key != "config"}
    values = {**ROUTES, "config": {"models": models}, "canary": canary}
    objects = _objects(repo, "stores", values)
    routes = [o for o in objects if o["apiVersion"].startswith("gateway.networking.k8s.io/")]
    assert gateway_api_problems(routes) == []
    for obj in objects:
        if obj not in routes:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    rules = by_kind(objects, "HTTPRoute")["stores"]["spec"]["rules"]
    headed = [rule for rule in rules if "headers" in rule["matches"][0]]
    assert [len(rule["matches"]) for rule in headed] == [64, 36]
    assert {b["name"] for rule in headed for b in rule["backendRefs"]} == {"stores-canary"}
    weighted = [rule for rule in rules if rule not in headed]
    paths = [m["path"]["value"] for rule in weighted for m in rule["matches"]]
    assert paths == [f"/store-{i}" for i in range(100)]
    assert all(len(rule["backendRefs"]) == 2 for rule in weighted)  # stable and canary
