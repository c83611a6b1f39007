"""New model versions without a redeploy, through `mda serve` as a real process: a changed
file or GCS object is loaded and swapped in, a bad one is refused while the old keeps serving,
no request fails during a swap and each answer is the one of the version that gave it."""

import asyncio
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
import yaml
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow

Start = Callable[..., ServerProcess]


def iris_model(C: float) -> Pipeline:
    """Iris classifiers that differ in their answers: one per "version"."""
    X, y = load_iris(return_X_y=True)
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=500)).fit(X, y)


def replace(path: Path, estimator: Any) -> str:
    """Publish a new artifact the way a deploy job would: write aside, then rename. Returns
    the version the server will advertise for it (its sha256, shortened)."""
    staging = path.with_suffix(".tmp")
    joblib.dump(estimator, staging)
    digest = hashlib.sha256(staging.read_bytes()).hexdigest()[:12]
    os.replace(staging, path)
    return digest


def config_for(path: Path, tmp_path: Path, **model: Any) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "name": "iris", "modelType": "joblib", "job": "classification", "inputSize": 4,
        "model": {"method": "LOCAL", "path": str(path), **model},
    }))  # fmt: skip
    return config


def version(server: ServerProcess) -> str:
    return str(httpx.get(f"{server.url}/v2/models/iris").json()["versions"][0])


def wait_for_version_change(server: ServerProcess, old: str, seconds: float = 20) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (new := version(server)) != old:
            return new
        time.sleep(0.2)
    raise AssertionError(f"still serving {old} after {seconds}s")


def metric(server: ServerProcess, line_start: str) -> float:
    lines = [line for line in httpx.get(f"{server.url}/metrics").text.splitlines()
             if line.startswith(line_start)]  # fmt: skip
    return float(lines[0].split()[-1]) if lines else 0.0


X = load_iris().data[::10]


def test_a_changed_file_is_swapped_in_and_a_bad_one_refused(
    start_server: Start, tmp_path: Path
) -> None:
    artifact = tmp_path / "model.joblib"
    first, second = iris_model(1.0), iris_model(0.01)
    replace(artifact, first)
    server = start_server(config_for(artifact, tmp_path, refreshSeconds=1))
    old = version(server)
    replace(artifact, second)
    new = wait_for_version_change(server, old)
    reply = httpx.post(f"{server.url}/predict", json=X.tolist())
    assert reply.headers["model-version"] == new
    np.testing.assert_allclose(reply.json()["predictions"], second.predict_proba(X), atol=1e-9)
    assert metric(server, 'mda_model_reloads_total{model="iris"}') == 1
    assert metric(server, f'mda_model_info{{model="iris",track="stable",version="{new}"}}') == 1
    assert metric(server, f'mda_model_info{{model="iris",track="stable",version="{old}"}}') == 0

    wrong_width = LogisticRegression().fit(X[:, :3], load_iris().target[::10])
    replace(artifact, wrong_width)
    deadline = time.monotonic() + 20
    while metric(server, 'mda_model_reload_failures_total{model="iris"}') < 1:
        assert time.monotonic() < deadline, "the bad version was never checked"
        time.sleep(0.2)
    time.sleep(2.5)  # two more polls: the refused version is not tried (nor logged) again
    assert version(server) == new
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
    np.testing.assert_allclose(
        httpx.post(f"{server.url}/predict", json=X.tolist()).json()["predictions"],
        second.predict_proba(X), atol=1e-9,
    )  # fmt: skip
    assert metric(server, 'mda_model_reload_failures_total{model="iris"}') == 1
    server.process.terminate()
    server.process.wait(timeout=15)
    log = server.output()
    assert log.count("refused a new version of iris") == 1, log
    assert "inputSize is 4 but the model (LogisticRegression) expects 3 features" in log


async def load_through_swaps(url: str, seconds: float) -> list[httpx.Response]:
    replies: list[httpx.Response] = []
    deadline = time.monotonic() + seconds

    async def client_loop(client: httpx.AsyncClient, index: int) -> None:
        rows = X[index % len(X)][None].tolist()
        while time.monotonic() < deadline:
            replies.append(await client.post("/predict", json=rows))

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        await asyncio.gather(*(client_loop(client, i) for i in range(8)))
    return replies


@pytest.mark.parametrize("workers", ["1", "2"])
def test_no_request_fails_during_swaps_and_each_answer_is_its_versions(
    workers: str, start_server: Start, tmp_path: Path
) -> None:
    artifact = tmp_path / "model.joblib"
    versions = [iris_model(c) for c in (1.0, 0.05, 20.0)]
    by_version = {replace(artifact, versions[0]): versions[0]}
    server = start_server(config_for(artifact, tmp_path, refreshSeconds=1), MDA_WORKERS=workers)

    async def drive() -> list[httpx.Response]:
        load = asyncio.create_task(load_through_swaps(server.url, 7.0))
        for estimator in versions[1:]:
            await asyncio.sleep(2.0)
            by_version[replace(artifact, estimator)] = estimator
        return await load

    replies = asyncio.run(drive())
    assert replies and {r.status_code for r in replies} == {200}
    assert len({r.headers["model-version"] for r in replies}) >= 2, "the load crossed a swap"
    for reply in replies:
        estimator = by_version[reply.headers["model-version"]]
        sent = np.asarray(json.loads(reply.request.content))
        np.testing.assert_allclose(
            reply.json()["predictions"], estimator.predict_proba(sent), atol=1e-9
        )


def test_the_reload_call_loads_now_and_refuses_with_409(
    start_server: Start, tmp_path: Path
) -> None:
    artifact = tmp_path / "model.joblib"
    replace(artifact, iris_model(1.0))
    admin = tmp_path / "admin-tokens"
    admin.write_text("admin-secret\n")
    server = start_server(  # no refreshSeconds: no polling
        config_for(artifact, tmp_path), MDA_ADMIN_TOKENS_FILE=str(admin)
    )
    old = version(server)
    load = f"{server.url}/v2/repository/models/iris/load"
    auth = {"Authorization": "Bearer admin-secret"}
    assert httpx.post(load, headers=auth).json() == {
        "name": "iris",
        "version": old,
        "loaded": False,
    }
    replace(artifact, iris_model(0.01))
    reply = httpx.post(load, headers=auth).json()
    assert reply["loaded"] is True and reply["version"] != old
    assert version(server) == reply["version"]
    artifact.write_bytes(b"not a model")
    refused = httpx.post(load, headers=auth)
    assert refused.status_code == 409
    assert refused.json()["error"].startswith("the new version was refused: model.joblib is not")
    assert version(server) == reply["version"]
    other = f"{server.url}/v2/repository/models/other/load"
    assert httpx.post(other, headers=auth).status_code == 404


def test_a_new_gcs_generation_is_swapped_in(
    start_server: Start, gcs_bucket: Any, tmp_path: Path
) -> None:
    first, second = iris_model(1.0), iris_model(0.01)
    joblib.dump(first, tmp_path / "a.joblib")
    joblib.dump(second, tmp_path / "b.joblib")
    blob = gcs_bucket.blob("iris/model.joblib")
    blob.upload_from_filename(str(tmp_path / "a.joblib"))
    config = tmp_path / "gcs.yaml"
    config.write_text(yaml.safe_dump({
        "name": "iris", "modelType": "joblib", "job": "classification", "inputSize": 4,
        "model": {"method": "GCS", "projectName": "test-project", "bucketName": gcs_bucket.name,
                  "blobDir": "iris/model.joblib", "refreshSeconds": 1},
    }))  # fmt: skip
    server = start_server(config, MDA_DOWNLOAD_DIR=str(tmp_path / "downloads"))
    old = version(server)
    blob.upload_from_filename(str(tmp_path / "b.joblib"))  # a new generation of the object
    wait_for_version_change(server, old)
    np.testing.assert_allclose(
        httpx.post(f"{server.url}/predict", json=X.tolist()).json()["predictions"],
        second.predict_proba(X), atol=1e-9,
    )  # fmt: skip
    # Each version's download is removed once loaded: following versions fills no disk.
    assert list((tmp_path / "downloads").iterdir()) == []
