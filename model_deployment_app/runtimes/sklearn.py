"""scikit-learn: estimators and Pipelines saved with pickle, joblib or skops (`modelType`
pkl, joblib, skops), and MLflow models of the sklearn flavour.

pickle and joblib run code on load, so serve them only from buckets you control and pin
`sha256`. skops loads without running code, and only with the types listed here (plus those
an operator names in `MDA_SKOPS_TRUSTED_TYPES`), never the list the file itself proposes.
A pickle may hold another family's estimator (a PyTorchEstimator, an XGBClassifier): that
family's runtime then serves it (`runtimes.serving`).
"""

import pickle
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model_deployment_app.errors import StartupError
from model_deployment_app.runtimes import LoadContext, Runtime

if TYPE_CHECKING:
    from model_deployment_app.compiling import Compilation
    from model_deployment_app.schema import InputSchema

# Data-only internals of scikit-learn estimators that skops does not trust by default.
# (skops already trusts scikit-learn's estimators, numpy and builtin containers.)
SKOPS_TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss.loss.AbsoluteError",
    "sklearn._loss.loss.HalfPoissonLoss",
    "sklearn.ensemble._gb.LeastSquaresError",
    "collections.OrderedDict",
)

# Estimators that cast their input to float32: a finite float64 past its range is their error.
_FLOAT32_MODELS = (
    "DecisionTreeClassifier", "DecisionTreeRegressor", "ExtraTreeClassifier",
    "ExtraTreeRegressor", "RandomForestClassifier", "RandomForestRegressor",
    "ExtraTreesClassifier", "ExtraTreesRegressor", "GradientBoostingClassifier",
    "GradientBoostingRegressor", "IsolationForest",
)  # fmt: skip

_SUFFIXES = {"joblib": ".joblib", "pkl": ".pkl", "skops": ".skops"}


def _load_skops(path: Path, extra_trusted: tuple[str, ...]) -> Any:
    import skops.io as sio

    trusted = [*SKOPS_TRUSTED_TYPES, *extra_trusted]
    untrusted = [t for t in sio.get_untrusted_types(file=path) if t not in trusted]
    if untrusted:
        raise StartupError(
            f"skops artifact {path.name} needs types that are not trusted: {', '.join(untrusted)}"
            " (if you vouch for them, list them in MDA_SKOPS_TRUSTED_TYPES)"
        )
    return sio.load(path, trusted=trusted)


def load_pickle(path: Path) -> Any:
    with path.open("rb") as stream:
        return pickle.load(stream)


def _load_joblib(path: Path) -> Any:
    import joblib

    return joblib.load(path)


def load_file(path: Path, model_type: str, skops_trusted: tuple[str, ...] = ()) -> Any:
    """The object saved at `path` as `model_type` (pkl, joblib or skops)."""
    try:
        if model_type == "skops":
            return _load_skops(path, skops_trusted)
        if model_type == "joblib":
            return _load_joblib(path)
        if model_type == "pkl":
            return load_pickle(path)
    except StartupError:
        raise
    except ModuleNotFoundError as error:
        raise StartupError(
            f"cannot load {path.name} as {model_type}: it needs the module '{error.name}'"
            " (install the extra of the model's family: torch, xgboost, lightgbm, catboost)"
        ) from None
    except (EOFError, pickle.UnpicklingError, KeyError, IndexError, zipfile.BadZipFile) as error:
        # What a truncated or foreign file raises; the bare message ("KeyError: 45") says little.
        raise StartupError(
            f"{path.name} is not a valid {model_type} file (truncated or corrupt?): "
            f"{type(error).__name__}: {error}"
        ) from None
    except Exception as error:
        raise StartupError(
            f"cannot load {path.name} as {model_type}: {type(error).__name__}: {error}"
        ) from None
    raise StartupError(f"unknown modelType {model_type!r}")


def _load_model_directory(path: Path, model_type: str) -> Any:
    """An MLflow model directory: its scikit-learn flavour, or, for a plain artifact logged
    as is, the one joblib / pickle / skops file of the configured `modelType` in it."""
    from model_deployment_app.mlflow_registry import flavors_of

    flavors = flavors_of(path)
    if flavors is not None:
        if "sklearn" not in flavors:
            raise StartupError(
                f"the MLflow model has only the flavors {', '.join(flavors) or 'none'}: log it "
                "with mlflow.sklearn, set the modelType of its flavour, or log the "
                "joblib/pickle/skops file itself as the model's artifact"
            )
        try:
            import mlflow.sklearn

            return mlflow.sklearn.load_model(str(path))
        except Exception as error:
            raise StartupError(
                f"cannot load the MLflow model in {path.name}: {type(error).__name__}: {error}"
            ) from None
    suffix = _SUFFIXES[model_type]
    candidates = sorted(p for p in path.rglob(f"*{suffix}") if p.is_file())
    if len(candidates) != 1:
        found = ", ".join(p.name for p in path.rglob("*") if p.is_file()) or "nothing"
        raise StartupError(
            f"expected one {suffix} file (modelType {model_type}) in the MLflow model, "
            f"found {found}"
        )
    return candidates[0]


def skops_trusted(context: LoadContext) -> tuple[str, ...]:
    listed = context.settings.server.skops_trusted_types.split(",")
    return tuple(t.strip() for t in listed if t.strip())


class SklearnRuntime(Runtime):
    platform = "sklearn"
    unpickles = True

    def load(self, path: Path, context: LoadContext) -> Any:
        model_type = context.config.model_type
        if path.is_dir():
            found = _load_model_directory(path, model_type)
            if not isinstance(found, Path):
                return found
            path = found
        return load_file(path, model_type, skops_trusted(context))

    def computes_in_float32(self, estimator: Any) -> bool:
        return type(estimator).__name__ in _FLOAT32_MODELS

    def compilation(
        self, estimator: Any, schema: "InputSchema", context: LoadContext, mode: str
    ) -> "Compilation":
        from model_deployment_app.runtimes import sklearn_compiled

        return sklearn_compiled.compilation(estimator, schema, context, mode)

    def preload_compilation(self) -> None:
        from model_deployment_app.runtimes import sklearn_compiled

        sklearn_compiled.preload()


RUNTIME = SklearnRuntime()
