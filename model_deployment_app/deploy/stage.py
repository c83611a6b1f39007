"""A model chart made installable: a temporary copy with charts_template/ vendored in.

Helm looks for a chart's dependencies in its charts/ folder. Rather than packaging the library
into every checkout (`helm dependency update`, a .tgz to keep fresh or ignore), each render or
deploy copies the model chart to a temporary directory and puts the current charts_template/
beside its templates as charts/mda-template/. This needs no network, leaves the checkout as it
was, and always uses the template as it is now.
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
    with tempfile.TemporaryDirectory(prefix="mda-chart-") as tmp:
        chart = Path(tmp) / name
        # A charts/ or Chart.lock left by a manual `helm dependency update` is replaced.
        shutil.copytree(source, chart, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
        shutil.copytree(
            repo.template_dir,
            chart / "charts" / LIBRARY_NAME,
            ignore=shutil.ignore_patterns("starter", "charts"),
        )
        yield chart
