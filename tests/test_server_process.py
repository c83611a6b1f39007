"""`mda serve` as a real process over real HTTP: GCS, every format, workers, start-up refusals."""

import asyncio
import pickle
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
import yaml
from sklearn.datasets import load_iris
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow

Start = Callable[..., ServerProcess]


def gcs_config(bucket: str, blob: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "iris-classifier",
        "modelType": "joblib",
        "job": "classification",
        "model": {"method": "GCS", "projectName": "test-project", "bucketName": bucket,
                  "blobDir": blob, **extra},
        "inputSize": 4,
    }  # fmt: skip


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_serves_a_model_from_gcs_on_both_apis(
    start_server: Start, gcs_bucket: Any, tmp_path: Path, iris_pipeline: Pipeline, iris: tuple
) -> None:
    joblib.dump(iris_pipeline, tmp_path / "model.joblib")
    gcs_bucket.blob("iris/model.joblib").upload_from_filename(str(tmp_path / "model.joblib"))
    config = write_yaml(tmp_path / "config.yaml", gcs_config(gcs_bucket.name, "iris/model.joblib"))
    server = start_server(config, MDA_DOWNLOAD_DIR=str(tmp_path / "downloads"))
    X = iris[0][::7]
    rest = httpx.post(f"{server.url}/predict", json={"instances": X.tolist()}).json()
    np.testing.assert_allclose(rest["predictions"], iris_pipeline.predict_proba(X), atol=1e-9)
    assert rest["classes"] == iris_pipeline.classes_.tolist()
    v2 = httpx.post(
        f"{server.url}/v2/models/iris-classifier/infer",
        json={"inputs": [{"name": "x", "shape": list(X.shape), "datatype": "FP64",
                          "data": X.ravel().tolist()}], "outputs": [{"name": "predict"}]},
    ).json()  # fmt: skip
    assert v2["outputs"][0]["data"] == iris_pipeline.predict(X).tolist()


@pytest.mark.parametrize("model_type", ["pkl", "skops"])
def test_serves_pkl_and_skops_artifacts(
    model_type: str, start_server: Start, tmp_path: Path, gb_regressor: Any, diabetes: tuple
) -> None:
    artifact = tmp_path / f"model.{model_type}"
    if model_type == "pkl":
        artifact.write_bytes(pickle.dumps(gb_regressor))
    else:
        import skops.io as sio

        sio.dump(gb_regressor, artifact)
    config = write_yaml(tmp_path / "c.yaml", {
        "modelType": model_type, "job": "regression", "inputSize": 10,
        "model": {"method": "LOCAL", "path": str(artifact)}})  # fmt: skip
    server = start_server(config)
    X = diabetes[0][:20]
    reply = httpx.post(f"{server.url}/predict", json={"instances": X.tolist()}).json()
    np.testing.assert_allclose(reply["predictions"], gb_regressor.predict(X), atol=1e-9)
    tensor = {"name": "x", "shape": list(X.shape), "datatype": "FP64", "data": X.tolist()}
    v2 = httpx.post(f"{server.url}/v2/models/model/infer", json={"inputs": [tensor]}).json()
    np.testing.assert_allclose(v2["outputs"][0]["data"], gb_regressor.predict(X), atol=1e-9)


async def concurrent_predictions(url: str, rows: np.ndarray) -> list[Any]:
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        replies = await asyncio.gather(
            *(client.post("/predict", json=[row.tolist()]) for row in rows)
        )
    assert {r.status_code for r in replies} == {200}
    return [r.json()["predictions"][0] for r in replies]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_200_concurrent_requests_over_http_each_get_their_own_answer(
    workers: str, start_server: Start, write_model: Callable, iris_pipeline: Pipeline
) -> None:
    config, _ = write_model(iris_pipeline, job="classification", input_size=4)
    server = start_server(config, MDA_WORKERS=workers, MDA_CACHE_ENABLED="false")
    rows = np.random.default_rng(3).normal(loc=4, scale=2, size=(200, 4))
    answers = asyncio.run(concurrent_predictions(server.url, rows))
    np.testing.assert_allclose(answers, iris_pipeline.predict_proba(rows), atol=1e-9)
    metrics = httpx.get(f"{server.url}/metrics").text
    # Counted across every worker: 200 predictions, whichever worker served them.
    assert (
        'mda_requests_total{method="POST",model="toy",route="/predict",status="200"} 200.0'
        in metrics
    )


def test_the_server_stops_cleanly_on_sigterm(
    start_server: Start, write_model: Callable, iris_pipeline: Pipeline
) -> None:
    config, _ = write_model(iris_pipeline, job="classification", input_size=4)
    for workers in ("1", "3"):
        server = start_server(config, MDA_WORKERS=workers)
        server.process.terminate()
        # uvicorn shuts down gracefully, then re-raises SIGTERM: either exit is clean.
        assert server.process.wait(timeout=15) in (0, -signal.SIGTERM)
        assert "Traceback" not in server.output()


def start_refused(start_server: Start, config: Path, **env: str) -> str:
    server = start_server(config, wait=False, **env)
    assert server.process.wait(timeout=60) == 1
    return server.output()


def refusal_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("mda: error:")]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"modelTyp": "joblib"}, "modelTyp: unknown key"),
        ({"job": "ranking"}, "job:"),
        ({"inputSize": -1}, "inputSize:"),
    ],
)
def test_bad_config_exits_in_one_line_naming_the_key(
    change: dict[str, Any], named: str, start_server: Start, tmp_path: Path
) -> None:
    config = {"modelType": "joblib", "job": "regression", "inputSize": 3,
              "model": {"method": "LOCAL", "path": "/m"}, **change}  # fmt: skip
    output = start_refused(start_server, write_yaml(tmp_path / "c.yaml", config))
    assert named in refusal_line(output)


@pytest.mark.parametrize(
    ("change", "env", "named"),
    [
        ({"modelTyp": "joblib"}, {}, "modelTyp: unknown key"),
        ({}, {}, "model file /no/such/model.joblib does not exist"),
        ({"modelType": "transformers", "job": "classification", "inputSize": None,
          "model": {"method": "LOCAL", "path": "/no/such/folder"}},
         {}, "model path /no/such/folder is not a folder"),
        ({"model": {"method": "LOCAL", "path": __file__}},
         {"MDA_API_TOKENS_FILE": "/no/such/tokens"}, "cannot read the token file"),
    ],
)  # fmt: skip
def test_a_start_up_error_found_before_serving_is_the_only_line_printed(
    change: dict[str, Any], env: dict[str, str], named: str, start_server: Start, tmp_path: Path
) -> None:
    config = {"modelType": "joblib", "job": "regression", "inputSize": 3,
              "model": {"method": "LOCAL", "path": "/no/such/model.joblib"}, **change}  # fmt: skip
    config = {key: value for key, value in config.items() if value is not None}
    path = write_yaml(tmp_path / "c.yaml", config)
    output = start_refused(start_server, path, MDA_LOG_LEVEL="info", **env)
    assert output.strip() == refusal_line(output), "no log line before the error"
    assert named in output


def test_missing_bucket_and_object_never_report_ready(
    start_server: Start, gcs_bucket: Any, tmp_path: Path
) -> None:
    missing_bucket = write_yaml(tmp_path / "a.yaml", gcs_config("no-such-bucket", "m.joblib"))
    assert "bucket gs://no-such-bucket does not exist" in refusal_line(
        start_refused(start_server, missing_bucket)
    )
    missing_object = write_yaml(tmp_path / "b.yaml", gcs_config(gcs_bucket.name, "gone.joblib"))
    assert "gone.joblib does not exist" in refusal_line(start_refused(start_server, missing_object))


def test_digest_pin_mismatch_and_unfit_models_are_refused(
    start_server: Start, write_model: Callable, tmp_path: Path
) -> None:
    X, y = load_iris(return_X_y=True)
    config, _ = write_model(SVC().fit(X, y), job="classification", input_size=4, sha256="a" * 64)
    assert "sha256 mismatch" in refusal_line(start_refused(start_server, config))
    config, _ = write_model(SVC().fit(X, y), job="classification", input_size=4)
    assert "has no predict_proba" in refusal_line(start_refused(start_server, config))


def test_bad_setting_is_one_line(start_server: Start, write_model: Callable, iris_pipeline: Any
                                 ) -> None:  # fmt: skip
    config, _ = write_model(iris_pipeline, job="classification", input_size=4)
    line = refusal_line(start_refused(start_server, config, MDA_WORKERS="zero"))
    assert "MDA_WORKERS" in line


def test_root_path_setting_points_docs_at_the_prefixed_schema(
    start_server: Start, write_model: Callable, iris_pipeline: Pipeline
) -> None:
    config, _ = write_model(iris_pipeline, job="classification", input_size=4)
    server = start_server(config, MDA_ROOT_PATH="/iris")
    assert "/iris/openapi.json" in httpx.get(f"{server.url}/iris/docs").text
    assert httpx.post(f"{server.url}/predict", json=[[5.1, 3.5, 1.4, 0.2]]).status_code == 200


@pytest.mark.parametrize("workers", ["1", "2"])
def test_gcs_unreachable_exits_in_one_line_within_the_load_timeout(
    workers: str, start_server: Start, tmp_path: Path
) -> None:
    import time

    config = write_yaml(tmp_path / "c.yaml", gcs_config("models", "iris/model.joblib"))
    started = time.monotonic()
    output = start_refused(
        start_server, config, MDA_WORKERS=workers, MDA_LOAD_TIMEOUT_SECONDS="3",
        STORAGE_EMULATOR_HOST="http://127.0.0.1:9",  # nothing listens on the discard port
    )  # fmt: skip
    assert time.monotonic() - started < 20
    line = refusal_line(output)
    assert "cannot reach GCS to download gs://models/iris/model.joblib within 3s" in line
    assert "retrying gs://models/iris/model.joblib" in output  # transient errors are logged


def test_a_directory_or_a_corrupt_file_is_named_for_what_it_is(
    start_server: Start, write_model: Callable, iris_pipeline: Pipeline, tmp_path: Path
) -> None:
    config, artifact = write_model(iris_pipeline, job="classification", input_size=4)
    data = yaml.safe_load(config.read_text())
    data["model"]["path"] = str(tmp_path)
    directory = write_yaml(tmp_path / "dir.yaml", data)
    assert "is a directory, not a model file" in refusal_line(
        start_refused(start_server, directory)
    )
    artifact.write_bytes(artifact.read_bytes()[:200])
    assert "not a valid joblib file (truncated or corrupt?)" in refusal_line(
        start_refused(start_server, config)
    )
