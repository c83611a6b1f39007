"""PyTorchEstimator: the sklearn interface over a torch module, picklable without its class."""

import logging
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from model_deployment_app.model import PyTorchEstimator  # noqa: E402


def make_classifier(n_features: int = 4, n_classes: int = 3) -> "nn.Module":
    """A module whose class exists only inside this function: unpicklable by reference."""

    class Recorder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.net = nn.Sequential(nn.Linear(n_features, 16), nn.ReLU(), nn.Linear(16, n_classes))
            self.batches: list[int] = []
            self.grad_enabled: list[bool] = []

        def forward(self, x: "torch.Tensor") -> "torch.Tensor":
            if not torch.compiler.is_compiling():
                self.batches.append(x.shape[0])
                self.grad_enabled.append(torch.is_grad_enabled())
            return self.net(x)

    return Recorder()


ROWS = np.random.default_rng(0).normal(size=(50, 4))


def test_predict_proba_is_the_softmax_of_the_logits() -> None:
    module = make_classifier()
    estimator = PyTorchEstimator(module, job="classification", classes=["a", "b", "c"])
    with torch.no_grad():
        logits = module(torch.tensor(ROWS, dtype=torch.float32)).double().numpy()
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(estimator.predict_proba(ROWS), expected, rtol=1e-6)
    assert list(estimator.classes_) == ["a", "b", "c"]
    assert list(estimator.predict(ROWS)) == list(np.array(["a", "b", "c"])[logits.argmax(1)])


def test_default_classes_are_the_logit_indices() -> None:
    estimator = PyTorchEstimator(make_classifier(n_classes=5), job="classification")
    assert list(estimator.classes_) == [0, 1, 2, 3, 4]


def test_runs_without_gradients_and_in_bounded_batches() -> None:
    estimator = PyTorchEstimator(make_classifier(), job="classification", batch_size=16)
    estimator.predict_proba(ROWS)
    module = estimator._runnable()[0]  # the copy that ran (the module given stays as it was)
    assert sum(module.batches[-4:]) == len(ROWS)
    assert max(module.batches) <= 16
    assert not any(module.grad_enabled)


def test_regression_outputs_single_and_multi() -> None:
    single = PyTorchEstimator(nn.Linear(4, 1), job="regression")
    multi = PyTorchEstimator(nn.Linear(4, 3), job="regression")
    assert single.predict(ROWS).shape == (50,)
    assert multi.predict(ROWS).shape == (50, 3)
    with pytest.raises(AttributeError):
        single.predict_proba(ROWS)


def test_cuda_asked_but_absent_falls_back_to_cpu(caplog: pytest.LogCaptureFixture) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    estimator = PyTorchEstimator(make_classifier(), job="classification", device="cuda")
    with caplog.at_level(logging.WARNING):
        assert estimator.predict_proba(ROWS).shape == (50, 3)
    assert "CUDA was asked for but is not available" in caplog.text


def test_joblib_artifact_loads_in_a_process_without_the_training_code(tmp_path: Path) -> None:
    estimator = PyTorchEstimator(make_classifier(), job="classification", classes=["a", "b", "c"])
    expected = estimator.predict_proba(ROWS)
    joblib.dump(estimator, tmp_path / "model.joblib")
    np.save(tmp_path / "rows.npy", ROWS)
    script = (
        "import joblib, numpy as np, sys; d = sys.argv[1];"
        "m = joblib.load(d + '/model.joblib');"
        "np.save(d + '/out.npy', m.predict_proba(np.load(d + '/rows.npy')));"
        "print(m.classes_.tolist())"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "['a', 'b', 'c']"
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, rtol=1e-12)


def test_a_reloaded_estimator_pickles_again(tmp_path: Path) -> None:
    estimator = PyTorchEstimator(nn.Linear(4, 2), job="regression")
    joblib.dump(estimator, tmp_path / "a.joblib")
    again = joblib.load(tmp_path / "a.joblib")
    joblib.dump(again, tmp_path / "b.joblib")
    np.testing.assert_allclose(
        joblib.load(tmp_path / "b.joblib").predict(ROWS), estimator.predict(ROWS), rtol=1e-12
    )


def test_the_wrapped_module_is_left_where_it_was() -> None:
    """Running on a device never moves (nor switches to eval) the caller's module."""
    torch = pytest.importorskip("torch")
    from model_deployment_app.model import PyTorchEstimator

    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Dropout(0.5)).train()
    estimator = PyTorchEstimator(module, device="meta")
    runnable, device = estimator._runnable()
    assert device.type == "meta" and next(runnable.parameters()).is_meta
    assert next(module.parameters()).device.type == "cpu" and module.training
