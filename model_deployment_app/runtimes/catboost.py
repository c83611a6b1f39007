"""CatBoost: `CatBoostClassifier` / `CatBoostRegressor` pickles, and CatBoost's own file
(`modelType: catboost`, `model.save_model("model.cbm")`). CatBoost is no scikit-learn
estimator: its row width is its feature names' count (its `n_features_in_` reads 0 once
loaded), and its `predict` answers a column of labels, given here as one label per row."""

from pathlib import Path
from typing import Any

import numpy as np

from model_deployment_app.errors import StartupError
from model_deployment_app.runtimes import LoadContext, Runtime, unreadable
from model_deployment_app.runtimes.labels import Classes, class_labels
from model_deployment_app.runtimes.threads import use_threads


class CatBoostModel(Classes):
    """A CatBoost model behind the estimator interface, on the worker's threads."""

    def __init__(self, model: Any, classes: np.ndarray | None) -> None:
        self.model = model
        self.classes = classes
        self.threads = 1
        self.n_features_in_ = len(model.feature_names_ or ())

    def predict_proba(self, features: Any) -> np.ndarray:
        return self.model.predict_proba(features, thread_count=self.threads)

    def predict(self, features: Any) -> np.ndarray:
        if self.classes is not None:
            return self.classes[self.predict_proba(features).argmax(axis=1)]
        return np.asarray(self.model.predict(features, thread_count=self.threads))


class CatBoostRuntime(Runtime):
    platform = "catboost"
    extra = "catboost"
    image_variant = "catboost"
    float32 = True
    mlflow_flavor = "catboost"
    suffixes = (".cbm", ".cb")

    library = "catboost"

    def load(self, path: Path, context: LoadContext) -> Any:
        catboost = self.import_library()
        file = self.native_file(path)
        classify = context.config.job == "classification"
        model = catboost.CatBoostClassifier() if classify else catboost.CatBoostRegressor()
        try:
            model.load_model(str(file))
        except Exception as error:
            raise unreadable(file, "a CatBoost model file", error) from None
        return model

    def adopt(self, estimator: Any, context: LoadContext) -> Any:
        classes = None
        if context.config.job == "classification":
            recorded = getattr(estimator, "classes_", None)
            if recorded is None or len(recorded) < 2:
                raise StartupError(
                    f"job is classification but the model ({type(estimator).__name__}) has "
                    "no classes"
                )
            given = context.config.classes
            classes = class_labels(list(recorded), given, len(recorded))
        model = CatBoostModel(estimator, classes)
        workers = context.settings.server.workers
        use_threads(lambda n: setattr(model, "threads", n), context.threads, workers)
        return model

    def feature_names(self, estimator: Any) -> list[str] | None:
        names = [str(n) for n in estimator.model.feature_names_ or ()]
        return None if names == [str(i) for i in range(len(names))] else names


RUNTIME = CatBoostRuntime()
