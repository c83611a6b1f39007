"""The MLflow Model Registry as a source, against a real `mlflow server` (SQLite backend
store; artifacts on a local directory served by the tracking server itself, so the client
needs only MLFLOW_TRACKING_URI, as in a GKE setup with proxied artifacts): a model served by
alias, the alias moved to a new version and followed, the scikit-learn flavour and a plain
joblib artifact, and bad registries refused in one line."""

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
import yaml
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.conftest import ServerProcess, free_port
from tests.peers import PEER_PYTHON, run_peer

pytestmark = pytest.mark.slow

Start = Callable[..., ServerProcess]
X, y = load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not PEER_PYTHON.exists():
        pytest.fail(f"{PEER_PYTHON} is missing: `make peers` (or `make test`) builds it")
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [str(PEER_PYTHON.with_name("mlflow")), "server", "--host", "127.0.0.1",
         "--port", str(port), "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
         "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert process.poll() is None, (root / "server.log").read_text()[-2000:]
        time.sleep(0.5)
    else:
        process.kill()
        log.close()
        pytest.fail("mlflow server did not start")
    yield url
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


def register(url: str, name: str, estimator: Any, flavor: str, tmp: Path, *alias: str) -> str:
    path = tmp / f"{name}-{time.monotonic_ns()}.joblib"
    joblib.dump(estimator, path)
    return str(
        run_peer("mlflow_registry.py", url, "register", name, str(path), flavor, *alias)["version"]
    )


def mlflow_config(tmp_path: Path, uri: str, **model: Any) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "name": "churn", "modelType": "joblib", "job": "classification", "inputSize": 4,
        "model": {"method": "MLFLOW", "modelUri": uri, **model},
    }))  # fmt: skip
    return config


def predictions(server: ServerProcess) -> Any:
    return httpx.post(f"{server.url}/predict", json=X[::10].tolist()).json()["predictions"]


@pytest.mark.parametrize("flavor", ["sklearn", "file"])
def test_an_alias_is_served_and_followed_to_a_new_version(
    flavor: str, mlflow_server: str, start_server: Start, tmp_path: Path
) -> None:
    name = f"churn-{flavor}"
    first = LogisticRegression(C=1.0, max_iter=500).fit(X, y)
    second = LogisticRegression(C=0.01, max_iter=500).fit(X, y)
    register(mlflow_server, name, first, flavor, tmp_path, "champion")
    server = start_server(
        mlflow_config(tmp_path, f"models:/{name}@champion", refreshSeconds=1),
        MLFLOW_TRACKING_URI=mlflow_server, MDA_DOWNLOAD_DIR=str(tmp_path / "downloads"),
    )  # fmt: skip
    np.testing.assert_allclose(predictions(server), first.predict_proba(X[::10]), atol=1e-9)
    before = httpx.get(f"{server.url}/v2/models/churn").json()["versions"]
    version = register(mlflow_server, name, second, flavor, tmp_path)  # not yet the champion
    time.sleep(2)
    assert httpx.get(f"{server.url}/v2/models/churn").json()["versions"] == before
    run_peer("mlflow_registry.py", mlflow_server, "alias", name, "champion", version)
    deadline = time.monotonic() + 30
    while httpx.get(f"{server.url}/v2/models/churn").json()["versions"] == before:
        assert time.monotonic() < deadline, "the moved alias was not followed"
        time.sleep(0.3)
    np.testing.assert_allclose(predictions(server), second.predict_proba(X[::10]), atol=1e-9)


def test_a_fixed_version_is_served(mlflow_server: str, start_server: Start, tmp_path: Path) -> None:
    model = LogisticRegression(max_iter=500).fit(X, y)
    version = register(mlflow_server, "fixed", model, "sklearn", tmp_path)
    server = start_server(
        mlflow_config(tmp_path, f"models:/fixed/{version}"), MLFLOW_TRACKING_URI=mlflow_server
    )
    np.testing.assert_allclose(predictions(server), model.predict_proba(X[::10]), atol=1e-9)


def refusal(start_server: Start, config: Path, **env: str) -> str:
    server = start_server(config, wait=False, **env)
    assert server.process.wait(timeout=90) == 1
    lines = [line for line in server.output().splitlines() if line.startswith("mda: error:")]
    assert len(lines) == 1
    return lines[0]


def test_bad_registries_are_refused_in_one_line(
    mlflow_server: str, start_server: Start, tmp_path: Path
) -> None:
    register(
        mlflow_server,
        "known",
        LogisticRegression(max_iter=1000).fit(X, y),
        "sklearn",
        tmp_path,
        "prod",
    )
    line = refusal(start_server, mlflow_config(tmp_path, "models:/known@nope"),
                   MLFLOW_TRACKING_URI=mlflow_server)  # fmt: skip
    assert "cannot resolve models:/known@nope in MLflow" in line
    line = refusal(start_server, mlflow_config(tmp_path, "models:/unknown-model@prod"),
                   MLFLOW_TRACKING_URI=mlflow_server)  # fmt: skip
    assert "cannot resolve models:/unknown-model@prod in MLflow" in line
    narrow = LogisticRegression(max_iter=1000).fit(X[:, :3], y)
    register(mlflow_server, "narrow", narrow, "sklearn", tmp_path, "prod")
    line = refusal(start_server, mlflow_config(tmp_path, "models:/narrow@prod"),
                   MLFLOW_TRACKING_URI=mlflow_server)  # fmt: skip
    assert "inputSize is 4 but the model (LogisticRegression) expects 3 features" in line
    started = time.monotonic()
    unreachable = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "MDA_LOAD_TIMEOUT_SECONDS": "20"}
    line = refusal(start_server, mlflow_config(tmp_path, "models:/known@prod"), **unreachable)
    assert "cannot resolve models:/known@prod in MLflow" in line
    assert time.monotonic() - started < 60


def test_a_transformers_folder_logged_as_artifacts_is_served(
    mlflow_server: str, start_server: Start, tmp_path: Path
) -> None:
    pytest.importorskip("transformers")
    from tests.text_models import build_text_classifier, forward

    folder = build_text_classifier(tmp_path / "sentiment")
    version = str(
        run_peer("mlflow_registry.py", mlflow_server, "register", "sentiment", str(folder),
                 "folder", "champion")["version"]
    )  # fmt: skip
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "name": "sentiment", "modelType": "transformers", "job": "classification",
        "model": {"method": "MLFLOW", "modelUri": "models:/sentiment@champion"},
    }))  # fmt: skip
    server = start_server(config, MLFLOW_TRACKING_URI=mlflow_server)
    texts = ["loved it", "a dull and slow story"]
    answer = httpx.post(f"{server.url}/predict", json={"text": texts})
    assert answer.status_code == 200, answer.text
    logits = forward(folder, texts)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(answer.json()["predictions"], expected, atol=1e-5)
    assert version


def _native_files(tmp: Path) -> dict[str, tuple[Path, Any]]:
    """Each family's classifier in its own format, and the model that answers for it."""
    import catboost
    import lightgbm
    import xgboost
    from skl2onnx import to_onnx

    files: dict[str, tuple[Path, Any]] = {}
    xgb = xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(X, y)
    xgb.save_model(str(tmp / "model.json"))
    files["xgboost"] = (tmp / "model.json", xgb)
    lgb = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, y)
    lgb.booster_.save_model(str(tmp / "model.txt"))
    files["lightgbm"] = (tmp / "model.txt", lgb)
    cb = catboost.CatBoostClassifier(iterations=10, depth=3, verbose=0, allow_writing_files=False)
    cb = cb.fit(X, y)
    cb.save_model(str(tmp / "model.cbm"))
    files["catboost"] = (tmp / "model.cbm", cb)
    linear = LogisticRegression(max_iter=500).fit(X, y)
    (tmp / "model.onnx").write_bytes(to_onnx(linear, X[:1].astype(np.float32)).SerializeToString())
    files["onnx"] = (tmp / "model.onnx", linear)
    return files


@pytest.mark.parametrize("family", ["xgboost", "lightgbm", "catboost", "onnx"])
def test_a_model_logged_with_its_familys_flavour_is_served(
    family: str, mlflow_server: str, start_server: Start, tmp_path: Path
) -> None:
    pytest.importorskip(family if family != "onnx" else "onnxruntime")
    path, model = _native_files(tmp_path)[family]
    name = f"iris-{family}"
    run_peer("mlflow_registry.py", mlflow_server, "register", name, str(path), family, "prod")
    config = mlflow_config(tmp_path, f"models:/{name}@prod")
    data = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**data, "modelType": family}))
    server = start_server(config, MLFLOW_TRACKING_URI=mlflow_server)
    answer = httpx.post(f"{server.url}/predict", json=X[::10].tolist())
    assert answer.status_code == 200, answer.text
    atol = 1e-5 if family == "onnx" else 1e-6  # ONNX Runtime computes in float32
    np.testing.assert_allclose(answer.json()["predictions"], model.predict_proba(X[::10]),
                               atol=atol)  # fmt: skip
    platform = httpx.get(f"{server.url}/v2/models/churn").json()["platform"]
    assert platform == family
