"""`mda new-model | render | deploy | undeploy`, the Make targets, and bump-version.

The CLI runs as a subprocess (`python -m model_deployment_app`) against a copy of the
repository, so what a user sees, one `mda: error:` line and exit 1, is what is checked.
No cluster: deploy must say so in one line.
"""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from model_deployment_app.deploy.versioning import bump

ROOT = Path(__file__).resolve().parents[1]
MODELS = sorted(p.parent.name for p in (ROOT / "k8s_dev").glob("*/Chart.yaml"))


def _copy_repo(target: Path) -> Path:
    shutil.copytree(ROOT / "charts_template", target / "charts_template")
    shutil.copytree(ROOT / "k8s_dev", target / "k8s_dev")
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MDA_", "KUBE"))}
    return {**env, **extra}


def mda(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_deployment_app", *args],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mda: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return _copy_repo(tmp_path / "repo")


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    """A kubeconfig whose cluster refuses connections at once."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
        "current-context: c\nusers: [{name: u, user: {token: t}}]\n"
    )
    return path


# --- new-model -----------------------------------------------------------------------------


def test_new_model_creates_a_chart_that_renders(repo: Path) -> None:
    created = mda(
        "new-model",
        "churn-model",
        "--job",
        "classification",
        "--input-size",
        "7",
        "--bucket",
        "models-bucket",
        "--blob",
        "churn/v1/model.joblib",
        "--project",
        "acme",
        cwd=repo,
    )
    assert created.returncode == 0, created.stderr
    assert "k8s_dev/churn-model" in created.stdout
    assert _tree(repo / "k8s_dev/churn-model") == [
        "Chart.yaml", "templates", "templates/NOTES.txt", "templates/model.yaml",
        "values.schema.json", "values.yaml",
    ]  # fmt: skip
    values = yaml.safe_load((repo / "k8s_dev/churn-model/values.yaml").read_text())
    assert values["config"] == {
        "name": "churn-model",
        "modelType": "joblib",
        "job": "classification",
        "model": {
            "method": "GCS",
            "projectName": "acme",
            "bucketName": "models-bucket",
            "blobDir": "churn/v1/model.joblib",
        },
        "inputSize": 7,
    }
    assert values["ingress"]["path"] == "/churn-model"

    rendered = mda("render", "churn-model", "--namespace", "ml", cwd=repo)
    assert rendered.returncode == 0, rendered.stderr
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    assert {d["kind"] for d in docs} >= {"ConfigMap", "Deployment", "Service", "Ingress"}
    assert all(d["metadata"]["namespace"] == "ml" for d in docs)


def test_new_model_works_from_another_directory_with_root(repo: Path, tmp_path: Path) -> None:
    result = mda("new-model", "other-model", "--root", str(repo), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (repo / "k8s_dev/other-model/Chart.yaml").is_file()
    by_env = mda("render", "other-model", cwd=tmp_path, MDA_REPO_ROOT=str(repo))
    assert by_env.returncode == 0, by_env.stderr


@pytest.mark.parametrize(
    "name", ["Iris", "1iris", "iris_classifier", "-iris", "iris-", "a" * 54, "true", "iris.v2"]
)
def test_new_model_refuses_a_bad_name_and_writes_nothing(repo: Path, name: str) -> None:
    before = _tree(repo)
    assert_one_line_error(mda("new-model", "--", name, cwd=repo), repr(name))
    assert _tree(repo) == before


def test_new_model_refuses_a_taken_name_and_writes_nothing(repo: Path) -> None:
    before = _tree(repo)
    values = (repo / "k8s_dev" / MODELS[0] / "values.yaml").read_bytes()
    assert_one_line_error(mda("new-model", MODELS[0], cwd=repo), "already exists")
    assert _tree(repo) == before
    assert (repo / "k8s_dev" / MODELS[0] / "values.yaml").read_bytes() == values


def test_new_model_refuses_an_ingress_path_another_chart_uses(repo: Path) -> None:
    values = repo / "k8s_dev" / MODELS[0] / "values.yaml"
    values.write_text(values.read_text().replace(f"path: /{MODELS[0]}", "path: /wanted"))
    assert_one_line_error(mda("new-model", "wanted", cwd=repo), "/wanted", MODELS[0])
    assert not (repo / "k8s_dev/wanted").exists()


# --- pools ---------------------------------------------------------------------------------


def test_new_pool_then_models_into_it_render_one_path_each(repo: Path) -> None:
    created = mda("new-pool", "stores", "--memory-budget", "300Mi", cwd=repo)
    assert created.returncode == 0, created.stderr
    assert "mda new-model NAME --into stores" in created.stdout
    values_file = repo / "k8s_dev/stores/values.yaml"
    assert yaml.safe_load(values_file.read_text())["config"] == {"models": []}
    added = mda("new-model", "paris", "--input-size", "3", "--into", "stores", cwd=repo)
    assert added.returncode == 0, added.stderr
    assert "+    - name: paris" in added.stdout and "at /paris" in added.stdout
    added = mda("new-model", "lyon", "--inputs", "age:INT64,city:BYTES", "--model-type",
                "xgboost", "--into", "stores", cwd=repo)  # fmt: skip
    assert added.returncode == 0, added.stderr
    text = values_file.read_text()
    values = yaml.safe_load(text)
    assert [m["name"] for m in values["config"]["models"]] == ["paris", "lyon"]
    assert values["config"]["models"][0]["inputSize"] == 3
    assert values["image"]["variant"] == "xgboost"  # the one image serves every model
    # the comments that followed the list still introduce the key they belong to
    assert text.index("name: lyon") < text.index("# The memory the pool's loaded models")
    assert not (repo / "k8s_dev/paris").exists()

    overrides = repo / "routes.yaml"
    overrides.write_text("ingress: {enabled: true}\nhttpRoute: {enabled: true}\n")
    rendered = mda("render", "stores", "-f", str(overrides), cwd=repo)
    assert rendered.returncode == 0, rendered.stderr
    docs = {d["kind"]: d for d in yaml.safe_load_all(rendered.stdout) if d}
    ingress_paths = [p["path"] for p in docs["Ingress"]["spec"]["rules"][0]["http"]["paths"]]
    assert ingress_paths == ["/paris", "/lyon"]
    [rule] = docs["HTTPRoute"]["spec"]["rules"]
    assert [m["path"]["value"] for m in rule["matches"]] == ["/paris", "/lyon"]
    env = {e["name"]: e.get("value") for e in
           docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]}  # fmt: skip
    assert env["MDA_MEMORY_BUDGET"] == "300Mi" and "MDA_ROOT_PATH" not in env
    served = yaml.safe_load(docs["ConfigMap"]["data"]["config.yaml"])
    assert [m["name"] for m in served["models"]] == ["paris", "lyon"]


def test_a_pool_of_a_hundred_models_routes_each_within_the_gateway_apis_limits(
    repo: Path,
) -> None:
    assert mda("new-pool", "many", cwd=repo).returncode == 0
    values_file = repo / "k8s_dev/many/values.yaml"
    values = yaml.safe_load(values_file.read_text())
    values["config"]["models"] = [
        {"name": f"store-{i}", "modelType": "joblib", "job": "regression", "inputSize": 2,
         "model": {"method": "LOCAL", "path": f"/models/{i}.joblib"}} for i in range(100)
    ]  # fmt: skip
    values["httpRoute"]["enabled"] = True
    values_file.write_text(yaml.safe_dump(values))
    rendered = mda("render", "many", cwd=repo)
    assert rendered.returncode == 0, rendered.stderr
    [route] = [d for d in yaml.safe_load_all(rendered.stdout) if d and d["kind"] == "HTTPRoute"]
    rules = route["spec"]["rules"]
    assert [len(rule["matches"]) for rule in rules] == [64, 36]  # at most 64 matches a rule
    paths = [m["path"]["value"] for rule in rules for m in rule["matches"]]
    assert paths == [f"/store-{i}" for i in range(100)]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["new-model", "x", "--into", MODELS[0]], ("is not a pool", "mda new-pool")),
        (["new-model", "x", "--into", "nope"], ("no chart for model 'nope'",)),
        (["new-model", "paris", "--into", "stores"], ("path /paris is already used", "'stores'")),
        (["new-model", MODELS[0], "--into", "stores"], (f"/{MODELS[0]}", "already used")),
        (["new-model", "boost", "--model-type", "catboost", "--into", "stores"],
         ("needs the image variant 'catboost'", "runs 'xgboost'")),
        (["new-model", "wide", "--input-size", "0", "--into", "stores"], ("--input-size",)),
        (["new-pool", "stores"], ("already exists",)),
        (["new-pool", "other", "--memory-budget", "lots"], ("--memory-budget", "'lots'")),
        (["new-model", "paris"], ("path /paris is already used by pool 'stores'",)),
    ],
)  # fmt: skip
def test_pool_mistakes_are_one_line_and_change_nothing(
    repo: Path, args: list[str], needles: tuple[str, ...]
) -> None:
    assert mda("new-pool", "stores", cwd=repo).returncode == 0
    for name, kind in (("paris", "joblib"), ("trees", "xgboost")):
        assert (
            mda("new-model", name, "--model-type", kind, "--into", "stores", cwd=repo).returncode
            == 0
        )
    before = {path: path.read_bytes() for path in (repo / "k8s_dev").rglob("*") if path.is_file()}
    result = mda(*args, cwd=repo)
    if result.returncode == 2:  # argparse's own refusal of a bad value
        assert all(n in result.stderr for n in needles[:1]), result.stderr
    else:
        assert_one_line_error(result, *needles)
    after = {path: path.read_bytes() for path in (repo / "k8s_dev").rglob("*") if path.is_file()}
    assert after == before


def test_new_model_with_named_inputs(repo: Path) -> None:
    created = mda("new-model", "loans", "--inputs", "age:INT64, city:bytes", cwd=repo)
    assert created.returncode == 0, created.stderr
    assert "inputs age:INT64, city:BYTES" in created.stdout
    config = yaml.safe_load((repo / "k8s_dev/loans/values.yaml").read_text())["config"]
    assert config["inputs"] == [
        {"name": "age", "datatype": "INT64"},
        {"name": "city", "datatype": "BYTES"},
    ]
    assert "inputSize" not in config


def test_new_model_refuses_options_the_server_would_refuse(repo: Path) -> None:
    before = _tree(repo)
    result = mda("new-model", "m", "--input-size", "0", cwd=repo)
    assert result.returncode == 2 and "--input-size" in result.stderr
    result = mda("new-model", "m", "--inputs", "age", cwd=repo)
    assert result.returncode == 2 and "'age' is not NAME:TYPE" in result.stderr
    assert_one_line_error(
        mda("new-model", "m", "--inputs", "a:TEXT", cwd=repo),
        "--inputs a: 'TEXT' is not a datatype",
    )
    assert_one_line_error(mda("new-model", "m", "--bucket", 'a"b', cwd=repo), "quotes")
    assert _tree(repo) == before


def test_commands_outside_a_checkout_say_where_to_run(tmp_path: Path) -> None:
    assert_one_line_error(mda("render", "iris", cwd=tmp_path), "--root")


# --- render, deploy, undeploy ---------------------------------------------------------------


@pytest.mark.parametrize("command", ["render", "deploy"])
def test_a_missing_chart_is_refused_in_one_line(repo: Path, command: str) -> None:
    assert_one_line_error(mda(command, "no-such-model", cwd=repo), "no chart", "new-model")


def test_render_names_a_schema_failure_in_one_line(repo: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("config:\n  job: clustering\n")
    result = mda("render", MODELS[0], "-f", str(bad), cwd=repo)
    assert_one_line_error(result, "/config/job", "classification")


def test_render_merges_values_files_in_order(repo: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("replicaCount: 2\nworkers: 2\n")
    second.write_text("replicaCount: 3\n")
    result = mda("render", MODELS[0], "-f", str(first), "-f", str(second), cwd=repo)
    deployment = next(d for d in yaml.safe_load_all(result.stdout) if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 3
    env = {
        e["name"]: e["value"]
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        if "value" in e
    }
    assert env["MDA_WORKERS"] == "2"


def test_deploy_without_a_reachable_cluster_is_one_line(repo: Path, kubeconfig: Path) -> None:
    result = mda("deploy", MODELS[0], cwd=repo, KUBECONFIG=str(kubeconfig))
    assert_one_line_error(result, "unreachable", "127.0.0.1:1")


def test_deploy_without_any_kubeconfig_is_one_line(repo: Path, tmp_path: Path) -> None:
    result = mda("deploy", MODELS[0], cwd=repo, HOME=str(tmp_path))
    assert_one_line_error(result, "KUBECONFIG")


def test_undeploy_without_a_reachable_cluster_is_one_line(repo: Path, kubeconfig: Path) -> None:
    result = mda("undeploy", MODELS[0], "-n", "ml", cwd=repo, KUBECONFIG=str(kubeconfig))
    assert_one_line_error(result, "unreachable")


def test_no_helm_engine_is_one_line(repo: Path, tmp_path: Path) -> None:
    result = mda("render", MODELS[0], cwd=repo, MDA_HELM="binary", PATH=str(tmp_path))
    assert_one_line_error(result, "no Helm engine", "[deploy]")


def _fake_helm(directory: Path, version: str) -> Path:
    """A `helm` that records its arguments, and the files of the chart it upgrades with, for
    the binary back end."""
    log = directory / "helm.args"
    script = directory / "helm"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {log}\n'
        f'if [ "$1" = upgrade ]; then (cd "$4" && find . -type f | sort) > {log}.chart; fi\n'
        f'case "$1" in version) echo {version};; *) echo "Release \\"$3\\" has been upgraded.";; '
        "esac\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return log


@pytest.mark.parametrize(
    "version,atomic", [("v3.16.2", "--atomic"), ("v4.0.0", "--rollback-on-failure")]
)
def test_binary_engine_runs_upgrade_install_with_wait_and_rollback(
    repo: Path, tmp_path: Path, kubeconfig: Path, version: str, atomic: str
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = _fake_helm(bindir, version)
    path = f"{bindir}{os.pathsep}{os.environ['PATH']}"
    result = mda(
        "deploy",
        MODELS[0],
        "-n",
        "ml",
        "--timeout",
        "120",
        cwd=repo,
        MDA_HELM="binary",
        PATH=path,
        KUBECONFIG=str(kubeconfig),
    )
    assert result.returncode == 0, result.stderr
    upgrade = log.read_text().splitlines()[-1].split()
    assert upgrade[:3] == ["upgrade", "--install", MODELS[0]]
    assert Path(upgrade[3]).name == MODELS[0]  # the staged chart, complete
    files = Path(f"{log}.chart").read_text().splitlines()
    assert {
        "./Chart.yaml",
        "./values.yaml",
        "./values.schema.json",
        "./templates/model.yaml",
        "./charts/mda-template/Chart.yaml",
    } <= set(files)
    assert {"--namespace=ml", "--wait", atomic, "--timeout=120s"} <= set(upgrade)

    result = mda(
        "undeploy",
        MODELS[0],
        "-n",
        "ml",
        cwd=repo,
        MDA_HELM="binary",
        PATH=path,
        KUBECONFIG=str(kubeconfig),
    )
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines()[-1].split()[:3] == [
        "uninstall",
        MODELS[0],
        "--namespace=ml",
    ]


@pytest.mark.parametrize("command", ["new-model", "render", "deploy", "undeploy", "serve"])
def test_every_command_has_help(command: str, tmp_path: Path) -> None:
    result = mda(command, "--help", cwd=tmp_path)
    assert result.returncode == 0 and "usage: mda" in result.stdout


def test_the_cli_needs_no_helm_to_serve(tmp_path: Path) -> None:
    """The serving image has no deploy extra: building the parser must not import Helm."""
    code = (
        "import sys; sys.modules['helm_python'] = None\n"
        "from model_deployment_app.cli import build_parser\n"
        "build_parser().parse_args(['serve'])\n"
        "assert 'kubernetes_validate' not in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        env=_env(PYTHONPATH=str(ROOT)),
    )
    assert result.returncode == 0, result.stderr


# --- bump-version ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "part,expected", [("patch", "1.2.4"), ("minor", "1.3.0"), ("major", "2.0.0")]
)
def test_bump(part: str, expected: str) -> None:
    assert bump("1.2.3", part) == expected


def test_bump_version_moves_pyproject_and_every_app_version_together(repo: Path) -> None:
    (repo / "README.md").write_text("untouched\n")
    charts = {m: yaml.safe_load((repo / "k8s_dev" / m / "Chart.yaml").read_text()) for m in MODELS}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "model_deployment_app.deploy.versioning",
            "minor",
            "--root",
            str(repo),
        ],
        capture_output=True,
        text=True,
        check=False,
        env=_env(),
    )
    assert result.returncode == 0, result.stderr
    old = charts[MODELS[0]]["appVersion"]
    major, minor, _ = (int(x) for x in old.split("."))
    new = f"{major}.{minor + 1}.0"
    assert f'\nversion = "{new}"\n' in (repo / "pyproject.toml").read_text()
    for model, before in charts.items():
        text = (repo / "k8s_dev" / model / "Chart.yaml").read_text()
        after = yaml.safe_load(text)
        assert after["appVersion"] == new
        assert after["version"] == bump(before["version"], "patch")
        assert after["dependencies"] == before["dependencies"]
        assert text.startswith("#")  # comments kept
    rendered = mda("render", MODELS[0], cwd=repo)
    assert f'model-deployment-app:{new}"' in rendered.stdout
    assert (repo / "README.md").read_text() == "untouched\n"


def test_bump_version_refuses_a_bad_part(repo: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "model_deployment_app.deploy.versioning",
            "huge",
            "--root",
            str(repo),
        ],
        capture_output=True,
        text=True,
        check=False,
        env=_env(),
    )
    assert result.returncode == 2 and "invalid choice" in result.stderr


# --- make --------------------------------------------------------------------------------------


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=_env(),
    )


@pytest.mark.parametrize(
    "target,variable",
    [
        ("new-model", "NAME"),
        ("k8s-render", "MODEL"),
        ("k8s-deploy", "MODEL"),
        ("k8s-undeploy", "MODEL"),
        ("bump-version", "PART"),
    ],
)
def test_make_target_without_its_variable_stops_in_one_line(target: str, variable: str) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = make(target)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0] and target in lines[0], result.stderr


def test_make_targets_run_the_cli() -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    commands = {
        "k8s-render": "mda render iris --namespace ml",
        "k8s-deploy": "mda deploy iris --namespace ml",
        "k8s-undeploy": "mda undeploy iris --namespace ml",
    }
    for target, command in commands.items():
        result = make("-n", target, "MODEL=iris", "NAMESPACE=ml")
        assert command in result.stdout, result
    result = make("-n", "new-model", "NAME=x", "JOB=regression", "INPUT_SIZE=3")
    assert "mda new-model x --job regression --input-size 3" in " ".join(result.stdout.split())
    version = yaml.safe_load((ROOT / "k8s_dev" / MODELS[0] / "Chart.yaml").read_text())[
        "appVersion"
    ]
    result = make("-n", "docker-base", "REGISTRY=registry.example/ml")
    assert f"-t registry.example/ml/model-deployment-app:{version} ." in result.stdout
    assert f"docker push registry.example/ml/model-deployment-app:{version}" in result.stdout
    result = make("-n", "docker-base", "REGISTRY=r", "FAMILIES=xgboost,lightgbm")
    assert "--build-arg FAMILIES=xgboost,lightgbm" in result.stdout
    assert f"-t r/model-deployment-app:{version}-xgboost-lightgbm ." in result.stdout
    result = make("-n", "docker-ci-test")
    assert "docker build -f docker/ci.Dockerfile" in result.stdout


def test_docker_base_needs_a_registry_and_an_engine_that_answers() -> None:
    result = make("docker-base")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-2].startswith("error: REGISTRY is not set")
    result = make("docker-base", "REGISTRY=r.example/ml", "CONTAINER_ENGINE=no-such-engine")
    assert result.returncode != 0
    assert "error: no-such-engine does not answer" in result.stderr


def test_lint_passes_the_charts_and_fails_a_broken_one(repo: Path) -> None:
    result = mda("lint", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split()) == sorted(["ok", "ok", *MODELS])
    values = repo / "k8s_dev" / MODELS[0] / "values.yaml"
    values.write_text(values.read_text().replace("job: ", "job: clustering # ", 1))
    result = mda("lint", cwd=repo)
    assert result.returncode == 1
    assert f"FAIL {MODELS[0]}" in result.stdout and "/config/job" in result.stdout
    assert result.stderr.strip() == "mda: error: 1 chart(s) failed helm lint"


def test_a_version_bump_does_not_reinstall_the_venv() -> None:
    pyproject = ROOT / "pyproject.toml"
    original = pyproject.read_text()
    try:
        pyproject.write_text(original.replace('\nversion = "', '\nversion = "9', 1))
        result = make("install")
        assert result.returncode == 0, result.stderr
        assert "pip install" not in result.stdout
    finally:
        pyproject.write_text(original)
