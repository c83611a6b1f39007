"""A new user's first hour: `make run` from a fresh clone, installs that coexist with the
peers' clients, and the rough edges a first try ran into, each pinned."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from model_deployment_app import _version
from tests.conftest import MDA, free_port

ROOT = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make") or "make"


def make(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MAKE, "--no-print-directory", *args], cwd=cwd, capture_output=True, text=True,
        env={**os.environ, **env}, timeout=600,
    )  # fmt: skip


def fresh_clone(target: Path) -> Path:
    """The files git tracks (and those it would, not yet committed), as a clone has them."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    for name in listed:
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


@pytest.mark.slow
def test_make_run_on_a_fresh_clone_serves_the_demo_without_torch(tmp_path: Path) -> None:
    clone = fresh_clone(tmp_path / "clone")
    port, grpc_port = free_port(), free_port()
    started = time.monotonic()
    process = subprocess.Popen(
        ["make", "run", f"PORT={port}", f"GRPC_PORT={grpc_port}"], cwd=clone, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        ready = None
        while time.monotonic() - started < 500 and process.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200:
                    ready = time.monotonic() - started
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        assert ready is not None, "make run did not serve"
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", json=[[5.1, 3.5, 1.4, 0.2]])
        assert answer.json()["classes"] == ["setosa", "versicolor", "virginica"]
    finally:
        os.killpg(process.pid, 15)
        output = process.communicate(timeout=30)[0]
    venv = clone / ".venv"
    site = next(venv.glob("lib/python3*/site-packages"))
    assert not (site / "torch").exists(), "make run installs no torch"
    assert not (site / "helm_python").exists() and not (site / "pytest").exists()
    assert f"REST and V2 on http://127.0.0.1:{port}" in output
    assert f"V2 gRPC on 127.0.0.1:{grpc_port}" in output
    print(f"make run: ready in {ready:.0f} s, .venv {size_mb(venv):.0f} MB")


@pytest.mark.slow
def test_one_pip_install_with_the_current_tritonclient_serves_it_grpc(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(ROOT), "tritonclient[grpc]>=2.73"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stderr[-3000:]
    python = str(venv / "bin" / "python")
    found = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('tritonclient'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert tuple(int(p) for p in found.split(".")[:2]) >= (2, 73), found
    script = """
import sys, joblib, numpy as np, tritonclient.grpc as g
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True)
joblib.dump(LogisticRegression(max_iter=300).fit(X, y), "m.joblib")
open("c.yaml", "w").write("modelType: joblib\\njob: classification\\ninputSize: 4\\n"
                          "name: iris\\nmodel: {method: LOCAL, path: m.joblib}\\n")
"""
    subprocess.run([python, "-c", script], cwd=tmp_path, check=True)
    port, grpc_port = free_port(), free_port()
    env = {**os.environ, "MDA_CONFIG_PATH": "c.yaml", "PORT": str(port),
           "MDA_GRPC_PORT": str(grpc_port), "MDA_HOST": "127.0.0.1"}  # fmt: skip
    server = subprocess.Popen([str(venv / "bin" / "mda"), "serve"], cwd=tmp_path, env=env)
    try:
        client = """
import sys, time, numpy as np, tritonclient.grpc as g
c = g.InferenceServerClient(sys.argv[1])
for _ in range(200):
    try:
        if c.is_server_ready(): break
    except Exception: pass
    time.sleep(0.2)
x = g.InferInput("x", [1, 4], "FP64"); x.set_data_from_numpy(np.array([[5.1, 3.5, 1.4, 0.2]]))
print(c.infer("iris", [x]).as_numpy("predict_proba").shape)
"""
        out = subprocess.run(
            [python, "-c", client, f"127.0.0.1:{grpc_port}"], capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert out.stdout.strip() == "(1, 3)", out.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_an_unusable_protobuf_stops_serve_in_one_line(tmp_path: Path) -> None:
    old = tmp_path / "old-protobuf"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(old),
         "protobuf==5.29.3"], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    run = subprocess.run(
        [*MDA, "serve"], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(old), "MDA_CONFIG_PATH": "/nowhere.yaml"},
    )  # fmt: skip
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1, run.stderr
    assert "protobuf 5.29.3" in run.stderr and "protobuf>=6.31.0,<8" in run.stderr


def test_serve_without_a_config_names_mda_config_path(tmp_path: Path) -> None:
    run = subprocess.run(
        [*MDA, "serve"], capture_output=True, text=True, timeout=60,
        env={**os.environ, "MDA_CONFIG_PATH": str(tmp_path / "missing.yaml")},
    )  # fmt: skip
    assert run.returncode == 1
    assert "MDA_CONFIG_PATH" in run.stderr and run.stderr.count("\n") == 1


def test_new_model_refuses_inputs_with_input_size_in_one_line(tmp_path: Path) -> None:
    run = subprocess.run(
        [*MDA, "new-model", "churn", "--inputs", "age:INT64", "--input-size", "4",
         "--root", str(tmp_path)], capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 1
    assert run.stderr == (
        "mda: error: give --inputs (named columns) or --input-size (a row width), not both\n"
    )


def test_a_bad_datatype_is_named_alone(tmp_path: Path) -> None:
    run = subprocess.run(
        [*MDA, "new-model", "churn", "--inputs", "age:INTEGER", "--root", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 1
    assert run.stderr.startswith("mda: error: --inputs age: 'INTEGER' is not a datatype")
    assert run.stderr.count("\n") == 1
    assert "Tuple should have" not in run.stderr


def test_make_new_model_passes_mlflow_and_refresh_and_echoes_a_clean_command() -> None:
    dry = make("-n", "new-model", "NAME=churn", "MLFLOW_URI=models:/churn@champion",
               "REFRESH_SECONDS=60")  # fmt: skip
    assert "--mlflow-uri 'models:/churn@champion' --refresh-seconds 60" in dry.stdout
    assert "echo \"mda new-model churn --mlflow-uri 'models:/churn@champion'" in dry.stdout


def test_make_help_prints_no_make_variables() -> None:
    help_text = make("help").stdout
    assert "$(" not in help_text
    assert "run" in help_text and "docs" in help_text and "k8s-promote" in help_text


def test_docker_base_with_a_missing_podman_does_not_suggest_podman(tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("bash", "sh", "sed", "head", "python3", "cmp", "mv", "rm", "mkdir", "test"):
        found = shutil.which(tool)
        if found:
            (bare / tool).symlink_to(found)
    run = make("docker-base", "REGISTRY=r.example/x", CONTAINER_ENGINE="podman",
               PATH=str(bare))  # fmt: skip
    assert run.returncode != 0
    assert "podman does not answer" in run.stderr
    assert "use CONTAINER_ENGINE=podman" not in run.stderr


def test_the_version_is_the_checkouts_own_not_the_last_installed(tmp_path: Path) -> None:
    """After `make bump-version` and `git checkout .`, the venv must not report the bump."""
    shutil.copytree(ROOT / "model_deployment_app", tmp_path / "model_deployment_app")
    text = (ROOT / "pyproject.toml").read_text().replace('\nversion = "', '\nversion = "7', 1)
    (tmp_path / "pyproject.toml").write_text(text)
    printed = subprocess.run(
        [sys.executable, "-c", "import model_deployment_app as m; print(m.__version__)"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert printed.startswith("7") and printed != _version()
