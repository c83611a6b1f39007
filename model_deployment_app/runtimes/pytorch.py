"""PyTorch: a `PyTorchEstimator` (`model_deployment_app.model`), pickled or joblib-dumped.

Its module travels as a `torch.export` program, so no training code is needed to load it;
torch keeps a thread pool per calling thread, so its calls stay on the one model thread."""

from typing import Any

from model_deployment_app.runtimes import Runtime


class PyTorchRuntime(Runtime):
    platform = "pytorch"
    extra = "torch"
    image_variant = "torch"
    inline = False
    float32 = True

    def claims(self, estimator: Any) -> bool:
        from model_deployment_app.model import PyTorchEstimator

        return isinstance(estimator, PyTorchEstimator)


RUNTIME = PyTorchRuntime()
