"""Turn an artifact file into an estimator: a dispatch on `modelType`.

pickle and joblib run code on load, so serve them only from buckets you control and pin
`sha256`. skops loads without running code, and only with the types listed here (plus those
an operator names in `MDA_SKOPS_TRUSTED_TYPES`), never the list the file itself proposes.
"""

import pickle
import zipfile
from pathlib import Path
from typing import Any

from model_deployment_app.errors import StartupError
from model_deployment_app.settings import TextModelSettings

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


def _load_pickle(path: Path) -> Any:
    with path.open("rb") as stream:
        return pickle.load(stream)


def _load_joblib(path: Path) -> Any:
    import joblib

    return joblib.load(path)


def load_estimator(
    path: Path,
    model_type: str,
    skops_trusted: tuple[str, ...] = (),
    *,
    job: str = "classification",
    text: TextModelSettings | None = None,
    workers: int = 1,
) -> Any:
    """Load the estimator saved at `path` as `model_type` (pkl, joblib or skops; for
    transformers, a folder: see `loading_transformers`); any other directory is an MLflow
    model (see `mlflow_registry.load_model_directory`)."""
    if model_type == "transformers":
        from model_deployment_app.loading_transformers import load_text_classifier

        return load_text_classifier(path, job, text or TextModelSettings(), workers)
    if path.is_dir():
        from model_deployment_app.mlflow_registry import load_model_directory

        try:
            found = load_model_directory(path, model_type)
        except StartupError:
            raise
        except Exception as error:
            raise StartupError(
                f"cannot load the MLflow model in {path.name}: {type(error).__name__}: {error}"
            ) from None
        if not isinstance(found, Path):
            return found
        path = found
    try:
        if model_type == "skops":
            return _load_skops(path, skops_trusted)
        if model_type == "joblib":
            return _load_joblib(path)
        if model_type == "pkl":
            return _load_pickle(path)
    except StartupError:
        raise
    except ModuleNotFoundError as error:
        raise StartupError(
            f"cannot load {path.name} as {model_type}: it needs the module '{error.name}'"
            " (PyTorch models need the torch extra)"
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
