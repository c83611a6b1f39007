"""The model charts, rendered by the real Helm engine (Helm's Go SDK via helm-python-sdk).

Every chart in k8s_dev/, and one freshly made by `mda new-model` in a copy of the repository,
must render, pass `helm lint`, validate against the Kubernetes schemas, survive Helm's
client-side dry-run install, and carry a config.yaml the server accepts and becomes ready on.
No cluster is needed.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import kubernetes_validate
import pytest
import yaml

from model_deployment_app.config import PoolConfig, parse_config, parse_served
from model_deployment_app.deploy.helm import Release, SdkEngine
from model_deployment_app.deploy.layout import Repo
from model_deployment_app.deploy.pool_chart import add_to_pool, new_pool
from model_deployment_app.deploy.scaffold import SHARED, ModelSpec, new_model
from model_deployment_app.deploy.stage import staged_chart
from model_deployment_app.deploy.versioning import package_version
from tests.conftest import free_port

helm = pytest.importorskip("helm_python", reason="the deploy extra (helm-python-sdk)")

ROOT = Path(__file__).resolve().parents[1]
REPO = Repo(ROOT)
MODELS = REPO.model_names()
FRESH = "fresh-model"
FRESH_NAMED = "fresh-named"  # scaffolded with named, typed inputs
FRESH_MLFLOW = "fresh-mlflow"  # scaffolded to follow an MLflow registry alias
FRESH_POOL = "fresh-pool"  # a pool (mda new-pool) of two models (mda new-model --into)
FRESH_CHARTS = (FRESH, FRESH_NAMED, FRESH_MLFLOW, FRESH_POOL)
NAMED_INPUTS = (("age", "INT64"), ("city", "BYTES"), ("member", "BOOL"), ("income", "FP64"))
KUBE_VERSION = "1.30.0"

# Every optional object switched on, so that each of them is rendered and validated too.
EVERYTHING_ON: dict[str, Any] = {
    "autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": 80},
    "serviceAccount": {
        "create": True,
        "annotations": {"iam.gke.io/gcp-service-account": "reader@p.iam.gserviceaccount.com"},
    },
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "ingress": {
        "host": "models.example.com",
        "tls": [{"hosts": ["models.example.com"], "secretName": "models-tls"}],
        "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "16m"},
    },
    "redisUrl": "redis://redis-master:6379/0",
    "env": {"MDA_MAX_ROWS": 5000, "MDA_LOG_LEVEL": "debug"},
    "extraEnv": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}}],
    "imagePullSecrets": [{"name": "regcred"}],
    "nodeSelector": {"pool": "cpu"},
    "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
    "podAnnotations": {"a": "b"},
    "podLabels": {"team": "ml"},
}


# --- helpers -------------------------------------------------------------------------------


def _copy_repo(target: Path) -> Repo:
    """The parts of the checkout the chart commands read, copied to `target`."""
    shutil.copytree(ROOT / "charts_template", target / "charts_template")
    shutil.copytree(ROOT / "k8s_dev", target / "k8s_dev")
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    return Repo(target)


def _render(repo: Repo, name: str, values: dict[str, Any] | None = None) -> dict[str, str]:
    """{template path: rendered text}, as Helm renders an install of release `name`."""
    with staged_chart(repo, name) as chart, helm.Chart.load(chart) as loaded:
        rendered: dict[str, str] = loaded.render(
            values or {}, name=name, namespace="models", is_install=True
        )
    return rendered


def _objects(repo: Repo, name: str, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    objects = []
    for path, text in _render(repo, name, values).items():
        if path.endswith("NOTES.txt"):
            continue
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects


def _one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def fresh_repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """A copy of the repository with one more chart, made by `mda new-model`'s code."""
    repo = _copy_repo(tmp_path_factory.mktemp("repo"))
    new_model(repo, ModelSpec(FRESH, job="regression", input_size=3, bucket="b", project="p"))
    new_model(repo, ModelSpec(FRESH_NAMED, inputs=NAMED_INPUTS, model_type="skops"))
    new_model(repo, ModelSpec(FRESH_MLFLOW, mlflow_uri="models:/churn@champion",
                              refresh_seconds=60))  # fmt: skip
    new_pool(repo, FRESH_POOL)
    add_to_pool(repo, FRESH_POOL, ModelSpec("store-paris", input_size=3))
    add_to_pool(repo, FRESH_POOL, ModelSpec("store-lyon", inputs=NAMED_INPUTS, model_type="skops"))
    return repo


@pytest.fixture(params=[*MODELS, *FRESH_CHARTS])
def chart(request: pytest.FixtureRequest, fresh_repo: Repo) -> tuple[Repo, str]:
    """Each model chart of the checkout, then the freshly scaffolded ones."""
    name = str(request.param)
    return (fresh_repo if name in FRESH_CHARTS else REPO), name


# --- the checkout --------------------------------------------------------------------------


def test_there_is_a_classifier_and_a_regressor() -> None:
    jobs = {
        yaml.safe_load((REPO.charts_dir / m / "values.yaml").read_text())["config"]["job"]
        for m in MODELS
    }
    assert jobs == {"classification", "regression"}


def test_ingress_paths_are_unique_across_charts() -> None:
    paths = [
        yaml.safe_load((REPO.charts_dir / m / "values.yaml").read_text())["ingress"]["path"]
        for m in MODELS
    ]
    assert sorted(paths) == sorted(f"/{m}" for m in MODELS)
    assert len(set(paths)) == len(paths)


def test_app_version_is_the_package_version() -> None:
    version = package_version(REPO)
    for model in MODELS:
        meta = yaml.safe_load((REPO.charts_dir / model / "Chart.yaml").read_text())
        assert meta["appVersion"] == version, model


COMPLETE_CHART = {"Chart.yaml", "values.yaml", *SHARED}


def _chart_files(chart_dir: Path) -> set[str]:
    """A model chart's files, less what `helm dependency build` leaves."""
    return {
        str(p.relative_to(chart_dir))
        for p in chart_dir.rglob("*")
        if p.is_file() and p.relative_to(chart_dir).parts[0] not in ("charts", "Chart.lock")
    }


def test_model_charts_are_complete_and_share_the_starters_templates(fresh_repo: Repo) -> None:
    """The templates live once, in the library; each chart's two one-line templates and its
    schema are the starter's, byte for byte (a stale copy fails here)."""
    for repo, model in [*((REPO, m) for m in MODELS), (fresh_repo, FRESH)]:
        chart = repo.charts_dir / model
        assert _chart_files(chart) == COMPLETE_CHART, model
        for name in SHARED:
            assert (chart / name).read_bytes() == (repo.starter_dir / name).read_bytes(), name
    for stub in (REPO.starter_dir / "templates").rglob("*"):
        assert len(stub.read_text().strip().splitlines()) == 1, stub


def test_staged_chart_vendors_the_library() -> None:
    with staged_chart(REPO, MODELS[0]) as staged:
        assert (staged / "charts" / "mda-template" / "Chart.yaml").is_file()
        assert not (staged / "charts" / "mda-template" / "starter").exists()
        assert _chart_files(staged) == COMPLETE_CHART


def test_an_old_two_file_chart_still_renders_and_its_own_files_win(tmp_path: Path) -> None:
    """A chart made before charts were complete (Chart.yaml and values.yaml only) is completed
    from the starter when staged; a file it holds itself wins."""
    repo = _copy_repo(tmp_path)
    chart = repo.charts_dir / MODELS[0]
    shutil.rmtree(chart / "templates")
    (chart / "values.schema.json").unlink()
    rendered = _render(repo, MODELS[0])
    assert any("kind: Deployment" in text for text in rendered.values())
    (chart / "templates").mkdir()
    (chart / "templates" / "NOTES.txt").write_text("custom notes\n")
    rendered = _render(repo, MODELS[0])
    assert rendered[f"{MODELS[0]}/templates/NOTES.txt"].strip() == "custom notes"


def test_every_values_key_has_a_comment() -> None:
    # Children of these are Kubernetes' own fields, passed through as they are.
    passthrough = {
        "podSecurityContext",
        "securityContext",
        "resources",
        "startupProbe",
        "livenessProbe",
        "readinessProbe",
        "model",
    }
    for path in [
        REPO.starter_dir / "values.yaml",
        *(REPO.charts_dir / m / "values.yaml" for m in MODELS),
    ]:
        lines = path.read_text().splitlines()
        parents: list[str] = []
        for number, line in enumerate(lines):
            key = re.match(r"^( *)([A-Za-z][A-Za-z0-9]*):", line)
            if not key:
                continue
            depth = len(key.group(1)) // 2
            parents = [*parents[:depth], key.group(2)]
            if any(p in passthrough for p in parents[:-1]):
                continue
            previous = next(x for x in reversed(lines[:number]) if x.strip())
            assert previous.strip().startswith("#"), f"{path}:{number + 1}: {key.group(2)}"


# --- every chart ---------------------------------------------------------------------------


def test_chart_renders_every_object(chart: tuple[Repo, str]) -> None:
    repo, name = chart
    kinds = sorted(o["kind"] for o in _objects(repo, name))
    assert kinds == ["ConfigMap", "Deployment", "Ingress", "Pod", "Service"]
    kinds = sorted(o["kind"] for o in _objects(repo, name, EVERYTHING_ON))
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "Ingress",
            "Pod",
            "Service",
            "HorizontalPodAutoscaler",
            "ServiceAccount",
            "ServiceMonitor",
        ]
    )


def test_chart_passes_helm_lint(chart: tuple[Repo, str]) -> None:
    repo, name = chart
    with staged_chart(repo, name) as staged:
        for values in (None, EVERYTHING_ON):
            report = helm.lint(staged, values, strict=True, kube_version=f"v{KUBE_VERSION}")
            problems = [m for m in report["messages"] if m["severity"] >= 2]
            assert not report["errors"] and not problems, report


@pytest.mark.parametrize("values", [None, EVERYTHING_ON], ids=["defaults", "everything-on"])
def test_every_object_is_valid_kubernetes(
    chart: tuple[Repo, str], values: dict[str, Any] | None
) -> None:
    repo, name = chart
    for obj in _objects(repo, name, values):
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            # A CRD: no schema in kubernetes-validate; check the fields prometheus-operator reads.
            assert obj["kind"] == "ServiceMonitor"
            assert obj["spec"]["endpoints"] == [
                {"port": "http", "path": "/metrics", "interval": "30s"}
            ]
            continue
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_client_dry_run_install_succeeds(chart: tuple[Repo, str], tmp_path: Path) -> None:
    """Helm's own install path (schema, hooks, ordering), stopped before the cluster. A
    kubeconfig pointing nowhere keeps the developer's real cluster out of it."""
    repo, name = chart
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(_DUMMY_KUBECONFIG)
    with staged_chart(repo, name) as staged, helm.Config(kubeconfig_path=kubeconfig) as config:
        release = config.install(staged, name, EVERYTHING_ON, namespace="models", dry_run="client")
    assert release["name"] == name
    assert "kind: Deployment" in release["manifest"]
    assert "curl" in release["notes"]


def test_config_map_holds_a_config_the_server_accepts(chart: tuple[Repo, str]) -> None:
    repo, name = chart
    configmap = _one(_objects(repo, name), "ConfigMap")
    values = yaml.safe_load((repo.charts_dir / name / "values.yaml").read_text())
    if name == FRESH_POOL:
        pool = parse_served(yaml.safe_load(configmap["data"]["config.yaml"]))
        assert isinstance(pool, PoolConfig)
        assert [m.name for m in pool.models] == ["store-paris", "store-lyon"]
        assert pool.models[0].input_size == 3
        assert [i.name for i in pool.models[1].inputs or ()] == [n for n, _ in NAMED_INPUTS]
        return
    config = parse_config(yaml.safe_load(configmap["data"]["config.yaml"]))
    assert config.name == name
    assert config.input_size == values["config"].get("inputSize")
    if name == FRESH_NAMED:
        assert [(i.name, i.datatype) for i in config.inputs or ()] == list(NAMED_INPUTS)
    if name == FRESH_MLFLOW:
        assert (config.model.method, config.model.refresh_seconds) == ("MLFLOW", 60)
        env = _one(_objects(repo, name), "Deployment")["spec"]["template"]["spec"][
            "containers"][0]["env"]  # fmt: skip
        assert {"name": "MLFLOW_TRACKING_URI",
                "value": "http://mlflow.mlflow.svc.cluster.local:5000"} in env  # fmt: skip


def test_deployment_follows_the_conventions(chart: tuple[Repo, str]) -> None:
    repo, name = chart
    objects = _objects(repo, name, {"workers": 3, "redisUrl": "redis://r:6379/0"})
    deployment = _one(objects, "Deployment")
    meta = yaml.safe_load((repo.charts_dir / name / "Chart.yaml").read_text())
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}

    # Selectors never carry a version: they are immutable.
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": name}
    assert len(deployment["metadata"]["name"]) <= 63
    assert container["image"].endswith(f":{meta['appVersion']}")
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    assert re.fullmatch(r"[0-9a-f]{64}", pod["metadata"]["annotations"]["checksum/config"])
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["limits"] and container["resources"]["requests"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert (
        volumes[mounts["/etc/config"]]["configMap"]["name"]
        == _one(objects, "ConfigMap")["metadata"]["name"]
    )
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert env["MDA_CONFIG_PATH"] == "/etc/config/config.yaml"
    assert env["MDA_DOWNLOAD_DIR"].startswith("/tmp/")
    assert env["MDA_WORKERS"] == "3"
    assert env["MDA_REDIS_URL"] == "redis://r:6379/0"
    assert "MDA_REDIS_URL" not in {
        e["name"]
        for e in _one(_objects(repo, name), "Deployment")["spec"]["template"]["spec"]["containers"][
            0
        ]["env"]
    }


def test_the_pod_drains_and_gives_up_loading_within_its_time(chart: tuple[Repo, str]) -> None:
    repo, name = chart

    def container(values: dict[str, Any]) -> dict[str, Any]:
        deployment = _one(_objects(repo, name, values), "Deployment")
        return dict(deployment["spec"]["template"]["spec"]["containers"][0])

    default = container({})
    env = {e["name"]: e.get("value") for e in default["env"]}
    assert default["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    assert env["MDA_GRACEFUL_SHUTDOWN_SECONDS"] == "22"  # 30 s grace - 5 s pause - 3 s margin
    assert env["MDA_LOAD_TIMEOUT_SECONDS"] == "270"  # the startup probe's 300 s - 30 s
    custom = container({"terminationGracePeriodSeconds": 60, "preStopSleepSeconds": 0,
                        "startupProbe": {"periodSeconds": 2, "failureThreshold": 30}})  # fmt: skip
    env = {e["name"]: e.get("value") for e in custom["env"]}
    assert "lifecycle" not in custom
    assert (env["MDA_GRACEFUL_SHUTDOWN_SECONDS"], env["MDA_LOAD_TIMEOUT_SECONDS"]) == ("57", "30")


def test_grpc_is_served_on_its_own_port_or_off(chart: tuple[Repo, str]) -> None:
    repo, name = chart

    def rendered(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        objects = _objects(repo, name, values)
        service = _one(objects, "Service")
        container = _one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
        return service, container

    service, container = rendered({})
    grpc_port = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
    assert (grpc_port["port"], grpc_port["targetPort"]) == (8081, "grpc")
    assert {"name": "grpc", "containerPort": 8081, "protocol": "TCP"} in container["ports"]
    assert {"name": "MDA_GRPC_PORT", "value": "8081"} in container["env"]
    service, container = rendered({"service": {"grpcPort": 0}})
    assert [p["name"] for p in service["spec"]["ports"]] == ["http"]
    assert {"name": "MDA_GRPC_PORT", "value": "0"} in container["env"]


def test_a_config_change_alone_rolls_the_pods(chart: tuple[Repo, str]) -> None:
    repo, name = chart

    def checksum(values: dict[str, Any]) -> str:
        deployment = _one(_objects(repo, name, values), "Deployment")
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    config = yaml.safe_load((repo.charts_dir / name / "values.yaml").read_text())["config"]
    change = {"models": config["models"][:1]} if "models" in config else {"name": "renamed"}
    assert checksum({}) != checksum({"config": change})
    assert checksum({}) == checksum({"replicaCount": 2})


def test_ingress_is_a_plain_prefix_on_the_model_path_for_any_controller(
    chart: tuple[Repo, str],
) -> None:
    repo, name = chart
    ingress = _one(_objects(repo, name), "Ingress")
    if name == FRESH_POOL:  # each model's own path, the server takes it off itself
        paths = ingress["spec"]["rules"][0]["http"]["paths"]
        assert [(p["path"], p["pathType"]) for p in paths] == [
            ("/store-paris", "Prefix"),
            ("/store-lyon", "Prefix"),
        ]
        container = _one(_objects(repo, name), "Deployment")["spec"]["template"]["spec"][
            "containers"][0]  # fmt: skip
        assert "MDA_ROOT_PATH" not in {e["name"] for e in container["env"]}
        return
    path = ingress["spec"]["rules"][0]["http"]["paths"][0]
    assert path["path"] == f"/{name}"
    assert path["pathType"] == "Prefix"
    assert "annotations" not in ingress["metadata"], "no controller-specific annotations"
    container = _one(_objects(repo, name), "Deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container[0]["env"]}
    assert env["MDA_ROOT_PATH"] == f"/{name}"  # the server answers under the path itself
    assert env["MDA_TRACK"] == "stable"
    service = _one(_objects(repo, name), "Service")
    assert path["backend"]["service"]["name"] == service["metadata"]["name"]

    custom = _one(_objects(repo, name, {"ingress": {"path": "/x/", "className": "gce"}}), "Ingress")
    assert custom["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/x"
    assert custom["spec"]["ingressClassName"] == "gce"
    assert not [
        o for o in _objects(repo, name, {"ingress": {"enabled": False}}) if o["kind"] == "Ingress"
    ]


def test_notes_give_the_url_and_a_curl_to_try(chart: tuple[Repo, str]) -> None:
    repo, name = chart
    notes = _render(repo, name)[f"{name}/templates/NOTES.txt"]
    config = yaml.safe_load((repo.charts_dir / name / "values.yaml").read_text())["config"]
    if name == FRESH_POOL:  # the first model's URL and row; every model's path named
        assert "A pool of 2 models (/store-paris, /store-lyon)" in notes
        assert "MODEL_URL=http://$INGRESS_HOST/store-paris" in notes
        assert '{"instances": [[0,0,0]]}' in notes
        forwarded = _render(repo, name, {"ingress": {"enabled": False}})[
            f"{name}/templates/NOTES.txt"]  # fmt: skip
        assert "MODEL_URL=http://127.0.0.1:8080/store-paris" in forwarded
        return
    assert f"MODEL_URL=http://$INGRESS_HOST/{name}" in notes
    assert "curl -s -X POST $MODEL_URL/predict" in notes
    if "inputs" in config:  # a record of every named input, in JSON the server accepts
        body = json.loads(notes.split("-d '")[1].split("'")[0])
        assert body == {"instances": [{"age": 0, "city": "", "member": False, "income": 0}]}
        assert "4 named inputs" in notes
    else:
        assert "[[" + ",".join(["0"] * config["inputSize"]) + "]]" in notes
    hosted = _render(repo, name, EVERYTHING_ON)[f"{name}/templates/NOTES.txt"]
    assert f"MODEL_URL=https://models.example.com/{name}" in hosted
    forwarded = _render(repo, name, {"ingress": {"enabled": False}})[f"{name}/templates/NOTES.txt"]
    assert "port-forward" in forwarded


def test_helm_test_pod_checks_readiness_on_a_pinned_image(chart: tuple[Repo, str]) -> None:
    repo, name = chart
    pod = _one(_objects(repo, name), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod["spec"]["containers"][0]
    assert re.fullmatch(r"curlimages/curl:\d+\.\d+\.\d+", container["image"])
    assert container["args"][-1].endswith("/v2/health/ready")


BAD_VALUES = {
    "unknown job": ({"config": {"job": "clustering"}}, "/config/job"),
    "missing inputSize": ({"config": {"inputSize": None}}, "inputSize"),
    "inputSize and inputs": ({"config": {"inputs": [{"name": "a", "datatype": "FP64"}]}}, "oneOf"),
    "refresh under a second": ({"config": {"model": {"refreshSeconds": 0.5}}}, "refreshSeconds"),
    "bad model URI": (
        {
            "config": {
                "model": {
                    "method": "MLFLOW",
                    "modelUri": "runs:/abc/model",
                    "projectName": None,
                    "bucketName": None,
                    "blobDir": None,
                }
            }
        },
        "modelUri",
    ),
    "bad input datatype": (
        {"config": {"inputSize": None, "inputs": [{"name": "a", "datatype": "STR"}]}},
        "/config/inputs/0/datatype",
    ),
    "zero inputSize": ({"config": {"inputSize": 0}}, "/config/inputSize"),
    "string inputSize": ({"config": {"inputSize": "4"}}, "/config/inputSize"),
    "bad method": ({"config": {"model": {"method": "S3"}}}, "/config/model/method"),
    "unknown config key": ({"config": {"inputsize": 4}}, "inputsize"),
    "unknown model key": ({"config": {"model": {"bucket": "b"}}}, "bucket"),
    "bad modelType": ({"config": {"modelType": "tensorflow"}}, "/config/modelType"),
    "bad sha256": ({"config": {"model": {"sha256": "abc"}}}, "sha256"),
    "unknown top-level key": ({"replicas": 3}, "replicas"),
    "bad service type": ({"service": {"type": "External"}}, "/service/type"),
    "zero workers": ({"workers": 0}, "/workers"),
}


@pytest.mark.parametrize("values,names", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_schema_rejects_bad_values_at_install_time(
    values: dict[str, Any], names: str, fresh_repo: Repo
) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(names)):
        _render(fresh_repo, FRESH, values)


def test_schema_accepts_a_local_model() -> None:
    model = {
        "method": "LOCAL",
        "path": "/models/m.joblib",
        "sha256": "a" * 64,
        # Helm merges maps: the GCS keys of values.yaml are removed with null.
        "projectName": None,
        "bucketName": None,
        "blobDir": None,
    }
    configmap = _one(_objects(REPO, MODELS[0], {"config": {"model": model}}), "ConfigMap")
    config = parse_config(yaml.safe_load(configmap["data"]["config.yaml"]))
    assert config.model.method == "LOCAL"


def test_sdk_engine_prints_manifests_in_install_order() -> None:
    with staged_chart(REPO, MODELS[0]) as staged:
        text = SdkEngine().render(staged, Release(MODELS[0], namespace="models"))
    kinds = re.findall(r"^kind: (\w+)$", text, re.MULTILINE)
    assert kinds == ["ConfigMap", "Service", "Deployment", "Ingress", "Pod"]
    assert text.count("# Source: ") == 5
    assert "NOTES" not in text


def _plain_helm(chart_dir: Path, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """`helm dependency build` then `helm template` on the folder as it is in git."""
    helm.dependency_build(chart_dir)
    assert [d["status"] for d in helm.dependency_list(chart_dir)] == ["ok"]
    with helm.Chart.load(chart_dir) as loaded:
        rendered = loaded.render(name=chart_dir.name, namespace="models", values=values or {})
    return sorted(
        (doc for name, text in rendered.items() if not name.endswith("NOTES.txt")
         for doc in yaml.safe_load_all(text) if doc),
        key=lambda o: (o["kind"], o["metadata"]["name"]),
    )  # fmt: skip


@pytest.mark.parametrize("name", MODELS)
def test_plain_helm_on_the_folder_renders_what_mda_renders(name: str, tmp_path: Path) -> None:
    repo = _copy_repo(tmp_path)  # dependency build writes charts/ and Chart.lock
    plain = _plain_helm(repo.charts_dir / name)
    with staged_chart(REPO, name) as staged:
        text = SdkEngine().render(staged, Release(name, namespace="models"))
    ours = sorted(
        (doc for doc in yaml.safe_load_all(text) if doc),
        key=lambda o: (o["kind"], o["metadata"]["name"]),
    )
    assert [o["kind"] for o in plain] == ["ConfigMap", "Deployment", "Ingress", "Pod", "Service"]
    assert plain == ours


def test_plain_helm_enforces_the_values_schema(tmp_path: Path) -> None:
    repo = _copy_repo(tmp_path)
    with pytest.raises(helm.HelmValuesError, match="/config/job"):
        _plain_helm(repo.charts_dir / MODELS[0], {"config": {"job": "clustering"}})


# --- the server on a rendered config ------------------------------------------------------


def _mda_command() -> list[str]:
    mda = Path(sys.executable).parent / "mda"
    return [str(mda)] if mda.exists() else [sys.executable, "-m", "model_deployment_app"]


def _train(job: str, input_size: int, path: Path) -> None:
    import numpy as np
    from sklearn.linear_model import LinearRegression, LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, input_size))
    if job == "classification":
        model: Any = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    else:
        model = LinearRegression().fit(X, X.sum(axis=1))
    joblib.dump(model, path)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Any]:
    """Start `mda serve` on a config; yield (port, process); stop it after the test."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(config: dict[str, Any]) -> tuple[int, subprocess.Popen[bytes]]:
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        port = free_port()
        env = {
            **_clean_env(),
            "MDA_CONFIG_PATH": str(path),
            "PORT": str(port),
            "MDA_GRPC_PORT": str(free_port()),
            "MDA_HOST": "127.0.0.1",
            "MDA_DOWNLOAD_DIR": str(tmp_path / "dl"),
        }
        with (tmp_path / "server.log").open("wb") as log:
            process = subprocess.Popen(
                [*_mda_command(), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        processes.append(process)
        return port, process

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MDA_") and k != "PORT"}


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_server_becomes_ready_on_the_rendered_config(
    name: str, served: Any, tmp_path: Path
) -> None:
    """The chart's config.yaml, with the bucket swapped for a local file, is served."""
    configmap = _one(_objects(REPO, name), "ConfigMap")
    config = yaml.safe_load(configmap["data"]["config.yaml"])
    artifact = tmp_path / "model.joblib"
    _train(config["job"], config["inputSize"], artifact)
    config["model"] = {"method": "LOCAL", "path": str(artifact)}
    config["modelType"] = "joblib"
    port, process = served(config)

    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    status = None
    while time.monotonic() < deadline:
        assert process.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
        try:
            status = httpx.get(f"{url}/v2/health/ready", timeout=2).status_code
        except httpx.TransportError:
            status = None
        if status == 200:
            break
        time.sleep(0.2)
    assert status == 200, (tmp_path / "server.log").read_text()[-2000:]
    row = [0.0] * config["inputSize"]
    response = httpx.post(f"{url}/predict", json={"instances": [row]}, timeout=10)
    assert response.status_code == 200, response.text


_DUMMY_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
  - name: nowhere
    cluster: {server: "https://127.0.0.1:1"}
contexts:
  - name: nowhere
    context: {cluster: nowhere, user: nobody}
current-context: nowhere
users:
  - name: nobody
    user: {token: not-a-token}
"""


def _gitops_yaml_documents() -> list[dict[str, Any]]:
    text = (ROOT / "docs" / "deploy" / "gitops.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
    return [doc for block in blocks for doc in yaml.safe_load_all(block) if isinstance(doc, dict)]


def test_the_docs_argo_cd_and_flux_examples_install_the_chart(tmp_path: Path) -> None:
    """Render what each GitOps example would: the chart at its path, with its values."""
    documents = _gitops_yaml_documents()
    [argo] = [d for d in documents if d.get("kind") == "Application"]
    [flux] = [d for d in documents if d.get("kind") == "HelmRelease"]
    [git] = [d for d in documents if d.get("kind") == "GitRepository"]
    assert flux["spec"]["chart"]["spec"]["sourceRef"]["name"] == git["metadata"]["name"]
    repo = _copy_repo(tmp_path)
    for path, values, namespace in (
        (argo["spec"]["source"]["path"], argo["spec"]["source"]["helm"]["valuesObject"],
         argo["spec"]["destination"]["namespace"]),
        (flux["spec"]["chart"]["spec"]["chart"], flux["spec"]["values"],
         flux["metadata"]["namespace"]),
    ):  # fmt: skip
        chart = repo.root / path
        assert chart.parent == repo.charts_dir and chart.name in MODELS, path
        objects = _plain_helm(chart, values)
        deployment = _one(objects, "Deployment")
        assert deployment["spec"]["replicas"] == values["replicaCount"] == 2
        assert namespace == "ml"
        for obj in objects:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_every_docs_page_a_chart_points_at_exists(fresh_repo: Repo) -> None:
    files = [
        *REPO.starter_dir.rglob("values*"),
        *fresh_repo.charts_dir.rglob("values*"),
        *REPO.charts_dir.rglob("values*"),
    ]
    pointers = {m for f in files for m in re.findall(r"docs: ([\w/.-]+\.md)", f.read_text())}
    assert pointers, "no docs pointers found"
    assert all((ROOT / "docs" / page).is_file() for page in pointers), pointers
