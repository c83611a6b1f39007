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


def flavors_of(path: Path) -> dict[str, Any] | None:
    """The flavours an MLflow model directory's `MLmodel` file lists (None: no MLmodel file,
    a plain artifact logged as is)."""
    mlmodel = path / "MLmodel"
    if not mlmodel.is_file():
        return None
    import yaml

    try:
        flavors = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors") or {}
    except (yaml.YAMLError, AttributeError) as error:
        raise StartupError(f"the MLflow model's MLmodel file is not valid: {error}") from None
    return flavors if isinstance(flavors, dict) else {}


def flavor_file(path: Path, flavor: str, suffixes: tuple[str, ...]) -> Path:
    """The native file inside an MLflow model directory: the `data` file of its `flavor`, or,
    for a plain artifact logged as is, its one file ending in one of `suffixes`."""
    flavors = flavors_of(path)
    if flavors is not None:
        data = (flavors.get(flavor) or {}).get("data")
        if not isinstance(data, str) or not (path / data).is_file():
            raise StartupError(
                f"the MLflow model has no {flavor} flavour file (its flavours: "
                f"{', '.join(flavors) or 'none'}): log it with mlflow.{flavor}"
            )
        return path / data
    candidates = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in suffixes)
    if len(candidates) != 1:
        found = ", ".join(p.name for p in path.rglob("*") if p.is_file()) or "nothing"
        raise StartupError(
            f"expected one {' or '.join(suffixes)} file in the MLflow model, found {found}"
        )
    return candidates[0]
