"""`mda new-model NAME`: a new model chart in k8s_dev/NAME, from charts_template/starter.

The starter's Chart.yaml and values.yaml are written with the model's answers filled in; its
templates/ and values.schema.json, the same in every model chart, are copied as they are. The
chart is written to a temporary sibling directory and renamed into place, so a failure leaves
nothing behind.
"""

import json
import shutil
import tempfile
from collections.abc import Callable
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
    refuse_existing_chart(repo, spec.name)
    refuse_taken_name(repo, spec.name)
    check_config(spec)
    return write_chart(
        repo, spec.name, _replacements(repo, spec), lambda c: _check_rendered(c, spec)
    )


def write_chart(
    repo: Repo, name: str, replacements: dict[str, str], check: Callable[[Path], None]
) -> Path:
    """k8s_dev/<name> from the starter with `replacements` filled in, `check`ed before it is
    moved into place (a failure leaves nothing behind)."""
    refuse_existing_chart(repo, name)
    target = repo.charts_dir / name
    repo.charts_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=repo.charts_dir))
    try:
        chart = staging / name
        chart.mkdir()
        for file in _RENDERED:
            text = (repo.starter_dir / file).read_text()
            (chart / file).write_text(_render(text, replacements))
        for file in SHARED:
            (chart / file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo.starter_dir / file, chart / file)
        check(chart)
        chart.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _replacements(repo: Repo, spec: ModelSpec) -> dict[str, str]:
    section = (repo.starter_dir / "config-model.yaml").read_text().rstrip("\n")
    return {
        "<CONFIG_SECTION>": section,
        "<DESCRIPTION>": f"the {spec.name} model ({spec.job}, {spec.describe_inputs()})",
        **common_replacements(repo, spec.name, spec.image),
        "<JOB>": spec.job,
        "<INPUT_SCHEMA>": _input_schema(spec),
        "<MODEL_TYPE>": spec.model_type,
        "<MODEL_SOURCE>": _indented(_model_source(spec), "    "),
        "<ENV>": json.dumps(model_env(spec)),
        "<IMAGE_VARIANT>": spec.image_variant,
    }


def common_replacements(repo: Repo, name: str, image: str) -> dict[str, str]:
    """What every chart fills in, a model's or a pool's (after its config section)."""
    return {"<CHARTNAME>": name, "<IMAGE>": image, "<APP_VERSION>": package_version(repo)}


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


def model_env(spec: ModelSpec) -> dict[str, str]:
    return {"MLFLOW_TRACKING_URI": spec.mlflow_tracking_uri} if spec.mlflow_uri else {}


def _indented(mapping: dict[str, Any], indent: str) -> str:
    """One `key: value` line per entry, values as JSON (valid YAML, strings quoted)."""
    return "\n".join(f"{indent}{key}: {json.dumps(value)}" for key, value in mapping.items())


def _render(text: str, replacements: dict[str, str]) -> str:
    for placeholder, value in replacements.items():
        text = text.replace(placeholder, value)
    return text


def model_config(spec: ModelSpec) -> dict[str, Any]:
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


def check_config(spec: ModelSpec) -> None:
    """Refuse answers the server would refuse at start-up, before writing anything."""
    for value in (spec.project, spec.bucket, spec.blob_path, spec.image, spec.mlflow_tracking_uri):
        if any(c in value for c in '"\\\n'):
            raise UserError(f"{value!r}: quotes, backslashes and newlines are not allowed")
    try:
        parse_config(model_config(spec), source="model config")
    except StartupError as error:
        raise UserError(str(error)) from None


def _check_rendered(chart: Path, spec: ModelSpec) -> None:
    """The written files must read back as the answers (YAML turns `true` or `null` into
    something else)."""
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    values = yaml.safe_load((chart / "values.yaml").read_text())
    if meta.get("name") != spec.name or values.get("config") != model_config(spec):
        raise UserError(f"{spec.name!r} cannot be written as plain YAML; pick another name")
    if values.get("env") != model_env(spec):
        raise UserError(f"{spec.mlflow_tracking_uri!r} cannot be written as plain YAML")
    if values.get("image", {}).get("repository") != spec.image:
        raise UserError(f"image {spec.image!r} cannot be written as plain YAML")


def refuse_existing_chart(repo: Repo, name: str) -> None:
    target = repo.charts_dir / name
    if target.exists():
        raise UserError(f"model {name!r} already exists: {target}")


def refuse_taken_name(repo: Repo, name: str) -> None:
    """Each model owns its path `/<name>`: refuse a name whose path a chart already routes
    (a model chart's ingress path, or a pool's model)."""
    wanted = f"/{name}"
    for other in repo.model_names():
        values_file = repo.charts_dir / other / "values.yaml"
        try:
            values = yaml.safe_load(values_file.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        config = values.get("config") or {}
        if isinstance(config.get("models"), list):
            paths = [f"/{m.get('name')}" for m in config["models"] if isinstance(m, dict)]
            where = f"pool {other!r}"
        else:
            ingress = values.get("ingress") or {}
            paths = [str(ingress.get("path") or f"/{other}").rstrip("/")]
            where = f"model {other!r}"
        if wanted in paths:
            raise UserError(f"path {wanted} is already used by {where}")
