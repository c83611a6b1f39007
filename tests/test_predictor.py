"""A loaded model knows its job, classes and width, and refuses what cannot serve."""

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

from model_deployment_app.config import parse_config
from model_deployment_app.errors import StartupError
from model_deployment_app.predictor import PREDICT, PREDICT_PROBA, prepare


def config(job: str, input_size: int) -> object:
    return parse_config(
        {"modelType": "joblib", "job": job, "inputSize": input_size,
         "model": {"method": "LOCAL", "path": "/m"}}
    )  # fmt: skip


def test_classifier_exposes_classes_in_model_order(iris_pipeline: Pipeline) -> None:
    model = prepare(iris_pipeline, config("classification", 4), "a" * 64)
    assert model.classes == list(iris_pipeline.classes_)
    assert model.outputs == (PREDICT_PROBA, PREDICT)
    assert model.output_width == 3


def test_multi_output_regressor_reports_its_width(multi_output_regressor: object) -> None:
    model = prepare(multi_output_regressor, config("regression", 10), "a" * 64)
    assert (model.outputs, model.output_width, model.classes) == ((PREDICT,), 3, None)


def test_classification_without_predict_proba_is_refused() -> None:
    X, y = load_iris(return_X_y=True)
    with pytest.raises(StartupError, match="has no predict_proba"):
        prepare(SVC().fit(X, y), config("classification", 4), "a" * 64)


def test_input_size_contradicting_n_features_in_is_refused(iris_pipeline: Pipeline) -> None:
    with pytest.raises(StartupError, match=r"inputSize is 5 but the model .* expects 4"):
        prepare(iris_pipeline, config("classification", 5), "a" * 64)


def test_an_artifact_without_predict_is_refused() -> None:
    with pytest.raises(StartupError, match="has no predict method"):
        prepare({"not": "a model"}, config("regression", 2), "a" * 64)


def test_regression_on_a_model_without_width_still_checks_by_calling_it() -> None:
    X = np.random.default_rng(0).normal(size=(20, 3))
    model = LinearRegression().fit(X, X.sum(axis=1))
    del model.n_features_in_
    with pytest.raises(StartupError, match="fails on rows of inputSize=5"):
        prepare(model, config("regression", 5), "a" * 64)
