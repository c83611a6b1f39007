"""Each modelType loads; skops loads only with the explicit trusted list."""

import pickle
from pathlib import Path

import joblib
import numpy as np
import pytest
import skops.io as sio
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from model_deployment_app.errors import StartupError
from model_deployment_app.runtimes.sklearn import load_file


def dump(estimator: object, path: Path, model_type: str) -> Path:
    if model_type == "pkl":
        path.write_bytes(pickle.dumps(estimator))
    elif model_type == "joblib":
        joblib.dump(estimator, path)
    else:
        sio.dump(estimator, path)
    return path


@pytest.mark.parametrize("model_type", ["pkl", "joblib", "skops"])
def test_every_model_type_round_trips(
    model_type: str, tmp_path: Path, iris_pipeline: Pipeline, iris: tuple
) -> None:
    path = dump(iris_pipeline, tmp_path / f"m.{model_type}", model_type)
    loaded = load_file(path, model_type)
    X, _ = iris
    np.testing.assert_array_equal(loaded.predict_proba(X), iris_pipeline.predict_proba(X))


def test_skops_tree_models_load_with_the_built_in_trusted_list(
    tmp_path: Path, gb_regressor: GradientBoostingRegressor, diabetes: tuple
) -> None:
    loaded = load_file(dump(gb_regressor, tmp_path / "m.skops", "skops"), "skops")
    X, _ = diabetes
    np.testing.assert_array_equal(loaded.predict(X), gb_regressor.predict(X))


def custom_feature(x: np.ndarray) -> np.ndarray:
    return x * 2


def test_skops_refuses_types_nobody_vouched_for(tmp_path: Path, iris: tuple) -> None:
    X, y = iris
    model = make_pipeline(FunctionTransformer(custom_feature), StandardScaler()).fit(X, y)
    path = dump(model, tmp_path / "m.skops", "skops")
    with pytest.raises(StartupError, match=r"not trusted: .*custom_feature"):
        load_file(path, "skops")
    trusted = (f"{__name__}.custom_feature",)
    assert load_file(path, "skops", trusted) is not None


def test_a_corrupt_artifact_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "m.joblib"
    path.write_bytes(b"this is not a joblib file")
    with pytest.raises(StartupError, match=r"m\.joblib is not a valid joblib file") as refused:
        load_file(path, "joblib")
    assert "\n" not in str(refused.value)


def test_a_pytorch_estimator_in_skops_loads_once_its_type_is_vouched_for(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from model_deployment_app.model import PyTorchEstimator

    estimator = PyTorchEstimator(
        torch.nn.Sequential(torch.nn.Linear(4, 3)), classes=["a", "b", "c"]
    )
    path = dump(estimator, tmp_path / "m.skops", "skops")
    with pytest.raises(
        StartupError, match=r"not trusted: model_deployment_app\.model\.PyTorchEstimator"
    ):
        load_file(path, "skops")
    loaded = load_file(path, "skops", ("model_deployment_app.model.PyTorchEstimator",))
    X = np.random.default_rng(0).normal(size=(5, 4))
    np.testing.assert_allclose(loaded.predict_proba(X), estimator.predict_proba(X), atol=1e-6)
