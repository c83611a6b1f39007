"""Transformer text classifiers (`modelType: transformers`) served by real `mda serve`
processes: every answer compared with the saved model's own forward pass on that text alone.

Models are built here (a WordPiece tokenizer trained on a few sentences, a tiny DistilBERT
with random weights), never downloaded.
"""

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from model_deployment_app.config import parse_config
from model_deployment_app.errors import StartupError
from model_deployment_app.runtimes.transformers import load_text_classifier
from model_deployment_app.settings import TextModelSettings
from model_deployment_app.storage import sha256_of
from tests.conftest import MDA, ServerProcess, free_port
from tests.peers import run_peer
from tests.text_models import SENTENCES, build_text_classifier, forward

pytest.importorskip("transformers")
pytestmark = pytest.mark.slow

Start = Callable[..., ServerProcess]
LABELS = ("negative", "positive")


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_text_classifier(tmp_path_factory.mktemp("sentiment") / "model")


def text_config(folder: Path, path: Path, *, job: str = "classification", **model: Any) -> Path:
    config = {
        "name": "sentiment",
        "modelType": "transformers",
        "job": job,
        "model": {"method": "LOCAL", "path": str(folder), **model},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def texts_of_many_lengths(count: int) -> list[str]:
    rng = np.random.default_rng(3)
    words = " ".join(SENTENCES).split()
    return [" ".join(rng.choice(words, int(rng.integers(1, 120)))) for _ in range(count)]


def test_text_body_and_instances_get_the_models_own_probabilities(
    sentiment: Path, tmp_path: Path, start_server: Start
) -> None:
    server = start_server(text_config(sentiment, tmp_path / "config.yaml"))
    texts = ["a great film", "", "hated every minute of it", "naïve café 🙂 \u200b\u0301"]
    expected = softmax(forward(sentiment, texts))
    for body in ({"text": texts}, {"instances": texts}):
        answer = httpx.post(f"{server.url}/predict", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["classes"] == list(LABELS)
        np.testing.assert_allclose(answer.json()["predictions"], expected, atol=1e-5)
    metadata = httpx.get(f"{server.url}/v2/models/sentiment").json()
    assert metadata["platform"] == "transformers"
    assert [i["name"] for i in metadata["inputs"]] == ["text"]


def test_a_5000_word_text_is_truncated_not_refused(
    sentiment: Path, tmp_path: Path, start_server: Start
) -> None:
    server = start_server(text_config(sentiment, tmp_path / "config.yaml"))
    text = " ".join(["wonderful"] * 5000)
    answer = httpx.post(f"{server.url}/predict", json={"text": [text]}, timeout=30)
    assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(
        answer.json()["predictions"], softmax(forward(sentiment, [text])), atol=1e-5
    )


def test_concurrent_requests_of_very_different_lengths_batch_and_pad_correctly(
    sentiment: Path, tmp_path: Path, start_server: Start
) -> None:
    server = start_server(
        text_config(sentiment, tmp_path / "config.yaml"),
        MDA_CACHE_ENABLED="false", MDA_TEXT_TOKEN_BUDGET="256",
    )  # fmt: skip
    texts = texts_of_many_lengths(200)
    expected = softmax(forward(sentiment, texts))

    async def send_all() -> list[Any]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
            answers = await asyncio.gather(
                *(client.post("/predict", json={"text": [t]}) for t in texts)
            )
        return [a.json()["predictions"][0] for a in answers]

    got = asyncio.run(send_all())
    np.testing.assert_allclose(got, expected, atol=1e-5)
    batches = httpx.get(f"{server.url}/metrics").text
    sizes = [line for line in batches.splitlines() if line.startswith("mda_batch_rows_count")]
    count = float(sizes[0].split()[-1])
    assert count < 200, "concurrent texts should share forward passes"


def test_answers_are_cached_per_text(sentiment: Path, tmp_path: Path, start_server: Start) -> None:
    server = start_server(text_config(sentiment, tmp_path / "config.yaml"))
    body = {"text": ["loved it", "boring plot"]}
    first = httpx.post(f"{server.url}/predict", json=body).json()
    second = httpx.post(f"{server.url}/predict", json=body).json()
    assert first == second
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'mda_cache_hits_total{model="sentiment"} 2.0' in metrics


@pytest.mark.parametrize("client", ["triton-http", "triton-grpc"])
@pytest.mark.parametrize("shape", ["flat", "column"])
def test_v2_clients_send_bytes_and_get_probabilities_and_labels(
    client: str, shape: str, sentiment: Path, tmp_path: Path, start_server: Start
) -> None:
    server = start_server(text_config(sentiment, tmp_path / "config.yaml"))
    texts = ["a great film", "terrible acting and a silly ending", ""]
    data = texts if shape == "flat" else [[t] for t in texts]
    spec = {
        "model": "sentiment",
        "binary": client == "triton-http",
        "inputs": [{"name": "review", "datatype": "BYTES", "data": data}],
        "outputs": ["predict_proba", "predict"],
    }
    port = server.grpc_port if client.endswith("grpc") else server.port
    got = run_peer("v2_clients.py", client, f"127.0.0.1:{port}", json.dumps(spec))
    proba = got["outputs"]["predict_proba"]
    expected = softmax(forward(sentiment, texts))
    np.testing.assert_allclose(np.reshape(proba["data"], proba["shape"]), expected, atol=1e-5)
    assert got["outputs"]["predict"]["data"] == [LABELS[i] for i in expected.argmax(axis=1)]


def test_v2_json_over_plain_http(sentiment: Path, tmp_path: Path, start_server: Start) -> None:
    server = start_server(text_config(sentiment, tmp_path / "config.yaml"))
    texts = ["funny, warm and surprisingly clever", "dull"]
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": texts}]}
    answer = httpx.post(f"{server.url}/v2/models/sentiment/infer", json=body)
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    np.testing.assert_allclose(
        np.reshape(outputs["predict_proba"]["data"], (2, 2)),
        softmax(forward(sentiment, texts)),
        atol=1e-5,
    )


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"text": [1, 2]}, 422, "row 0"),
        ({"text": ["fine", None]}, 422, "row 1"),
        ({"text": []}, 422, "empty"),
        ({"text": "not a list"}, 422, ""),
        ({"text": ["x"] * 10_001}, 413, "10000"),
    ],
)
def test_bad_text_requests_are_refused_naming_the_row(
    body: Any, status: int, message: str, sentiment: Path, tmp_path: Path, start_server: Start
) -> None:
    server = start_server(text_config(sentiment, tmp_path / "config.yaml"))
    answer = httpx.post(f"{server.url}/predict", json=body)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]
    assert httpx.post(f"{server.url}/predict", json={"text": ["still fine"]}).status_code == 200


def test_two_workers_serve_the_same_answers(
    sentiment: Path, tmp_path: Path, start_server: Start
) -> None:
    server = start_server(text_config(sentiment, tmp_path / "config.yaml"), MDA_WORKERS="2")
    texts = texts_of_many_lengths(20)
    expected = softmax(forward(sentiment, texts))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for text, want in zip(texts, expected, strict=True):
            got = client.post("/predict", json={"text": [text]}).json()["predictions"][0]
            np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_multi_label_head_answers_sigmoids(tmp_path: Path, start_server: Start) -> None:
    labels = ("funny", "sad", "long")
    folder = build_text_classifier(
        tmp_path / "tags", labels=labels, problem_type="multi_label_classification"
    )
    server = start_server(text_config(folder, tmp_path / "config.yaml"))
    texts = ["funny and warm", "a dull and slow story"]
    answer = httpx.post(f"{server.url}/predict", json={"text": texts}).json()
    assert answer["classes"] == list(labels)
    sigmoid = 1 / (1 + np.exp(-forward(folder, texts)))
    np.testing.assert_allclose(answer["predictions"], sigmoid, atol=1e-5)


def test_a_regression_head_answers_one_number_per_text(tmp_path: Path, start_server: Start) -> None:
    folder = build_text_classifier(tmp_path / "score", labels=("score",), problem_type="regression")
    server = start_server(text_config(folder, tmp_path / "config.yaml", job="regression"))
    texts = ["superb", "awful film", ""]
    answer = httpx.post(f"{server.url}/predict", json={"text": texts}).json()
    assert "classes" not in answer
    np.testing.assert_allclose(answer["predictions"], forward(folder, texts)[:, 0], atol=1e-5)


def test_a_folder_on_gcs_is_downloaded_whole(
    sentiment: Path, tmp_path: Path, start_server: Start, gcs_bucket: Any, gcs_emulator: str
) -> None:
    for file in sentiment.rglob("*"):
        if file.is_file():
            gcs_bucket.blob(f"sentiment/v1/{file.relative_to(sentiment)}").upload_from_filename(
                str(file)
            )
    config = {
        "name": "sentiment",
        "modelType": "transformers",
        "job": "classification",
        "model": {
            "method": "GCS", "projectName": "test-project", "bucketName": gcs_bucket.name,
            "blobDir": "sentiment/v1", "sha256": sha256_of(sentiment),
        },
    }  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    downloads = tmp_path / "downloads"
    server = start_server(path, STORAGE_EMULATOR_HOST=gcs_emulator, MDA_DOWNLOAD_DIR=str(downloads))
    texts = ["loved it", "hated it"]
    answer = httpx.post(f"{server.url}/predict", json={"text": texts}).json()
    np.testing.assert_allclose(answer["predictions"], softmax(forward(sentiment, texts)), atol=1e-5)
    assert list(downloads.iterdir()) == [], "the download is removed once the model is loaded"


def test_a_new_folder_version_is_swapped_in(tmp_path: Path, start_server: Start) -> None:
    folder = build_text_classifier(tmp_path / "model", seed=1)
    server = start_server(text_config(folder, tmp_path / "config.yaml", refreshSeconds=1))
    texts = ["a great film"]
    before = httpx.post(f"{server.url}/predict", json={"text": texts})
    np.testing.assert_allclose(
        before.json()["predictions"], softmax(forward(folder, texts)), atol=1e-5
    )
    staged = build_text_classifier(tmp_path / "v2", seed=2)
    shutil.rmtree(folder)
    staged.rename(folder)
    for _ in range(100):
        after = httpx.post(f"{server.url}/predict", json={"text": texts})
        if after.headers["model-version"] != before.headers["model-version"]:
            break
        asyncio.run(asyncio.sleep(0.1))
    assert after.headers["model-version"] == sha256_of(folder)[:12]
    np.testing.assert_allclose(
        after.json()["predictions"], softmax(forward(folder, texts)), atol=1e-5
    )


# --- refusals ------------------------------------------------------------------------------


def load(folder: Path, job: str = "classification") -> Any:
    return load_text_classifier(folder, job, TextModelSettings())


def test_a_folder_asking_for_remote_code_is_refused(sentiment: Path, tmp_path: Path) -> None:
    folder = tmp_path / "remote"
    shutil.copytree(sentiment, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_evil.Evil"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(StartupError, match=r"asks for remote code \(auto_map\)"):
        load(folder)


def test_a_model_that_is_not_a_sequence_classifier_is_refused(
    sentiment: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "mlm"
    shutil.copytree(sentiment, folder)
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["DistilBertForMaskedLM"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(StartupError, match="DistilBertForMaskedLM, not a sequence-classification"):
        load(folder)


def test_a_folder_without_config_or_weights_is_refused(sentiment: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(StartupError, match=r"expected one config\.json"):
        load(tmp_path / "empty")
    folder = tmp_path / "no-weights"
    shutil.copytree(sentiment, folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(StartupError, match="has no weights"):
        load(folder)


def test_a_head_that_does_not_fit_the_job_is_refused(sentiment: Path) -> None:
    with pytest.raises(StartupError, match="job is regression but the model is a classifier"):
        load(sentiment, "regression")


def test_a_regression_head_served_as_a_classifier_is_refused(tmp_path: Path) -> None:
    folder = build_text_classifier(tmp_path / "score", labels=("score",), problem_type="regression")
    with pytest.raises(StartupError, match="job is classification but the model has a regression"):
        load(folder)


def test_serve_refuses_a_wrong_folder_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "not-a-model").mkdir()
    (tmp_path / "not-a-model" / "notes.txt").write_text("hello")
    config = text_config(tmp_path / "not-a-model", tmp_path / "config.yaml")
    ports = {"PORT": str(free_port()), "MDA_GRPC_PORT": "0", "MDA_HOST": "127.0.0.1"}
    run = subprocess.run(
        [*MDA, "serve"], capture_output=True, text=True, timeout=120,
        env={**os.environ, "MDA_CONFIG_PATH": str(config), **ports},
    )  # fmt: skip
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("mda: error: ") and "not a transformers model folder" in last, run.stderr
    assert "Traceback" not in run.stderr


def test_config_takes_no_input_size_and_at_most_one_bytes_input() -> None:
    base = {"modelType": "transformers", "job": "classification",
            "model": {"method": "LOCAL", "path": "m"}}  # fmt: skip
    assert parse_config(base).inputs is None
    with pytest.raises(StartupError, match="inputSize does not apply"):
        parse_config({**base, "inputSize": 4})
    with pytest.raises(StartupError, match="one BYTES input"):
        parse_config({**base, "inputs": [{"name": "age", "datatype": "INT64"}]})


def test_digest_prints_the_folder_digest_that_sha256_pins(sentiment: Path) -> None:
    printed = subprocess.run(
        [*MDA, "digest", str(sentiment)], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert printed == sha256_of(sentiment)
    missing = subprocess.run([*MDA, "digest", "/no/such/folder"], capture_output=True, text=True)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "mda: error: /no/such/folder does not exist"


def test_the_folder_digest_changes_with_any_file(sentiment: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(sentiment, copy)
    assert sha256_of(copy) == sha256_of(sentiment)
    (copy / "config.json").rename(copy / "config2.json")
    assert sha256_of(copy) != sha256_of(sentiment)
