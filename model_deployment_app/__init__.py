"""model_deployment_app: one generic server for scikit-learn and PyTorch models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("model-deployment-app")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
