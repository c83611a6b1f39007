"""Where things are in a checkout: the chart template, the model charts, pyproject.toml.

Every chart command takes the repository root (`--root`, else `MDA_REPO_ROOT`, else the
current directory) and finds the rest from it.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path

from model_deployment_app.errors import UserError

# The base image `make docker-base` pushes: $(REGISTRY)/model-deployment-app in the Makefile.
DEFAULT_IMAGE = "europe-docker.pkg.dev/my-project/mda/model-deployment-app"

# A Helm release name (at most 53 characters) that is also a DNS-1035 label, so it can name
# the Service, the Deployment and the ingress path as it is.
_MODEL_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,51}[a-z0-9])?$")


def validate_name(name: str) -> str:
    """Return `name` if it can name a model (chart, release, objects); else UserError."""
    if not _MODEL_NAME.fullmatch(name):
        raise UserError(
            f"invalid model name {name!r}: use lowercase letters, digits and '-', "
            "starting with a letter and ending with a letter or digit, at most 53 characters"
        )
    return name


@dataclass(frozen=True)
class Repo:
    """A checkout holding `charts_template/` and `k8s_dev/`."""

    root: Path

    @classmethod
    def find(cls, root: str | os.PathLike[str] | None = None) -> "Repo":
        """The repository at `root`, `$MDA_REPO_ROOT` or the current directory."""
        path = Path(root or os.environ.get("MDA_REPO_ROOT") or ".").resolve()
        repo = cls(path)
        if not (repo.template_dir / "Chart.yaml").is_file():
            raise UserError(
                f"no charts_template/Chart.yaml under {path}: run from the repository root "
                "or pass --root"
            )
        return repo

    @property
    def template_dir(self) -> Path:
        """The library chart holding every template once."""
        return self.root / "charts_template"

    @property
    def starter_dir(self) -> Path:
        """Chart.yaml and values.yaml for `mda new-model`; templates/ and values.schema.json
        for every staged chart."""
        return self.template_dir / "starter"

    @property
    def charts_dir(self) -> Path:
        """One chart per model."""
        return self.root / "k8s_dev"

    @property
    def pyproject(self) -> Path:
        return self.root / "pyproject.toml"

    def chart_dir(self, name: str) -> Path:
        """The chart of model `name`; UserError when there is none."""
        validate_name(name)
        path = self.charts_dir / name
        if not (path / "Chart.yaml").is_file():
            known = ", ".join(self.model_names()) or "none yet"
            raise UserError(
                f"no chart for model {name!r} in {self.charts_dir} (models: {known}); "
                f"create it with `mda new-model {name}`"
            )
        return path

    def model_names(self) -> list[str]:
        """The models that have a chart, sorted."""
        if not self.charts_dir.is_dir():
            return []
        return sorted(p.parent.name for p in self.charts_dir.glob("*/Chart.yaml"))
