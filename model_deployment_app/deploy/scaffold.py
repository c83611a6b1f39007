"""`mda new-model NAME`: a new model chart in k8s_dev/NAME, from charts_template/starter.

The starter's Chart.yaml and values.yaml are written with the model's answers filled in; its
templates/ and values.schema.json, the same in every model chart, are copied as they are. The
chart is written to a temporary sibling directory and renamed into place, so a failure leaves
nothing behind.
"""

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from model_deployment_app.config import parse_config
from model_deployment_app.deploy.layout import DEFAULT_IMAGE, Repo, validate_name
from model_deployment_app.deploy.versioning import package_version
from model_deployment_app.errors import StartupError, UserError
from model_deployment_app.runtimes import Runtime, for_model_type

# Rendered from starter/ with the placeholders below; the rest of a chart is copied as it is.
_RENDERED = ("Chart.yaml", "values.yaml")
SHARED = ("values.schema.json", "templates/model.yaml", "templates/NOTES.txt")


@dataclass(frozen=True)
class ModelSpec:
    """A new model's answers; the defaults are the README's example project and bucket."""

    name: str
    job: str = "classification"
    input_size: int = 4
    inputs: tuple[tuple[str, str], ...] | None = None  # named columns instead of input_size
    model_type: str = "joblib"
    project: str = "my-project"
    bucket: str = "my-bucket"
    blob: str | None = None
    image: str = DEFAULT_IMAGE
    mlflow_uri: str | None = None  # models:/<name>@<alias>: the registry instead of a bucket
    mlflow_tracking_uri: str = "http://mlflow.mlflow.svc.cluster.local:5000"
    refresh_seconds: float | None = None

    @property
    def runtime(self) -> Runtime:
        return for_model_type(self.model_type)

    @property
    def image_variant(self) -> str:
        """The base image's variant this model type needs (`make docker-base` tags it)."""
        return self.runtime.image_variant

    @property
    def takes_text(self) -> bool:
        """A text model: its input is text, neither inputSize nor inputs."""
        return self.runtime.takes_text and not self.inputs

    def describe_inputs(self) -> str:
        if self.takes_text:
            return "text"
        if self.inputs:
            return f"inputs {', '.join(f'{n}:{t}' for n, t in self.inputs)}"
        return f"{self.input_size} features"

    @property
    def blob_path(self) -> str:
        """The object name in the bucket; default `<name>/model.<suffix>` (the family's own
        file suffix, else the modelType), or for a folder model the folder `<name>/`."""
        runtime = self.runtime
        if runtime.folder:
            return self.blob or f"{self.name}/"
        suffix = runtime.suffixes[0] if runtime.suffixes else f".{self.model_type}"
        return self.blob or f"{self.name}/model{suffix}"


def new_model(repo: Repo, spec: ModelSpec) -> Path:
    """Create k8s_dev/<name>; UserError (nothing written) for a bad or taken name."""
    validate_name(spec.name)
    target = repo.charts_dir / spec.name
    if target.exists():
        raise UserError(f"model {spec.name!r} already exists: {target}")
    _refuse_taken_path(repo, spec.name)
    _check_config(spec)
    replacements = _replacements(repo, spec)

    repo.charts_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=repo.charts_dir))
    try:
        chart = staging / spec.name
        chart.mkdir()
        for name in _RENDERED:
            text = (repo.starter_dir / name).read_text()
            (chart / name).write_text(_render(text, replacements))
        for name in SHARED:
            (chart / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo.starter_dir / name, chart / name)
        _check_rendered(chart, spec)
        chart.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _replacements(repo: Repo, spec: ModelSpec) -> dict[str, str]:
    return {
        "<CHARTNAME>": spec.name,
        "<JOB>": spec.job,
        "<INPUT_SCHEMA>": _input_schema(spec),
        "<INPUTS_SUMMARY>": spec.describe_inputs(),
        "<MODEL_TYPE>": spec.model_type,
        "<MODEL_SOURCE>": _indented(_model_source(spec), "    "),
        "<ENV>": json.dumps(_env(spec)),
        "<IMAGE>": spec.image,
        "<IMAGE_VARIANT>": spec.image_variant,
        "<APP_VERSION>": package_version(repo),
    }


def _input_schema(spec: ModelSpec) -> str:
    """The config's input lines of values.yaml: inputSize, or the inputs list."""
    if spec.takes_text:
        return (
            f'# A {spec.model_type} model takes text ({{"text": [...]}}): neither inputSize nor\n'
            "  # inputs (docs: guides/text-models.md)."
        )
    if not spec.inputs:
        return (
            "# Features per row, all numbers; a request with another row width is refused\n"
            "  # with 422. For named, typed columns (a DataFrame pipeline, a text model), use\n"
            "  # `inputs:` instead (docs: guides/dataframes.md).\n"
            f"  inputSize: {spec.input_size}"
        )
    lines = [
        "# The model's named, typed columns (docs: guides/dataframes.md).",
        "  inputs:",
    ]
    lines += [f"    - {{name: {json.dumps(n)}, datatype: {t}}}" for n, t in spec.inputs]
    return "\n".join(lines)


def _model_source(spec: ModelSpec) -> dict[str, Any]:
    refresh = {"refreshSeconds": spec.refresh_seconds} if spec.refresh_seconds else {}
    if spec.mlflow_uri:
        return {"method": "MLFLOW", "modelUri": spec.mlflow_uri, **refresh}
    return {
        "method": "GCS",
        "projectName": spec.project,
        "bucketName": spec.bucket,
        "blobDir": spec.blob_path,
        **refresh,
    }


def _env(spec: ModelSpec) -> dict[str, str]:
    return {"MLFLOW_TRACKING_URI": spec.mlflow_tracking_uri} if spec.mlflow_uri else {}


def _indented(mapping: dict[str, Any], indent: str) -> str:
    """One `key: value` line per entry, values as JSON (valid YAML, strings quoted)."""
    return "\n".join(f"{indent}{key}: {json.dumps(value)}" for key, value in mapping.items())


def _render(text: str, replacements: dict[str, str]) -> str:
    for placeholder, value in replacements.items():
        text = text.replace(placeholder, value)
    return text


def _config(spec: ModelSpec) -> dict[str, Any]:
    """The config block the chart will carry (CONTRACT section 2)."""
    return {
        "name": spec.name,
        "modelType": spec.model_type,
        "job": spec.job,
        "model": _model_source(spec),
        **(
            {}
            if spec.takes_text
            else {"inputs": [{"name": n, "datatype": t} for n, t in spec.inputs]}
            if spec.inputs
            else {"inputSize": spec.input_size}
        ),
    }


def _check_config(spec: ModelSpec) -> None:
    """Refuse answers the server would refuse at start-up, before writing anything."""
    for value in (spec.project, spec.bucket, spec.blob_path, spec.image, spec.mlflow_tracking_uri):
        if any(c in value for c in '"\\\n'):
            raise UserError(f"{value!r}: quotes, backslashes and newlines are not allowed")
    try:
        parse_config(_config(spec), source="model config")
    except StartupError as error:
        raise UserError(str(error)) from None


def _check_rendered(chart: Path, spec: ModelSpec) -> None:
    """The written files must read back as the answers (YAML turns `true` or `null` into
    something else)."""
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    values = yaml.safe_load((chart / "values.yaml").read_text())
    if meta.get("name") != spec.name or values.get("config") != _config(spec):
        raise UserError(f"{spec.name!r} cannot be written as plain YAML; pick another name")
    if values.get("env") != _env(spec):
        raise UserError(f"{spec.mlflow_tracking_uri!r} cannot be written as plain YAML")
    if values.get("image", {}).get("repository") != spec.image:
        raise UserError(f"image {spec.image!r} cannot be written as plain YAML")


def _refuse_taken_path(repo: Repo, name: str) -> None:
    """Each model owns its ingress path; refuse a name whose /<name> another chart uses."""
    wanted = f"/{name}"
    for other in repo.model_names():
        values = repo.charts_dir / other / "values.yaml"
        try:
            ingress = (yaml.safe_load(values.read_text()) or {}).get("ingress") or {}
        except (OSError, yaml.YAMLError):
            continue
        if str(ingress.get("path") or f"/{other}").rstrip("/") == wanted:
            raise UserError(f"ingress path {wanted} is already used by model {other!r}")
