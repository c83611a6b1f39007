"""Every model family, pickled and in its own file format, served by a real `mda serve` and
asked over `/predict`, V2 JSON, V2 binary (tritonclient's HTTP) and gRPC (tritonclient's):
each answer is the library's own `predict_proba` / `predict` on the same rows."""

import json
import pickle
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
import yaml

from tests.conftest import ServerProcess, free_port, serving_config
from tests.peers import run_peer

pytestmark = pytest.mark.slow

Start = Callable[..., ServerProcess]
xgboost = pytest.importorskip("xgboost")
lightgbm = pytest.importorskip("lightgbm")
catboost = pytest.importorskip("catboost")
onnxruntime = pytest.importorskip("onnxruntime")


@dataclass
class Case:
    """A model saved as its family's users save it, and the answers it must give."""

    model_type: str
    job: str
    write: Callable[[Path], Path]  # saves the model under a folder, returns the file
    expected: Callable[[np.ndarray], dict[str, np.ndarray]]  # output name -> answer
    tolerance: float = 1e-6
    extra: dict[str, Any] | None = None  # more config keys


def outputs_of(model: Any, job: str) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    def answers(X: np.ndarray) -> dict[str, np.ndarray]:
        if job == "classification":
            return {"predict_proba": model.predict_proba(X), "predict": np.ravel(model.predict(X))}
        return {"predict": model.predict(X)}

    return answers


def pickled(model: Any, how: str = "joblib") -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / f"model.{how}"
        if how == "pkl":
            path.write_bytes(pickle.dumps(model))
        else:
            joblib.dump(model, path)
        return path

    return write


def saved(model: Any, name: str) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        model.save_model(str(folder / name))
        return folder / name

    return write


@pytest.fixture(scope="module")
def data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from sklearn.datasets import load_diabetes, load_iris

    X, y = load_iris(return_X_y=True)
    Xd, yd = load_diabetes(return_X_y=True)
    return {"iris": (X, y), "binary": (X, (y > 0).astype(np.int32)), "diabetes": (Xd, yd)}


def _cases(data: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Case]:
    X, y = data["iris"]
    Xb, yb = data["binary"]
    Xd, yd = data["diabetes"]
    small = {"n_estimators": 20, "max_depth": 3}
    xgb_clf = xgboost.XGBClassifier(**small).fit(X, y)
    xgb_bin = xgboost.XGBClassifier(**small).fit(Xb, yb)
    xgb_reg = xgboost.XGBRegressor(**small).fit(Xd, yd)
    lgb_clf = lightgbm.LGBMClassifier(**small, verbose=-1).fit(X, y)
    lgb_int32 = lightgbm.LGBMClassifier(**small, verbose=-1).fit(Xb, yb)  # int32 labels
    lgb_reg = lightgbm.LGBMRegressor(**small, verbose=-1).fit(Xd, yd)
    cb_args = {
        "iterations": 20,
        "depth": 3,
        "verbose": 0,
        "thread_count": 1,
        "allow_writing_files": False,
    }
    cb_clf = catboost.CatBoostClassifier(**cb_args).fit(X, np.array(["a", "b", "c"])[y])
    cb_reg = catboost.CatBoostRegressor(**cb_args).fit(Xd, yd)

    def booster_answers(booster: Any, binary: bool) -> Callable[[np.ndarray], dict[str, Any]]:
        def answers(rows: np.ndarray) -> dict[str, np.ndarray]:
            scores = booster.predict(rows)
            proba = np.column_stack([1 - scores, scores]) if binary else scores
            return {"predict_proba": proba, "predict": proba.argmax(axis=1)}

        return answers

    def lgb_booster_file(folder: Path) -> Path:
        lgb_clf.booster_.save_model(str(folder / "model.txt"))
        return folder / "model.txt"

    def lgb_binary_file(folder: Path) -> Path:
        lgb_int32.booster_.save_model(str(folder / "model.txt"))
        return folder / "model.txt"

    def lgb_reg_file(folder: Path) -> Path:
        lgb_reg.booster_.save_model(str(folder / "model.txt"))
        return folder / "model.txt"

    return {
        "xgboost-pickled-classifier": Case("joblib", "classification", pickled(xgb_clf),
                                           outputs_of(xgb_clf, "classification")),
        "xgboost-pickled-regressor": Case("pkl", "regression", pickled(xgb_reg, "pkl"),
                                          outputs_of(xgb_reg, "regression")),
        "xgboost-json-classifier": Case("xgboost", "classification", saved(xgb_clf, "model.json"),
                                        outputs_of(xgb_clf, "classification")),
        "xgboost-ubj-binary": Case("xgboost", "classification", saved(xgb_bin, "model.ubj"),
                                   outputs_of(xgb_bin, "classification")),
        "xgboost-json-regressor": Case("xgboost", "regression", saved(xgb_reg, "model.json"),
                                       outputs_of(xgb_reg, "regression")),
        "lightgbm-pickled-classifier": Case("joblib", "classification", pickled(lgb_clf),
                                            outputs_of(lgb_clf, "classification")),
        "lightgbm-pickled-int32-labels": Case("joblib", "classification", pickled(lgb_int32),
                                              outputs_of(lgb_int32, "classification")),
        "lightgbm-pickled-regressor": Case("joblib", "regression", pickled(lgb_reg),
                                           outputs_of(lgb_reg, "regression")),
        "lightgbm-text-classifier": Case("lightgbm", "classification", lgb_booster_file,
                                         booster_answers(lgb_clf.booster_, binary=False)),
        "lightgbm-text-binary-named": Case(
            "lightgbm", "classification", lgb_binary_file,
            lambda rows: {
                "predict_proba": lgb_int32.predict_proba(rows),
                "predict": np.array(["no", "yes"])[lgb_int32.predict(rows)],
            },
            extra={"classes": ["no", "yes"]},
        ),
        "lightgbm-text-regressor": Case("lightgbm", "regression", lgb_reg_file,
                                        outputs_of(lgb_reg.booster_, "regression")),
        "catboost-pickled-classifier": Case("pkl", "classification", pickled(cb_clf, "pkl"),
                                            outputs_of(cb_clf, "classification")),
        "catboost-pickled-regressor": Case("joblib", "regression", pickled(cb_reg),
                                           outputs_of(cb_reg, "regression")),
        "catboost-cbm-classifier": Case("catboost", "classification", saved(cb_clf, "model.cbm"),
                                        outputs_of(cb_clf, "classification")),
        "catboost-cbm-regressor": Case("catboost", "regression", saved(cb_reg, "model.cbm"),
                                       outputs_of(cb_reg, "regression")),
        **_onnx_cases(data),
    }  # fmt: skip


def _onnx_cases(data: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Case]:
    pytest.importorskip("skl2onnx")
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = data["iris"]
    Xd, yd = data["diabetes"]
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    regressor = RandomForestRegressor(n_estimators=10, max_depth=4, random_state=0).fit(Xd, yd)

    def converted(model: Any, rows: np.ndarray, **options: Any) -> Callable[[Path], Path]:
        def write(folder: Path) -> Path:
            graph = to_onnx(model, rows[:1].astype(np.float32), **options)
            (folder / "model.onnx").write_bytes(graph.SerializeToString())
            return folder / "model.onnx"

        return write

    float32 = 1e-5  # ONNX Runtime computes in float32
    return {
        "onnx-zipmap-classifier": Case("onnx", "classification", converted(classifier, X),
                                       outputs_of(classifier, "classification"), float32),
        "onnx-tensor-classifier": Case(
            "onnx", "classification",
            converted(classifier, X, options={id(classifier): {"zipmap": False}}),
            outputs_of(classifier, "classification"), float32,
        ),
        "onnx-regressor": Case("onnx", "regression", converted(regressor, Xd),
                               lambda rows: {"predict": regressor.predict(
                                   rows.astype(np.float32))}, 1e-3),
    }  # fmt: skip


@pytest.fixture(scope="module")
def cases(data: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Case]:
    return _cases(data)


CASES = [
    "xgboost-pickled-classifier", "xgboost-pickled-regressor", "xgboost-json-classifier",
    "xgboost-ubj-binary", "xgboost-json-regressor", "lightgbm-pickled-classifier",
    "lightgbm-pickled-int32-labels", "lightgbm-pickled-regressor", "lightgbm-text-classifier",
    "lightgbm-text-binary-named", "lightgbm-text-regressor", "catboost-pickled-classifier",
    "catboost-pickled-regressor", "catboost-cbm-classifier", "catboost-cbm-regressor",
    "onnx-zipmap-classifier", "onnx-tensor-classifier", "onnx-regressor",
]  # fmt: skip


def write_config(case: Case, folder: Path, width: int, name: str = "family") -> Path:
    artifact = case.write(folder)
    config = serving_config(artifact, job=case.job, input_size=width, model_type=case.model_type,
                            name=name)  # fmt: skip
    config.update(case.extra or {})
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def rows_for(case: Case, data: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    X = data["iris" if case.job == "classification" else "diabetes"][0]
    return X[::7]


def assert_answers(got: dict[str, Any], expected: dict[str, np.ndarray], tolerance: float) -> None:
    for name, want in expected.items():
        values = np.reshape(got[name]["data"], got[name]["shape"])
        if want.dtype.kind in "fc":
            np.testing.assert_allclose(values, want, atol=tolerance, rtol=0, err_msg=name)
        else:
            assert values.tolist() == want.tolist(), name


@pytest.mark.parametrize("name", CASES)
def test_each_family_answers_as_the_library_does_on_every_wire_form(
    name: str, cases: dict[str, Case], data: Any, start_server: Start, tmp_path: Path
) -> None:
    case = cases[name]
    X = rows_for(case, data)
    server = start_server(write_config(case, tmp_path, X.shape[1]))
    expected = case.expected(X)
    outputs = list(expected)

    reply = httpx.post(f"{server.url}/predict", json=X.tolist())
    assert reply.status_code == 200, reply.text
    default = "predict_proba" if case.job == "classification" else "predict"
    # JSON writes a float32 answer (XGBoost's) as float32's shortest text: equal to 1e-7.
    np.testing.assert_allclose(reply.json()["predictions"], expected[default],
                               atol=case.tolerance, rtol=1e-7)  # fmt: skip

    body = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": list(X.shape),
                        "data": X.ravel().tolist()}],
            "outputs": [{"name": n} for n in outputs]}  # fmt: skip
    reply = httpx.post(f"{server.url}/v2/models/family/infer", json=body)
    assert reply.status_code == 200, reply.text
    assert_answers({o["name"]: o for o in reply.json()["outputs"]}, expected, case.tolerance)

    spec = {"model": "family", "inputs": [{"name": "input-0", "datatype": "FP64",
            "data": X.tolist()}], "outputs": outputs}  # fmt: skip
    for client in ("triton-http", "triton-grpc"):
        port = server.grpc_port if client.endswith("grpc") else server.port
        got = run_peer("v2_clients.py", client, f"127.0.0.1:{port}", json.dumps(spec))
        assert_answers(got["outputs"], expected, case.tolerance)
        declared = {o["name"]: o["datatype"] for o in got["metadata"]["outputs"]}
        assert got["metadata"]["platform"] == name.split("-")[0]
        for output in outputs:
            assert declared[output] in ("FP64", "INT64", "BYTES"), declared


def test_two_workers_share_the_cpus_and_both_answer(
    cases: dict[str, Case], data: Any, start_server: Start, tmp_path: Path
) -> None:
    """Threads are sized in each worker after the fork: a pool made before it would hang."""
    for name in ("xgboost-json-classifier", "lightgbm-text-classifier", "onnx-tensor-classifier"):
        case = cases[name]
        X = rows_for(case, data)
        folder = tmp_path / name
        folder.mkdir()
        server = start_server(write_config(case, folder, X.shape[1]), MDA_WORKERS="2")
        want = case.expected(X)["predict_proba"]
        for _ in range(8):  # new connections: both workers take some
            reply = httpx.post(f"{server.url}/predict", json=X.tolist(), timeout=20)
            assert reply.status_code == 200, reply.text
            np.testing.assert_allclose(reply.json()["predictions"], want, atol=case.tolerance)
        server.stop()


def start_refused(start_server: Start, config: Path) -> str:
    server = start_server(config, wait=False)
    assert server.process.wait(timeout=60) == 1
    output = server.output()
    lines = [line for line in output.splitlines() if line.startswith("mda: error:")]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


@pytest.mark.parametrize(
    ("model_type", "file", "named"),
    [
        ("xgboost", "model.json", "model.json is not an XGBoost model file"),
        ("lightgbm", "model.txt", "model.txt is not a LightGBM model file"),
        ("catboost", "model.cbm", "model.cbm is not a CatBoost model file"),
        ("onnx", "model.onnx", "model.onnx is not an ONNX model ONNX Runtime can run"),
    ],
)
def test_a_corrupt_native_file_stops_the_server_in_one_line(
    model_type: str, file: str, named: str, start_server: Start, tmp_path: Path
) -> None:
    (tmp_path / file).write_bytes(b'{"learner": "not really"' if file.endswith("json") else
                                  b"\x00\x01garbage" * 50)  # fmt: skip
    config = serving_config(tmp_path / file, job="classification", input_size=4,
                            model_type=model_type)  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert named in start_refused(start_server, path)


def test_an_onnx_graph_whose_inputs_do_not_fit_the_config_is_refused_naming_both(
    cases: dict[str, Case], start_server: Start, tmp_path: Path
) -> None:
    case = cases["onnx-tensor-classifier"]
    line = start_refused(start_server, write_config(case, tmp_path, 5))
    assert "inputSize is 5" in line and "expects 4 features" in line, line


def test_a_model_whose_library_is_missing_names_the_extra(
    cases: dict[str, Case], tmp_path: Path
) -> None:
    config = write_config(cases["xgboost-json-classifier"], tmp_path, 4)
    hide = ("import sys; sys.modules['xgboost'] = None;"
            "from model_deployment_app.cli import main; sys.exit(main(['serve']))")  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", hide], capture_output=True, text=True, timeout=120,
        env={"MDA_CONFIG_PATH": str(config), "PORT": str(free_port()), "MDA_GRPC_PORT": "0",
             "MDA_LOG_LEVEL": "warning", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mda: error:"), done.stderr
    assert "xgboost extra" in lines[0] and "pip install -e '.[xgboost]'" in lines[0], lines[0]
