"""The model configuration: the ConfigMap's `config.yaml` (CONTRACT section 2).

One pydantic model, camelCase keys, unknown keys refused, so a typo is named at start-up.
"""

from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from model_deployment_app.errors import StartupError
from model_deployment_app.runtimes import MODEL_TYPES, Runtime, for_model_type

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]
RefreshSeconds = Annotated[float | None, Field(alias="refreshSeconds", default=None, ge=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class GcsSource(_Strict):
    """The artifact is the object `blobDir` in bucket `bucketName` of project `projectName`;
    a `blobDir` ending in `/` means the newest object under that prefix."""

    method: Literal["GCS"]
    project_name: str = Field(alias="projectName", min_length=1)
    bucket_name: str = Field(alias="bucketName", min_length=1)
    blob_dir: str = Field(alias="blobDir", min_length=1)
    sha256: Sha256 | None = None
    refresh_seconds: RefreshSeconds
    """Poll for a new version this often (the object's generation changing); off when unset."""


class LocalSource(_Strict):
    """The artifact is a file on the pod's filesystem (a volume, or baked in for demos)."""

    method: Literal["LOCAL"]
    path: str = Field(min_length=1)
    sha256: Sha256 | None = None
    refresh_seconds: RefreshSeconds


class MlflowSource(_Strict):
    """A model version in an MLflow Model Registry (`MLFLOW_TRACKING_URI`): a fixed version,
    `models:/<name>/<version>`, or the one an alias points at, `models:/<name>@<alias>`."""

    method: Literal["MLFLOW"]
    model_uri: str = Field(alias="modelUri", pattern=r"^models:/[^/@\s]+(/[0-9]+|@[\w.-]+)$")
    sha256: Sha256 | None = None
    refresh_seconds: RefreshSeconds


ModelSource = Annotated[GcsSource | LocalSource | MlflowSource, Field(discriminator="method")]


Datatype = Literal[
    "BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip
"""The Open Inference Protocol's tensor datatypes; BYTES holds strings."""


class InputSpec(_Strict):
    """One named, typed column of the model's input (a DataFrame column, or the text)."""

    name: str = Field(min_length=1, max_length=256)
    datatype: Datatype


class ModelConfig(_Strict):
    """What to serve and how: the whole of `config.yaml`."""

    name: str = Field(default="model", pattern=r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
    model_type: str = Field(alias="modelType")
    """The artifact's format, which names the runtime that loads it (`runtimes.MODEL_TYPES`)."""
    job: Literal["classification", "regression"]
    model: ModelSource
    input_size: int | None = Field(default=None, alias="inputSize", gt=0, le=1_000_000)
    inputs: tuple[InputSpec, ...] | None = Field(default=None, min_length=1, max_length=10_000)
    examples: tuple[Any, ...] | None = Field(default=None, min_length=1, max_length=20)
    """A few inputs the playground offers as buttons: rows of numbers, records, or texts."""
    classes: tuple[StrictStr | StrictInt, ...] | None = Field(
        default=None, min_length=2, max_length=100_000
    )
    """The class labels of a classifier whose file records none, in column order."""

    @property
    def runtime(self) -> Runtime:
        """The runtime that loads this `modelType`."""
        return for_model_type(self.model_type)

    @property
    def is_folder(self) -> bool:
        """The artifact is a folder (a transformers `save_pretrained` folder), not a file."""
        return self.runtime.folder

    @field_validator("model_type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in MODEL_TYPES:
            raise ValueError("expected one of " + ", ".join(MODEL_TYPES))
        return value

    @model_validator(mode="after")
    def _classes_fit(self) -> "ModelConfig":
        if self.classes is not None:
            if self.job != "classification":
                raise ValueError("classes applies to job classification only")
            if len(set(self.classes)) != len(self.classes):
                raise ValueError("classes: repeated labels")
        return self

    @model_validator(mode="after")
    def _examples_fit(self) -> "ModelConfig":
        for index, example in enumerate(self.examples or ()):
            if self.input_size is not None:
                fits = isinstance(example, list) and len(example) == self.input_size
                wanted = f"a list of {self.input_size} numbers"
            elif self.inputs is not None and len(self.inputs) > 1:
                fits = isinstance(example, dict) and set(example) == {i.name for i in self.inputs}
                wanted = "a record of the inputs (" + ", ".join(i.name for i in self.inputs) + ")"
            else:
                fits = isinstance(example, str)
                wanted = "a text"
            if not fits:
                raise ValueError(f"examples[{index}]: expected {wanted}")
        return self

    @model_validator(mode="after")
    def _one_input_form(self) -> "ModelConfig":
        if self.runtime.takes_text:
            kind = self.model_type
            if self.input_size is not None:
                raise ValueError(f"inputSize does not apply to {kind} models (they take text)")
            if self.inputs is not None and (
                len(self.inputs) != 1 or self.inputs[0].datatype != "BYTES"
            ):
                raise ValueError(f"inputs: a {kind} model takes one BYTES input (the text)")
            return self
        if (self.input_size is None) == (self.inputs is None):
            raise ValueError(
                "set exactly one of inputSize (rows of numbers) and inputs (named columns)"
            )
        if self.inputs is not None:
            names = [spec.name for spec in self.inputs]
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"inputs: repeated column name(s) {', '.join(repeated)}")
        return self


# Names a pool's model may not take: its path `/<name>` would hide one of the server's own.
RESERVED_NAMES = frozenset(
    {"v2", "predict", "metrics", "docs", "redoc", "openapi.json", "playground"}
)


class PoolConfig(_Strict):
    """A model pool: many models in one server, each served under `/<name>` (CONTRACT 3)."""

    models: tuple[ModelConfig, ...] = Field(min_length=1, max_length=10_000)

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: tuple[ModelConfig, ...]) -> tuple[ModelConfig, ...]:
        names = [m.name for m in models]
        repeated = sorted(name for name, count in Counter(names).items() if count > 1)
        if repeated:
            raise ValueError(f"repeated model name(s) {', '.join(repeated)}: each needs its own")
        reserved = sorted(set(names) & RESERVED_NAMES)
        if reserved:
            raise ValueError(
                f"model name(s) {', '.join(reserved)} would hide the server's own routes"
            )
        return models


ServedConfig = ModelConfig | PoolConfig


def _describe(error: ValidationError) -> str:
    """One line naming every offending key, e.g. `model.bucketName: Field required`."""
    parts = []
    for item in error.errors():
        # Drop the discriminator tag pydantic inserts into union locations.
        loc = [str(p) for p in item["loc"] if p not in ("GCS", "LOCAL", "MLFLOW")]
        key = ".".join(loc) or "config"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] == "value_error":  # our own validators: drop pydantic's prefix
            message = str(item.get("ctx", {}).get("error", message))
        parts.append(f"{key}: {message}")
    return "; ".join(parts)


def parse_config(data: Any, source: str = "config") -> ModelConfig:
    """Validate an already-parsed document; raise StartupError with one line on failure."""
    if not isinstance(data, dict):
        raise StartupError(f"{source}: expected a mapping of keys, got {type(data).__name__}")
    try:
        return ModelConfig.model_validate(data)
    except ValidationError as error:
        raise StartupError(f"{source}: {_describe(error)}") from None


def parse_served(data: Any, source: str = "config") -> ServedConfig:
    """A pool's config (top level `models:`), or one model's."""
    if not (isinstance(data, dict) and "models" in data):
        return parse_config(data, source)
    try:
        return PoolConfig.model_validate(data)
    except ValidationError as error:
        raise StartupError(f"{source}: {_describe(error)}") from None


def load_config(path: str | Path) -> ServedConfig:
    """Read and validate `config.yaml`: one model's, or a pool's."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise StartupError(
            f"cannot read config {path}: {error.strerror} (MDA_CONFIG_PATH names the config file)"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise StartupError(f"config {path} is not valid YAML: {error}".replace("\n", " ")) from None
    source = f"config {path}"
    if isinstance(data, dict) and isinstance(data.get("models"), list):
        entries = [_relative_to(entry, path.parent) for entry in data["models"]]
        return parse_served({**data, "models": entries}, source)
    return parse_served(_relative_to(data, path.parent), source)


def _relative_to(data: Any, folder: Path) -> Any:
    """A relative LOCAL `path` is read from the config file's folder, wherever the server
    was started (the folder is then named in any error about it)."""
    model = data.get("model") if isinstance(data, dict) else None
    if isinstance(model, dict) and model.get("method") == "LOCAL":
        local = model.get("path")
        if isinstance(local, str) and local and not Path(local).is_absolute():
            return {**data, "model": {**model, "path": str(folder.absolute() / local)}}
    return data
