"""A model chart with its library vendored: a temporary copy for `mda render/deploy`.

A model chart in k8s_dev/ is complete (plain `helm dependency build` then `helm template`
renders it the same). Each render or deploy copies it to a temporary directory and vendors the
current charts_template/ as its dependency charts/mda-template/ (what `helm dependency build`
would pack), which needs no network and leaves the checkout as it was. A chart made before
charts were complete, holding only Chart.yaml and values.yaml, gets the starter's templates
and schema added; a file the chart holds itself wins over the starter's.
"""

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from model_deployment_app.deploy.layout import Repo

LIBRARY_NAME = "mda-template"


@contextmanager
def staged_chart(repo: Repo, name: str) -> Iterator[Path]:
    """Yield the path of a complete, installable copy of model `name`'s chart."""
    source = repo.chart_dir(name)
    starter = repo.starter_dir
    with tempfile.TemporaryDirectory(prefix="mda-chart-") as tmp:
        chart = Path(tmp) / name
        shutil.copytree(starter / "templates", chart / "templates")
        shutil.copy2(starter / "values.schema.json", chart / "values.schema.json")
        # The model's own files go on top. A charts/ or Chart.lock left by a manual
        # `helm dependency update` is replaced by the current library below.
        shutil.copytree(
            source,
            chart,
            ignore=shutil.ignore_patterns("charts", "Chart.lock"),
            dirs_exist_ok=True,
        )
        shutil.copytree(
            repo.template_dir,
            chart / "charts" / LIBRARY_NAME,
            ignore=shutil.ignore_patterns("starter", "charts"),
        )
        yield chart
