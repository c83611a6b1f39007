"""`make image-test`: build the base image with podman and run the rendered chart's pod in it;
with `--family xgboost`, the image variant that carries XGBoost (`FAMILIES=xgboost`), serving an
XGBoost model in its own format.

No registry is reachable here, so the base image `docker.io/library/python:3.11-slim` is a
stand-in: a minimal Debian bookworm (its python3 is 3.11) made by mmdebstrap from the
machine's own apt mirror and `podman import`ed under that name. Then, unchanged:
`podman build -f docker/Dockerfile`. Then the chart: `mda render` of a model chart with a LOCAL
model, and its Deployment's container run as the pod spec says (image, env, UID, read-only
root, dropped capabilities, no privilege escalation, the ConfigMap at /etc/config, the /tmp
emptyDir, the memory limit), the model mounted as a volume would be. Readiness on the chart's
own probe path, then /predict, V2 over HTTP (JSON and binary) and gRPC, each answer compared
with the model's own; then a stop, which must drain cleanly. Finally the image's size.

Exit status 0 only when all of that happened; anything that cannot run says so in one line.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import yaml
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parent.parent
BASE = "docker.io/library/python:3.11-slim"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
CACHE = ROOT / ".image-cache"
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
STAND_IN_PACKAGES = "python3,python3-pip,python3-venv,python-is-python3,ca-certificates,passwd"
# The published python:3.11-slim (bookworm, linux/amd64), uncompressed, as `docker images`
# shows it: what the stand-in's own size is replaced by in the estimate.
PUBLISHED_SLIM_MB = 131


class Failed(Exception):
    """One line saying what could not be done."""


def run(*command: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if check and done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise Failed(f"{' '.join(command[:3])} failed: {' | '.join(detail)}")
    return done


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def podman_can_run_containers() -> None:
    if shutil.which("podman") is None:
        raise Failed("podman is not installed (Debian: apt-get install podman)")
    probe = run("podman", "info", "--format", "{{.Host.OCIRuntime.Name}}", check=False)
    if probe.returncode != 0:
        raise Failed(f"podman cannot run containers here: {probe.stderr.strip()[:300]}")


def stand_in_base() -> None:
    """`python:3.11-slim` from mmdebstrap, unless an image of that name is already there."""
    if run("podman", "image", "exists", BASE, check=False).returncode == 0:
        return
    if shutil.which("mmdebstrap") is None:
        raise Failed("mmdebstrap is not installed (Debian: apt-get install mmdebstrap)")
    CACHE.mkdir(exist_ok=True)
    rootfs = CACHE / "bookworm-python3.tar"
    if not rootfs.exists():
        print("image-test: building the stand-in base image with mmdebstrap", flush=True)
        run(
            "mmdebstrap", "--variant=apt", f"--include={STAND_IN_PACKAGES}",
            "--customize-hook=rm -f \"$1\"/usr/lib/python3*/EXTERNALLY-MANAGED",
            "bookworm", str(rootfs),
            "deb http://deb.debian.org/debian bookworm main",
            "deb http://deb.debian.org/debian bookworm-updates main",
            "deb http://deb.debian.org/debian-security bookworm-security main",
        )  # fmt: skip
    run("podman", "import", "--change", 'CMD ["python3"]', str(rootfs), BASE)


def build(tag: str, family: str | None) -> None:
    families = ["--build-arg", f"FAMILIES={family}"] if family else []
    print(
        f"image-test: podman build -f docker/Dockerfile {' '.join(families)} -t {tag}", flush=True
    )
    # --no-cache: podman 4.3 cannot bind-mount a cached stage into a step that must run again
    # ("couldn't find .../wheels/app on host"); a fresh build always works.
    run(
        "podman", "build", "--no-cache", "-f", "docker/Dockerfile", *families, "-t", tag,
        "--network", "host",
        "-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro", ".", cwd=ROOT,
    )  # fmt: skip


def train(directory: Path, family: str | None) -> tuple[Any, Path]:
    X, y = load_iris(return_X_y=True)
    if family == "xgboost":
        import xgboost

        model = xgboost.XGBClassifier(n_estimators=20, max_depth=3).fit(X, y)
        artifact = directory / "model.json"
        model.save_model(str(artifact))
    else:
        names = np.asarray(["setosa", "versicolor", "virginica"])[y]
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, names)
        artifact = directory / "model.joblib"
        joblib.dump(model, artifact)
    artifact.chmod(0o644)
    return model, artifact


def rendered_pod(
    chart: str, tag: str, directory: Path, artifact: Path, model_type: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The chart's ConfigMap and Deployment, rendered by `mda render` with a LOCAL model."""
    repository, _, version = tag.rpartition(":")
    values = {
        "image": {"repository": repository, "tag": version},
        "config": {"modelType": model_type,
                   "model": {"method": "LOCAL", "path": f"/models/{artifact.name}",
                             "projectName": None, "bucketName": None, "blobDir": None}},
    }  # fmt: skip
    (directory / "values.yaml").write_text(yaml.safe_dump(values))
    mda = str(Path(sys.executable).with_name("mda"))
    text = run(mda, "render", chart, "-f", str(directory / "values.yaml"), cwd=ROOT).stdout
    objects = {o["kind"]: o for o in yaml.safe_load_all(text) if o}
    return objects["ConfigMap"], objects["Deployment"]


def podman_run_args(
    configmap: dict[str, Any], deployment: dict[str, Any], artifact: Path, directory: Path,
    ports: dict[str, int],
) -> list[str]:  # fmt: skip
    """The Deployment's container, as `podman run` arguments."""
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    args = ["--name", f"mda-image-test-{os.getpid()}", "--detach"]
    args += [
        "--user",
        f"{security['runAsUser']}:{security.get('runAsGroup', security['runAsUser'])}",
    ]
    if security.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    for capability in security.get("capabilities", {}).get("drop", []):
        args += ["--cap-drop", capability]
    if security.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    if memory := container.get("resources", {}).get("limits", {}).get("memory"):
        args += ["--memory", memory.replace("Mi", "m").replace("Gi", "g")]
    for variable in container.get("env", []):
        if "value" in variable:
            args += ["--env", f"{variable['name']}={variable['value']}"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            config_dir = directory / "configmap"
            config_dir.mkdir()
            for key, value in configmap["data"].items():
                (config_dir / key).write_text(value)
                (config_dir / key).chmod(0o644)
            config_dir.chmod(0o755)
            args += ["--volume", f"{config_dir}:{mount['mountPath']}:ro"]
        elif "emptyDir" in volume:
            args += ["--tmpfs", f"{mount['mountPath']}:rw,mode=1777"]
    args += ["--volume", f"{artifact}:/models/{artifact.name}:ro"]
    for port in container["ports"]:
        args += ["--publish", f"127.0.0.1:{ports[port['name']]}:{port['containerPort']}"]
    return [*args, container["image"]]


def get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as reply:
        return reply.status, reply.read(), reply.headers


def wait_ready(url: str, seconds: float, container: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if get(url, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    logs = run("podman", "logs", container, check=False)
    raise Failed(f"not ready on {url} within {seconds:g}s: {(logs.stdout + logs.stderr)[-500:]}")


def check_answers(
    model: Any, http: str, grpc_port: int, configmap: dict[str, Any], atol: float
) -> None:
    X = load_iris().data[::17]
    expected = model.predict_proba(X).astype(np.float64)
    status, body, _ = post(f"{http}/predict", json.dumps({"instances": X.tolist()}).encode())
    reply = json.loads(body)
    assert status == 200 and reply["classes"] == model.classes_.tolist(), reply
    np.testing.assert_allclose(reply["predictions"], expected, atol=atol)
    model_name = yaml.safe_load(configmap["data"]["config.yaml"])["name"]
    tensor = {"name": "input-0", "shape": list(X.shape), "datatype": "FP64",
              "data": X.ravel().tolist()}  # fmt: skip
    status, body, _ = post(f"{http}/v2/models/{model_name}/infer",
                           json.dumps({"inputs": [tensor]}).encode())  # fmt: skip
    output = json.loads(body)["outputs"][0]
    np.testing.assert_allclose(np.reshape(output["data"], output["shape"]), expected, atol=atol)
    header = json.dumps({"inputs": [{**{k: v for k, v in tensor.items() if k != "data"},
                                     "parameters": {"binary_data_size": X.size * 8}}],
                         "parameters": {"binary_data_output": True}}).encode()  # fmt: skip
    status, body, headers = post(
        f"{http}/v2/models/{model_name}/infer", header + X.astype("<f8").tobytes(),
        {"Inference-Header-Content-Length": str(len(header))},
    )  # fmt: skip
    split = int(headers["Inference-Header-Content-Length"])
    binary = np.frombuffer(body[split:], "<f8").reshape(expected.shape)
    np.testing.assert_allclose(binary, expected, atol=atol)
    import grpc

    from model_deployment_app.grpc_v2 import grpc_predict_v2_pb2 as pb
    from model_deployment_app.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc

    request = pb.ModelInferRequest(model_name=model_name)
    request.inputs.add(name="input-0", datatype="FP64", shape=list(X.shape))
    request.raw_input_contents.append(X.astype("<f8").tobytes())
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        answer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    values = np.frombuffer(answer.raw_output_contents[0], "<f8").reshape(expected.shape)
    np.testing.assert_allclose(values, expected, atol=atol)


def image_size_mb(tag: str) -> tuple[float, float]:
    sizes = [
        int(run("podman", "image", "inspect", "--format", "{{.Size}}", image).stdout)
        for image in (tag, BASE)
    ]
    return sizes[0] / 1e6, sizes[1] / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chart", default="iris-classifier", help="the model chart to run")
    parser.add_argument(
        "--family",
        choices=["xgboost"],
        help="build this family's image variant and serve its model",
    )
    args = parser.parse_args()
    version = next(
        line.split('"')[1] for line in (ROOT / "pyproject.toml").read_text().splitlines()
        if line.startswith("version = ")
    )  # fmt: skip
    tag = f"localhost/model-deployment-app:{version}" + (f"-{args.family}" if args.family else "")
    with tempfile.TemporaryDirectory(prefix="mda-image-test-") as tmp:
        directory = Path(tmp)
        directory.chmod(0o755)
        conf = directory / "containers.conf"
        conf.write_text(CONTAINERS_CONF)
        os.environ.setdefault("CONTAINERS_CONF", str(conf))
        container = None
        try:
            podman_can_run_containers()
            stand_in_base()
            build(tag, args.family)
            model, artifact = train(directory, args.family)
            model_type = args.family or "joblib"
            configmap, deployment = rendered_pod(args.chart, tag, directory, artifact, model_type)
            ports = {"http": free_port(), "grpc": free_port()}
            podman_args = podman_run_args(configmap, deployment, artifact, directory, ports)
            container = podman_args[1]
            run("podman", "run", *podman_args)
            http = f"http://127.0.0.1:{ports['http']}"
            probe = deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
            wait_ready(f"{http}{probe['httpGet']['path']}", 120, container)
            print(f"image-test: the pod is ready on {probe['httpGet']['path']}", flush=True)
            # XGBoost computes in float32: its answers are float32 values, widened.
            check_answers(model, http, ports["grpc"], configmap, 1e-6 if args.family else 1e-9)
            print("image-test: /predict, V2 JSON, V2 binary and gRPC answer as the model does")
            started = time.monotonic()
            run("podman", "stop", "--time", "30", container)
            code = run("podman", "inspect", "--format", "{{.State.ExitCode}}", container).stdout
            print(f"image-test: stopped in {time.monotonic() - started:.1f}s, exit {code.strip()}")
            if code.strip() not in ("0", "143"):
                raise Failed(f"the server exited {code.strip()} on SIGTERM")
            image, base = image_size_mb(tag)
            print(
                f"image-test: image {tag} {image:.0f} MB on the {base:.0f} MB stand-in base: "
                f"{image - base:.0f} MB of our own layers; on the published python:3.11-slim "
                f"({PUBLISHED_SLIM_MB} MB) about {image - base + PUBLISHED_SLIM_MB:.0f} MB"
            )
        except (Failed, AssertionError) as error:
            print(f"image-test: error: {str(error).strip().splitlines()[0][:400]}", file=sys.stderr)
            return 1
        finally:
            if container:
                run("podman", "rm", "--force", container, check=False)
    print("image-test: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
