"""XGBoost: `XGBClassifier` / `XGBRegressor` pickles, and XGBoost's own files (`modelType:
xgboost`: `.json`, `.ubj`, or the older binary format), loaded by XGBoost's scikit-learn
classes, so a binary objective answers two probability columns as `predict_proba` does.

Served through the Booster's `inplace_predict` where the objective answers probabilities (or
values) itself, which is what the scikit-learn classes call, less a third of their per-call
cost; trees past an early stop's best iteration are left out, as those classes do. XGBoost
computes in float32; its threads are the worker's share of the CPU budget."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from model_deployment_app.errors import StartupError
from model_deployment_app.runtimes import LoadContext, Runtime, unreadable
from model_deployment_app.runtimes.labels import Classes, Relabelled, class_labels, two_columns
from model_deployment_app.runtimes.threads import use_threads

# Objectives whose predictions are the probabilities predict_proba gives.
_PROBABILITIES = ("binary:logistic", "multi:softprob")


class BoosterModel(Classes):
    """An XGBoost Booster behind the estimator interface."""

    def __init__(self, booster: Any, classes: np.ndarray | None) -> None:
        self.booster = booster
        self.classes = classes
        self.n_features_in_ = int(booster.num_features())
        names = booster.feature_names
        if names:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        best = booster.attr("best_iteration")
        self.iterations = (0, int(best) + 1) if best is not None else (0, 0)

    def _scores(self, features: Any) -> np.ndarray:
        return self.booster.inplace_predict(
            features, iteration_range=self.iterations, validate_features=False
        )

    def predict_proba(self, features: Any) -> np.ndarray:
        return two_columns(self._scores(features))

    def predict(self, features: Any) -> np.ndarray:
        if self.classes is not None:
            return self.classes[self.predict_proba(features).argmax(axis=1)]
        return self._scores(features)

    def use_threads(self, threads: int) -> None:
        self.booster.set_param({"nthread": threads})


def _objective(booster: Any) -> str:
    try:
        return str(json.loads(booster.save_config())["learner"]["objective"]["name"])
    except (ValueError, KeyError, TypeError):
        return "unknown"


class XGBoostRuntime(Runtime):
    platform = "xgboost"
    extra = "xgboost"
    image_variant = "xgboost"
    float32 = True
    mlflow_flavor = "xgboost"
    suffixes = (".json", ".ubj", ".xgb", ".bst", ".model")

    library = "xgboost"

    def load(self, path: Path, context: LoadContext) -> Any:
        xgboost = self.import_library()
        file = self.native_file(path)
        job = context.config.job
        estimator = xgboost.XGBClassifier() if job == "classification" else xgboost.XGBRegressor()
        try:
            estimator.load_model(str(file))
        except Exception as error:  # XGBoostError names the parser's complaint
            raise unreadable(file, "an XGBoost model file", error) from None
        if job == "classification" and int(getattr(estimator, "n_classes_", 0) or 0) < 2:
            raise StartupError(
                f"job is classification but {file.name} is not a classifier "
                f"(objective {_objective(estimator.get_booster())})"
            )
        return estimator

    def adopt(self, estimator: Any, context: LoadContext) -> Any:
        """The estimator as a `BoosterModel` where its objective allows, its labels the
        config's `classes` where given (a file records indexes only)."""
        configured = context.config.classes
        booster = estimator.get_booster()
        served: Any = estimator
        if context.config.job == "regression":
            served = BoosterModel(booster, None)
        elif _objective(booster) in _PROBABILITIES:
            count = len(estimator.classes_)
            served = BoosterModel(booster, class_labels(estimator.classes_, configured, count))
        elif configured is not None:
            served = Relabelled(estimator, class_labels(None, configured, len(estimator.classes_)))
        workers = context.settings.server.workers
        apply: Callable[[int], Any] = (
            served.use_threads
            if isinstance(served, BoosterModel)
            else lambda n: estimator.set_params(n_jobs=n)
        )
        use_threads(apply, context.threads, workers)
        return served


RUNTIME = XGBoostRuntime()
