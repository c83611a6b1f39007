"""The MLflow Model Registry as a model source (`model.method: MLFLOW`, the `mlflow` extra).

`models:/<name>@<alias>` is resolved to the version the alias points at now, and that version
(`models:/<name>/<version>`) is what is downloaded, so the version probed is the version served.
The tracking server is `MLFLOW_TRACKING_URI`, as for any MLflow client. MLflow's own HTTP retries
are capped (two, ten seconds each) unless set otherwise: start-up has its own deadline.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_deployment_app.errors import StartupError

os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def _client() -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise StartupError(
            "model.method MLFLOW needs the mlflow extra (mlflow-skinny); "
            "build the image with WITH_MLFLOW=true"
        ) from None
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        raise StartupError("model.method MLFLOW needs MLFLOW_TRACKING_URI (the tracking server)")
    return MlflowClient()


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:300] if text else ''}"


def resolve(model_uri: str) -> ModelVersion:
    """The registered model version `model_uri` names now."""
    client = _client()
    body = model_uri.removeprefix("models:/")
    try:
        if "@" in body:
            name, alias = body.split("@", 1)
            found = client.get_model_version_by_alias(name, alias)
        else:
            name, version = body.rsplit("/", 1)
            found = client.get_model_version(name, version)
    except Exception as error:  # MlflowException, or the transport's own
        raise StartupError(f"cannot resolve {model_uri} in MLflow: {_one_line(error)}") from None
    return ModelVersion(found.name, str(found.version))


def download(model_uri: str, folder: Path) -> tuple[Path, str, str]:
    """The model version's artifacts in a directory under `folder`, its URI, and its version
    number."""
    version = resolve(model_uri)
    import mlflow

    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=version.uri, dst_path=str(folder))
    except Exception as error:
        raise StartupError(
            f"cannot download {version.uri} from MLflow: {_one_line(error)}"
        ) from None
    return Path(local), f"{model_uri} (version {version.version})", version.version


def load_model_directory(path: Path, model_type: str) -> Any:
    """An MLflow model directory: its scikit-learn flavour, or, for a plain artifact logged
    as is, the one joblib / pickle / skops file of the configured `modelType` in it."""
    mlmodel = path / "MLmodel"
    if mlmodel.is_file():
        import yaml

        flavors = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {})
        if "sklearn" in flavors:
            import mlflow.sklearn

            return mlflow.sklearn.load_model(str(path))
        raise StartupError(
            f"the MLflow model has only the flavors {', '.join(flavors) or 'none'}: log it with "
            "mlflow.sklearn, or log the joblib/pickle/skops file itself as the model's artifact"
        )
    suffix = {"joblib": ".joblib", "pkl": ".pkl", "skops": ".skops"}[model_type]
    candidates = sorted(p for p in path.rglob(f"*{suffix}") if p.is_file())
    if len(candidates) != 1:
        found = ", ".join(p.name for p in path.rglob("*") if p.is_file()) or "nothing"
        raise StartupError(
            f"expected one {suffix} file (modelType {model_type}) in the MLflow model, "
            f"found {found}"
        )
    return candidates[0]
