"""Model families, one runtime each: what turns an artifact into something that serves.

Every family (scikit-learn, PyTorch, transformers, XGBoost, LightGBM, CatBoost, ONNX) is one
module here with one `RUNTIME`, an instance of `Runtime`: how it loads its files, the V2
platform name, the input it takes, whether its quick calls may run on the event loop, how
many threads it uses. The rest of the server asks the runtime and never names a family.
A runtime's library is imported only when its model is loaded, so the plain image carries
none of them.

Adding a family: one module with a `RUNTIME`, and its line in `_MODULES` (its `modelType`
values) or `_PICKLED` (it may arrive pickled, as an estimator of its own).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from model_deployment_app.errors import StartupError

if TYPE_CHECKING:
    from model_deployment_app.compiling import Compilation
    from model_deployment_app.config import ModelConfig
    from model_deployment_app.schema import InputSchema
    from model_deployment_app.settings import Settings

# modelType -> the module of the runtime that loads it.
_MODULES: dict[str, str] = {
    "pkl": "sklearn",
    "joblib": "sklearn",
    "skops": "sklearn",
    "transformers": "transformers",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "catboost": "catboost",
    "onnx": "onnx",
}
# Families whose estimators may arrive pickled (modelType pkl, joblib, skops): the first that
# claims the loaded object serves it; scikit-learn serves everything else.
_PICKLED: tuple[str, ...] = ("pytorch", "xgboost", "lightgbm", "catboost")

MODEL_TYPES: tuple[str, ...] = tuple(_MODULES)


@dataclass(frozen=True)
class LoadContext:
    """What a runtime may need while loading: the model's config, the server's settings, and
    the threads each worker may use."""

    config: ModelConfig
    settings: Settings

    @property
    def threads(self) -> int:
        """Threads per worker: the container's CPU budget divided among the workers."""
        from model_deployment_app.runtimes.threads import threads_per_worker

        return threads_per_worker(self.settings.server.workers)


class Runtime:
    """One model family. Subclasses set the facts and override what differs."""

    platform: str = ""
    """The V2 metadata's platform (e.g. sklearn, xgboost)."""
    extra: str | None = None
    """The package extra its library comes with (`pip install 'model-deployment-app[...]'`)."""
    image_variant: str = ""
    """The image tag suffix that carries its library ("" for the plain image)."""
    folder: bool = False
    """Its artifact is a folder, not a file."""
    takes_text: bool = False
    """It takes one text per row (neither inputSize nor columns)."""
    inline: bool = True
    """A quick call may run on the event loop (see `batching`): false where the library keeps
    per-thread state (torch's thread pools), so its calls stay on the one model thread."""
    float32: bool = False
    """It computes in float32: a finite float64 beyond float32's range is refused as input."""
    mlflow_flavor: str | None = None
    """The MLflow flavour whose `data` file is this family's native file."""
    suffixes: tuple[str, ...] = ()
    """Its native files' suffixes (to find the one file of a plain MLflow artifact)."""
    unpickles: bool = False
    """It loads pickles, whose objects may be any family's (see `serving`)."""
    library: str | None = None
    """The top-level module of its library: its pickled objects' classes live there."""

    def load(self, path: Path, context: LoadContext) -> Any:
        """The artifact at `path` as an object with `predict` (and, for classifiers,
        `predict_proba` and `classes_`)."""
        raise StartupError(f"{self.platform} models are loaded from pickles, not native files")

    def native_file(self, path: Path) -> Path:
        """The file to load: `path`, or the native file inside an MLflow model directory."""
        if not path.is_dir():
            return path
        from model_deployment_app.mlflow_registry import flavor_file

        return flavor_file(path, self.mlflow_flavor or self.platform, self.suffixes)

    def claims(self, estimator: Any) -> bool:
        """Whether a pickled object is this family's: its class is the library's."""
        return self.library is not None and type(estimator).__module__.split(".")[0] == (
            self.library
        )

    def import_library(self) -> Any:
        """The family's library, imported; else the one line naming the extra to install."""
        assert self.library is not None
        try:
            return importlib.import_module(self.library)
        except ImportError as error:
            raise self.missing_library(error.name or self.library) from None

    def adopt(self, estimator: Any, context: LoadContext) -> Any:
        """A loaded (or unpickled) estimator made ready to serve: its threads set, say."""
        return estimator

    def feature_count(self, estimator: Any) -> int | None:
        """How many features a row has, where the estimator records it."""
        width = getattr(estimator, "n_features_in_", None)
        return int(width) if isinstance(width, int | np.integer) else None

    def feature_names(self, estimator: Any) -> list[str] | None:
        """The column names it was trained with, where it records them."""
        names = getattr(estimator, "feature_names_in_", None)
        return None if names is None else [str(n) for n in names]

    def computes_in_float32(self, estimator: Any) -> bool:
        return self.float32

    def compilation(
        self, estimator: Any, schema: InputSchema, context: LoadContext, mode: str
    ) -> Compilation | None:
        """The compiled engines that may answer for `estimator`, and the rows to verify them
        on (see `compiling`); None: the family has none. Raises `compiling.NotCompiled`."""
        return None

    def preload_compilation(self) -> None:
        """Import what `compilation` needs now, while the model loads: not in the background
        while requests are served, and before any fork, so workers share its pages."""

    def missing_library(self, name: str) -> StartupError:
        """The one line for a model whose library is not installed."""
        variant = self.image_variant or self.extra
        return StartupError(
            f"{self.platform} models need the {self.extra} extra ({name} is missing): from a "
            f"checkout of the repository, pip install -e '.[{self.extra}]', or the image built "
            f"with FAMILIES={self.extra} (tag <version>-{variant})"
        )


def unreadable(file: Path, what: str, error: Exception) -> StartupError:
    """The one line for a file its library cannot read."""
    text = str(error).strip()
    first = text.splitlines()[0][:300] if text else ""
    return StartupError(f"{file.name} is not {what}: {type(error).__name__}: {first}")


def _runtime(module: str) -> Runtime:
    found: Runtime = importlib.import_module(f"{__name__}.{module}").RUNTIME
    return found


def for_model_type(model_type: str) -> Runtime:
    """The runtime that loads files of `model_type`."""
    try:
        return _runtime(_MODULES[model_type])
    except KeyError:
        raise StartupError(f"unknown modelType {model_type!r}") from None


def serving(model_type: str, estimator: Any) -> Runtime:
    """The runtime that serves `estimator`, loaded as `model_type`: for a pickle, the family
    whose object it is."""
    runtime = for_model_type(model_type)
    if not runtime.unpickles:
        return runtime
    for module in _PICKLED:
        family = _runtime(module)
        if family.claims(estimator):
            return family
    return runtime


def load(path: Path, context: LoadContext) -> tuple[Any, Runtime]:
    """The artifact at `path`, loaded and adopted by the runtime that serves it."""
    estimator = for_model_type(context.config.model_type).load(path, context)
    runtime = serving(context.config.model_type, estimator)
    return runtime.adopt(estimator, context), runtime
