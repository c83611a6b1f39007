"""The demo models and request bodies: trained here at start, nothing downloaded.

A LogisticRegression (cheap per row: the server's own overhead dominates) and a
RandomForestClassifier (expensive per call, cheap per extra row: batching pays off), both on
the same 20-feature classification task, and "mixed", a ColumnTransformer pipeline on a
DataFrame of numbers, strings and a bool (what most real scikit-learn models are), each saved
with joblib next to its config.yaml.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import orjson
import pandas as pd
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

N_FEATURES = 20
MIXED = "mixed"
MIXED_INPUTS = [
    {"name": "age", "datatype": "INT64"},
    {"name": "income", "datatype": "FP64"},
    {"name": "city", "datatype": "BYTES"},
    {"name": "plan", "datatype": "BYTES"},
    {"name": "member", "datatype": "BOOL"},
]
_CITIES = ["Paris", "Lyon", "Nice", "Lille", "Brest", "Metz"]
_PLANS = ["free", "basic", "pro"]


@dataclass(frozen=True)
class DemoModel:
    name: str
    artifact: Path
    config: Path


def train(directory: Path) -> list[DemoModel]:
    """Train, save and configure the two demo models under `directory`."""
    x, y = make_classification(n_samples=2000, n_features=N_FEATURES, random_state=0)
    estimators = {
        "logreg": LogisticRegression(max_iter=1000),
        "forest": RandomForestClassifier(n_estimators=100, random_state=0),
    }
    models = []
    for name, estimator in estimators.items():
        estimator.fit(x, y)
        artifact = directory / f"{name}.joblib"
        joblib.dump(estimator, artifact)
        config = directory / f"{name}.yaml"
        config.write_text(yaml.safe_dump(_config(name, artifact), sort_keys=False))
        models.append(DemoModel(name, artifact, config))
    models.append(_train_mixed(directory))
    return models


def train_families(directory: Path) -> list[tuple[DemoModel, DemoModel]]:
    """A 100-tree XGBoost and a 100-tree LightGBM classifier on the same task, each pickled
    (joblib) and in its own format; families whose library is missing are left out."""
    x, y = make_classification(n_samples=2000, n_features=N_FEATURES, random_state=0)
    found = []
    for family in ("xgboost", "lightgbm"):
        try:
            library = __import__(family)
        except ImportError:
            continue
        if family == "xgboost":
            estimator = library.XGBClassifier(n_estimators=100, max_depth=6).fit(x, y)
            native = directory / f"{family}.json"
            estimator.save_model(str(native))
        else:
            estimator = library.LGBMClassifier(n_estimators=100, verbose=-1).fit(x, y)
            native = directory / f"{family}.txt"
            estimator.booster_.save_model(str(native))
        pickled = directory / f"{family}.joblib"
        joblib.dump(estimator, pickled)
        pair = []
        for artifact, model_type in ((pickled, "joblib"), (native, family)):
            config = directory / f"{family}-{model_type}.yaml"
            settings = {**_config(family, artifact), "modelType": model_type}
            config.write_text(yaml.safe_dump(settings, sort_keys=False))
            pair.append(DemoModel(family, artifact, config))
        found.append((pair[0], pair[1]))
    return found


def _people(count: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, count),
            "income": rng.normal(50_000, 15_000, count).round(2),
            "city": rng.choice(_CITIES, count),
            "plan": rng.choice(_PLANS, count),
            "member": rng.choice([True, False], count),
        }
    )


def _train_mixed(directory: Path) -> DemoModel:
    frame = _people(2000, seed=0)
    y = (frame.age > 45) ^ (frame.city == "Paris") ^ frame.member
    columns = ColumnTransformer(
        [
            ("numbers", StandardScaler(), ["age", "income"]),
            ("strings", OneHotEncoder(handle_unknown="ignore"), ["city", "plan"]),
            ("flags", "passthrough", ["member"]),
        ]
    )
    pipeline = make_pipeline(columns, LogisticRegression(max_iter=1000)).fit(frame, y)
    artifact = directory / f"{MIXED}.joblib"
    joblib.dump(pipeline, artifact)
    config = directory / f"{MIXED}.yaml"
    config.write_text(yaml.safe_dump(_config(MIXED, artifact, MIXED_INPUTS), sort_keys=False))
    return DemoModel(MIXED, artifact, config)


def _config(name: str, artifact: Path, inputs: Any = None) -> dict[str, object]:
    """The model configuration of CONTRACT section 2 for a local artifact."""
    return {
        "name": name,
        "modelType": "joblib",
        "job": "classification",
        "model": {"method": "LOCAL", "path": str(artifact)},
        **({"inputs": inputs} if inputs else {"inputSize": N_FEATURES}),
    }


def record_bodies(count: int, seed: int = 1) -> list[bytes]:
    """`count` distinct one-record bodies `{"instances": [{"age": ..., ...}]}` for "mixed"."""
    records = _people(count, seed).to_dict(orient="records")
    return [orjson.dumps({"instances": [r]}, option=orjson.OPT_SERIALIZE_NUMPY) for r in records]


def prediction_bodies(count: int, rows_per_body: int = 1, seed: int = 1) -> list[bytes]:
    """`count` distinct JSON bodies `{"instances": [...]}` of random rows, pre-encoded."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(count, rows_per_body, N_FEATURES))
    return [orjson.dumps({"instances": batch.tolist()}) for batch in rows]


def binary_v2_bodies(count: int, rows_per_body: int, seed: int = 3) -> tuple[list[bytes], int]:
    """V2 infer bodies with the binary extension: the same rows as `prediction_bodies`
    (same seed), FP64, probabilities asked for as binary too; and the JSON header's length."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(count, rows_per_body, N_FEATURES))
    size = rows_per_body * N_FEATURES * 8
    header = orjson.dumps({
        "inputs": [{"name": "input-0", "shape": [rows_per_body, N_FEATURES], "datatype": "FP64",
                    "parameters": {"binary_data_size": size}}],
        "outputs": [{"name": "predict_proba", "parameters": {"binary_data": True}}],
    })  # fmt: skip
    return [header + batch.astype("<f8").tobytes() for batch in rows], len(header)


def single_row_rest_and_grpc(model: str) -> tuple[bytes, bytes]:
    """One row as a `/predict` JSON body and as a serialized gRPC `ModelInferRequest`."""
    row = np.random.default_rng(9).normal(size=(1, N_FEATURES))
    return orjson.dumps({"instances": row.tolist()}), grpc_request(model, row)


def grpc_request(model: str, rows: np.ndarray) -> bytes:
    """`rows` as a serialized gRPC `ModelInferRequest`: FP64 in `raw_input_contents`, as
    tritonclient sends them."""
    from model_deployment_app.grpc_v2 import grpc_predict_v2_pb2 as pb

    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="input-0", datatype="FP64", shape=list(rows.shape))
    request.raw_input_contents.append(rows.astype("<f8").tobytes())
    return request.SerializeToString()


def binary_and_grpc_batch(model: str, rows_per_body: int) -> tuple[bytes, int, bytes]:
    """The same rows as a V2 binary HTTP body (with its JSON header's length) and as a gRPC
    request."""
    [body], header = binary_v2_bodies(1, rows_per_body, seed=3)
    rows = np.random.default_rng(3).normal(size=(1, rows_per_body, N_FEATURES))[0]
    return body, header, grpc_request(model, rows)


def check_grpc(host: str, port: int, request: bytes) -> None:
    """One real gRPC call with the benchmark's request: h2load cannot see gRPC errors."""
    import grpc

    from model_deployment_app.grpc_v2 import grpc_predict_v2_pb2 as pb
    from model_deployment_app.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc

    with grpc.insecure_channel(f"{host}:{port}") as channel:
        reply = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
            pb.ModelInferRequest.FromString(request), timeout=10
        )
    if not reply.raw_output_contents:
        raise RuntimeError("the gRPC benchmark request got no output")


def train_scaled_forest(directory: Path) -> DemoModel:
    """A scaler + 20-tree forest on the 20-feature task: the soak's model. Its forest
    computes in float32 behind the scaler, so a value past float32 reaches the model and
    makes it raise: the poison the server must keep to its own request."""
    x, y = make_classification(n_samples=2000, n_features=N_FEATURES, random_state=0)
    forest = RandomForestClassifier(n_estimators=20, random_state=0)
    estimator = make_pipeline(StandardScaler(), forest).fit(x, y)
    artifact = directory / "scaled-forest.joblib"
    joblib.dump(estimator, artifact)
    config = directory / "scaled-forest.yaml"
    config.write_text(yaml.safe_dump(_config("scaled-forest", artifact), sort_keys=False))
    return DemoModel("scaled-forest", artifact, config)


def poison_body() -> bytes:
    """One row with a value past float32: finite JSON the soak's model raises on."""
    return orjson.dumps({"instances": [[1e39] + [0.0] * (N_FEATURES - 1)]})


def swappable_logreg(directory: Path) -> tuple[DemoModel, list[Path]]:
    """The logistic regression served from a file it re-reads every second, and two other
    versions of it (other regularisation) to publish over that file during the load."""
    x, y = make_classification(n_samples=2000, n_features=N_FEATURES, random_state=0)
    artifact = directory / "swapped.joblib"
    joblib.dump(LogisticRegression(max_iter=1000).fit(x, y), artifact)
    versions = []
    for index, c in enumerate((0.05, 5.0)):
        path = directory / f"swapped-v{index + 2}.joblib"
        joblib.dump(LogisticRegression(C=c, max_iter=1000).fit(x, y), path)
        versions.append(path)
    config = _config("logreg", artifact)
    config["model"] = {"method": "LOCAL", "path": str(artifact), "refreshSeconds": 1}
    path = directory / "swapped.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return DemoModel("logreg", artifact, path), versions
