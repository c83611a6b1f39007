"""Compiled inference (`MDA_COMPILE`): scikit-learn models answered by ONNX Runtime only when
the converted graph reproduces scikit-learn on the verification rows, within the mode's
tolerance; otherwise scikit-learn answers, with one log line saying why."""

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from model_deployment_app import compiling
from model_deployment_app.config import parse_config
from model_deployment_app.inputs import Table
from model_deployment_app.predictor import LoadedModel, prepare
from model_deployment_app.runtimes import LoadContext, serving, sklearn_compiled
from model_deployment_app.settings import CompileSettings, Settings
from tests.conftest import ServerProcess, serving_config
from tests.peers import run_peer

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

Start = Callable[..., ServerProcess]
X, y = make_classification(600, 20, n_informative=8, n_classes=3, random_state=0)
XR, YR = make_regression(600, 20, noise=1.0, random_state=0)
FRESH = np.random.default_rng(7).normal(0, 2, size=(200, 20))  # rows no model was fit on


def tabular_models() -> dict[str, tuple[Any, str]]:
    """name -> (fitted estimator, job)"""
    return {
        "logistic-regression": (LogisticRegression(max_iter=1000).fit(X, y), "classification"),
        "scaled-pipeline": (
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y),
            "classification",
        ),
        "random-forest": (RandomForestClassifier(50, random_state=0).fit(X, y), "classification"),
        "gradient-boosting": (
            GradientBoostingClassifier(n_estimators=30, random_state=0).fit(X, y),
            "classification",
        ),
        "hist-gradient-boosting": (
            HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, y),
            "classification",
        ),
        "ridge": (Ridge().fit(XR, YR), "regression"),
        "random-forest-regressor": (
            RandomForestRegressor(30, random_state=0).fit(XR, YR),
            "regression",
        ),
        "gradient-boosting-regressor": (
            GradientBoostingRegressor(n_estimators=30, random_state=0).fit(XR, YR),
            "regression",
        ),
    }


MODELS = tabular_models()
# name -> (compiled under exact, compiled under approx); None: either, as long as it is true
# to its mode (float32 trees' sums may or may not stay within 1e-6 of a large regression).
EXPECTED: dict[str, tuple[bool | None, bool | None]] = {
    "logistic-regression": (True, True),
    "scaled-pipeline": (True, True),
    "random-forest": (False, True),
    "gradient-boosting": (False, True),
    "hist-gradient-boosting": (False, False),  # skl2onnx cannot convert it here
    "ridge": (True, True),
    "random-forest-regressor": (False, None),
    "gradient-boosting-regressor": (False, None),
}


def compiled(
    estimator: Any, job: str, mode: str, config: dict[str, Any] | None = None
) -> LoadedModel:
    """The model as the server loads it, after its compilation ran to the end."""
    parsed = parse_config(config or serving_config(Path("/unused.joblib"), job=job, input_size=20))
    model = prepare(estimator, parsed, "0" * 64)
    settings = Settings(compiling=CompileSettings(compile=mode))  # type: ignore[arg-type]
    switched: list[LoadedModel] = []
    compiling.compile_model(
        model, serving("joblib", estimator), LoadContext(parsed, settings), switched.append
    )
    assert switched == ([model] if model.engine is not None else [])
    return model


def assert_true_to(model: LoadedModel, estimator: Any, rows: Any, frame: Any, mode: str) -> None:
    tolerance = compiling.TOLERANCE[mode]
    for output in model.outputs:
        want = getattr(estimator, output)(frame)
        got = model.run(output, rows)
        if want.dtype.kind == "f":
            scale = 1.0 if model.job == "classification" else np.maximum(np.abs(want), 1.0)
            assert np.max(np.abs(got - want) / scale) <= tolerance, output
        else:
            assert got.tolist() == want.tolist(), output


@pytest.mark.parametrize("mode", ["exact", "approx"])
@pytest.mark.parametrize("name", list(MODELS))
def test_a_model_is_compiled_only_when_its_graph_agrees_within_the_mode(
    name: str, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    estimator, job = MODELS[name]
    with caplog.at_level(logging.INFO, logger="model_deployment_app.compiling"):
        model = compiled(estimator, job, mode)
    expected = EXPECTED[name][0 if mode == "exact" else 1]
    if expected is not None:
        assert (model.engine is not None) is expected, caplog.text
    assert model.engine_name == ("onnxruntime" if model.engine is not None else "sklearn")
    (line,) = [r.getMessage() for r in caplog.records]  # one line, either way
    assert ("now answered by onnxruntime" in line) is (model.engine is not None), line
    if name == "hist-gradient-boosting":
        assert "skl2onnx cannot convert HistGradientBoostingClassifier" in line, line
    rows = FRESH if job == "classification" else FRESH * 3
    assert_true_to(model, estimator, rows, rows, mode)


def test_off_never_compiles_and_answers_exactly_as_scikit_learn() -> None:
    estimator, job = MODELS["logistic-regression"]
    model = compiled(estimator, job, "off")
    assert model.engine is None and model.engine_name == "sklearn"
    np.testing.assert_array_equal(model.run("predict_proba", FRESH), estimator.predict_proba(FRESH))


def test_a_graph_that_disagrees_is_never_used(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The converter is handed another model (a deliberately wrong graph): verification
    catches it, and the model itself keeps answering."""
    estimator, job = MODELS["logistic-regression"]
    impostor = LogisticRegression(max_iter=1000).fit(X, np.roll(y, 1))
    convert = sklearn_compiled._convert
    monkeypatch.setattr(sklearn_compiled, "_convert", lambda _, *args: convert(impostor, *args))
    with caplog.at_level(logging.INFO, logger="model_deployment_app.compiling"):
        model = compiled(estimator, job, "approx")
    assert model.engine is None
    assert "stays on sklearn" in caplog.text and "differs by" in caplog.text, caplog.text
    np.testing.assert_array_equal(model.run("predict", FRESH), estimator.predict(FRESH))


def people() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({
        "age": rng.integers(18, 80, 400),
        "city": rng.choice(["paris", "lyon", "nice"], 400).astype(object),
        "income": rng.normal(3000, 800, 400),
    })  # fmt: skip
    labels = ((frame.age > 40) ^ (frame.city == "nice")).astype(int).to_numpy()
    return frame, labels


INPUTS = [{"name": "age", "datatype": "INT64"}, {"name": "city", "datatype": "BYTES"},
          {"name": "income", "datatype": "FP64"}]  # fmt: skip


def dataframe_pipeline() -> Any:
    frame, labels = people()
    columns = ColumnTransformer(
        [("numbers", StandardScaler(), ["age", "income"]), ("city", OneHotEncoder(), ["city"])]
    )
    return make_pipeline(columns, LogisticRegression(max_iter=1000)).fit(frame, labels)


def test_a_dataframe_pipeline_with_a_string_column_is_compiled_and_fed_its_columns() -> None:
    pipeline = dataframe_pipeline()
    frame, _ = people()
    raw = serving_config(Path("/unused.joblib"), job="classification", inputs=INPUTS)
    raw["examples"] = [{"age": 30, "city": "lyon", "income": 2500.0}]
    model = compiled(pipeline, "classification", "approx", raw)
    assert model.engine is not None
    rows = Table({"age": frame.age.to_numpy(), "city": frame.city.to_numpy(),
                  "income": frame.income.to_numpy()})  # fmt: skip
    assert_true_to(model, pipeline, rows, frame, "approx")

    # A category the encoder does not know: declined by the engine, refused by scikit-learn.
    unknown = Table({"age": np.array([30]), "city": np.array(["rome"], dtype=object),
                     "income": np.array([1.0])})  # fmt: skip
    assert model.engine.run("predict_proba", unknown) is None
    with pytest.raises(ValueError, match="unknown categories"):
        model.run("predict_proba", unknown)


def engine_of(server: ServerProcess, name: str = "toy") -> str:
    reply = httpx.get(f"{server.url}/v2/models/{name}", timeout=5)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["parameters"]["engine"])


def wait_for_engine(server: ServerProcess, engine: str, timeout: float = 60) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if engine_of(server) == engine:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"the engine is still {engine_of(server)}")


def write_forest(tmp_path: Path) -> tuple[Path, Any]:
    forest = RandomForestClassifier(60, random_state=0).fit(X, y)
    joblib.dump(forest, tmp_path / "forest.joblib")
    config = serving_config(tmp_path / "forest.joblib", job="classification", input_size=20)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, forest


@pytest.mark.slow
def test_a_served_forest_switches_to_onnxruntime_losing_no_request_and_answers_alike(
    start_server: Start, tmp_path: Path
) -> None:
    config, forest = write_forest(tmp_path)
    server = start_server(config, wait=False, MDA_COMPILE="approx", MDA_CACHE_ENABLED="false")
    failures: list[str] = []
    answered = [0]
    stop = threading.Event()

    def load() -> None:  # requests from before the model is ready until after the switch
        with httpx.Client(timeout=20) as client:
            while not stop.is_set():
                try:
                    reply = client.post(f"{server.url}/predict", json=FRESH[:3].tolist())
                except httpx.TransportError:
                    time.sleep(0.01)
                    continue
                if reply.status_code == 503:
                    continue
                if reply.status_code != 200:
                    failures.append(reply.text)
                    continue
                got = np.asarray(reply.json()["predictions"])
                if np.max(np.abs(got - forest.predict_proba(FRESH[:3]))) > 1e-6:
                    failures.append(f"answer {got} differs")
                answered[0] += 1

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        server.wait_ready()
        assert engine_of(server) in ("sklearn", "onnxruntime")
        wait_for_engine(server, "onnxruntime")
        before = answered[0]
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not failures, failures[:3]
    assert answered[0] > before > 0

    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'mda_model_engine{engine="onnxruntime"' in metrics, metrics
    for line in metrics.splitlines():
        if line.startswith("mda_model_engine{"):
            value = float(line.rsplit(" ", 1)[1])
            assert value == (1.0 if 'engine="onnxruntime"' in line else 0.0), line

    # Every wire form, and a row it cannot take (NaN over V2 binary, a wrong width): the 422s
    # of before.
    body = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": list(FRESH.shape),
                        "data": FRESH.ravel().tolist()}]}  # fmt: skip
    reply = httpx.post(f"{server.url}/v2/models/toy/infer", json=body)
    got = np.reshape(reply.json()["outputs"][0]["data"], (len(FRESH), 3))
    np.testing.assert_allclose(got, forest.predict_proba(FRESH), atol=1e-6, rtol=0)
    spec = {"model": "toy", "inputs": [{"name": "input-0", "datatype": "FP64",
            "data": FRESH[:5].tolist()}], "outputs": ["predict_proba", "predict"]}  # fmt: skip
    got = run_peer("v2_clients.py", "triton-grpc", f"127.0.0.1:{server.grpc_port}",
                   json.dumps(spec))["outputs"]  # fmt: skip
    np.testing.assert_allclose(np.reshape(got["predict_proba"]["data"], (5, 3)),
                               forest.predict_proba(FRESH[:5]), atol=1e-6, rtol=0)  # fmt: skip
    assert got["predict"]["data"] == forest.predict(FRESH[:5]).tolist()
    reply = httpx.post(f"{server.url}/predict", json=[[1.0] * 19])
    assert reply.status_code == 422


@pytest.mark.slow
def test_off_keeps_scikit_learn_and_two_compiling_workers_both_switch(
    start_server: Start, tmp_path: Path
) -> None:
    config, forest = write_forest(tmp_path)
    off = start_server(config, MDA_COMPILE="off")
    time.sleep(1.0)
    assert engine_of(off) == "sklearn"
    reply = httpx.post(f"{off.url}/predict", json=FRESH[:4].tolist())
    np.testing.assert_array_equal(reply.json()["predictions"], forest.predict_proba(FRESH[:4]))
    off.stop()

    workers = start_server(config, MDA_COMPILE="approx", MDA_WORKERS="2")
    deadline = time.monotonic() + 60
    streak = 0
    while streak < 12:  # new connections each time: both workers answer some
        assert time.monotonic() < deadline, "a worker never switched"
        streak = streak + 1 if engine_of(workers) == "onnxruntime" else 0
        time.sleep(0.02)
    reply = httpx.post(f"{workers.url}/predict", json=FRESH[:4].tolist())
    np.testing.assert_allclose(reply.json()["predictions"], forest.predict_proba(FRESH[:4]),
                               atol=1e-6, rtol=0)  # fmt: skip
