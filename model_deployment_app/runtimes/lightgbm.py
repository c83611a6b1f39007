"""LightGBM: `LGBMClassifier` / `LGBMRegressor` pickles, and a Booster's text file
(`modelType: lightgbm`, `booster.save_model("model.txt")`). LightGBM's own default takes every
core of the node; here it takes the worker's share of the container's CPU budget."""

from pathlib import Path
from typing import Any

import numpy as np

from model_deployment_app.errors import StartupError
from model_deployment_app.runtimes import LoadContext, Runtime, unreadable
from model_deployment_app.runtimes.labels import Classes, class_labels, two_columns
from model_deployment_app.runtimes.threads import use_threads

_CLASSIFIERS = ("binary", "multiclass", "multiclassova", "cross_entropy", "xentropy")


class BoosterModel(Classes):
    """A LightGBM Booster behind the estimator interface."""

    def __init__(self, booster: Any, classes: np.ndarray | None) -> None:
        self.booster = booster
        self.classes = classes
        self.threads = 1
        self.n_features_in_ = int(booster.num_feature())

    def predict_proba(self, features: Any) -> np.ndarray:
        return two_columns(self.booster.predict(features, num_threads=self.threads))

    def predict(self, features: Any) -> np.ndarray:
        if self.classes is not None:
            return self.classes[self.predict_proba(features).argmax(axis=1)]
        return self.booster.predict(features, num_threads=self.threads)


class LightGBMRuntime(Runtime):
    platform = "lightgbm"
    extra = "lightgbm"
    image_variant = "lightgbm"
    mlflow_flavor = "lightgbm"
    suffixes = (".txt", ".lgb", ".model")

    library = "lightgbm"

    def load(self, path: Path, context: LoadContext) -> Any:
        lightgbm = self.import_library()
        file = self.native_file(path)
        if file.suffix == ".pkl":  # MLflow's lightgbm flavour pickles scikit-learn models
            from model_deployment_app.runtimes.sklearn import load_file

            return load_file(file, "pkl")
        try:
            booster = lightgbm.Booster(model_file=str(file))
        except Exception as error:
            raise unreadable(file, "a LightGBM model file", error) from None
        # The file's objective line, e.g. "binary sigmoid:1": its first word.
        name = (str((booster.params or {}).get("objective", "")).split() or ["unknown"])[0]
        classifier = name in _CLASSIFIERS
        if (context.config.job == "classification") != classifier:
            raise StartupError(
                f"job is {context.config.job} but {file.name} has the objective {name} "
                f"({'a classifier' if classifier else 'not a classifier'})"
            )
        classes = None
        if classifier:
            count = max(2, int(booster.num_model_per_iteration()))
            classes = class_labels(None, context.config.classes, count)
        return BoosterModel(booster, classes)

    def adopt(self, estimator: Any, context: LoadContext) -> Any:
        workers = context.settings.server.workers
        if isinstance(estimator, BoosterModel):
            apply = lambda n: setattr(estimator, "threads", n)  # noqa: E731
        else:
            apply = lambda n: estimator.set_params(n_jobs=n)  # noqa: E731
        use_threads(apply, context.threads, workers)
        return estimator

    def feature_names(self, estimator: Any) -> list[str] | None:
        if not isinstance(estimator, BoosterModel):
            return super().feature_names(estimator)
        names = [str(n) for n in estimator.booster.feature_name()]
        return None if names == [f"Column_{i}" for i in range(len(names))] else names


RUNTIME = LightGBMRuntime()
