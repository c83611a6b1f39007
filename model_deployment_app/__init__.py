"""model_deployment_app: one generic server for scikit-learn, PyTorch and transformers models."""

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def _version() -> str:
    """The version of the source this runs from: a checkout's pyproject.toml (so a bump, or
    undoing one, shows at once in an editable install), else the installed metadata."""
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if pyproject.is_file():
        import tomllib

        try:
            project = tomllib.loads(pyproject.read_text()).get("project", {})
        except (OSError, tomllib.TOMLDecodeError):
            project = {}
        if project.get("name") == "model-deployment-app" and "version" in project:
            return str(project["version"])
    try:
        return version("model-deployment-app")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0.0.0"


__version__ = _version()
