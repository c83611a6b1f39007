"""Register models in a real MLflow tracking server, as a training job would.

    mlflow_registry.py URL register NAME MODEL.joblib sklearn|file [ALIAS]
    mlflow_registry.py URL register NAME FOLDER folder [ALIAS]
    mlflow_registry.py URL register NAME FILE xgboost|lightgbm|catboost|onnx [ALIAS]
    mlflow_registry.py URL alias NAME ALIAS VERSION

`sklearn` logs the estimator with the scikit-learn flavour (mlflow.sklearn.log_model); `file`
logs the joblib file itself as the model's only artifact; `folder` logs a folder (a
transformers `save_pretrained` folder) as the model's artifacts; a family's name loads its
native FILE with that library and logs it with that MLflow flavour (mlflow.xgboost.log_model,
...). Prints {"version": "<n>"}.
"""

import contextlib
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import mlflow
from mlflow.tracking import MlflowClient


def log_xgboost(path: str) -> Any:
    import mlflow.xgboost
    import xgboost

    model = xgboost.XGBClassifier()
    model.load_model(path)
    return mlflow.xgboost.log_model(model, name="model")


def log_lightgbm(path: str) -> Any:
    import lightgbm
    import mlflow.lightgbm

    return mlflow.lightgbm.log_model(lightgbm.Booster(model_file=path), name="model")


def log_catboost(path: str) -> Any:
    import catboost
    import mlflow.catboost

    model = catboost.CatBoostClassifier()
    model.load_model(path)
    return mlflow.catboost.log_model(model, name="model")


def log_onnx(path: str) -> Any:
    import mlflow.onnx
    import onnx

    return mlflow.onnx.log_model(onnx.load(path), name="model")


FLAVOURS: dict[str, Callable[[str], Any]] = {
    "xgboost": log_xgboost, "lightgbm": log_lightgbm, "catboost": log_catboost, "onnx": log_onnx,
}  # fmt: skip

url, command, name, *rest = sys.argv[1:]
mlflow.set_tracking_uri(url)
client = MlflowClient()
if command == "alias":
    alias, version = rest
    client.set_registered_model_alias(name, alias, version)
    print(json.dumps({"version": version}))
    sys.exit(0)
artifact, flavor, *alias = rest
with contextlib.suppress(mlflow.exceptions.MlflowException):  # registered before
    client.create_registered_model(name)
with mlflow.start_run() as run:
    if flavor == "sklearn":
        info = mlflow.sklearn.log_model(joblib.load(artifact), name="model")
        version = mlflow.register_model(info.model_uri, name).version
    elif flavor in FLAVOURS:
        info = FLAVOURS[flavor](artifact)
        version = mlflow.register_model(info.model_uri, name).version
    elif flavor == "folder":
        mlflow.log_artifacts(artifact, artifact_path="model")
        source = f"{run.info.artifact_uri}/model"
        version = client.create_model_version(name, source, run_id=run.info.run_id).version
    else:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "model"
            folder.mkdir()
            (folder / "model.joblib").write_bytes(Path(artifact).read_bytes())
            mlflow.log_artifacts(str(folder), artifact_path="model")
        source = f"{run.info.artifact_uri}/model"
        version = client.create_model_version(name, source, run_id=run.info.run_id).version
if alias:
    client.set_registered_model_alias(name, alias[0], version)
print(json.dumps({"version": str(version)}))
