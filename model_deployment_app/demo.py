"""A demo model for `make run`: iris, trained here (no download), with a config pointing at it.

`python -m model_deployment_app.demo DIR` writes DIR/iris.joblib and DIR/config.yaml.
"""

import sys
from pathlib import Path

import joblib
import numpy as np
import yaml
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from model_deployment_app.storage import sha256_of


def write_demo(directory: Path) -> Path:
    """Train the iris classifier (string labels) and write its artifact and config."""
    directory.mkdir(parents=True, exist_ok=True)
    iris = load_iris()
    labels = np.asarray(iris.target_names)[iris.target]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(iris.data, labels)
    artifact = directory / "iris.joblib"
    joblib.dump(model, artifact)
    config = {
        "name": "iris-classifier",
        "modelType": "joblib",
        "job": "classification",
        "model": {
            "method": "LOCAL",
            "path": str(artifact.resolve()),
            "sha256": sha256_of(artifact),
        },
        "inputSize": 4,
    }
    config_path = directory / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return config_path


if __name__ == "__main__":
    path = write_demo(Path(sys.argv[1] if len(sys.argv) > 1 else "demo"))
    print(f"demo model written; config at {path}")
