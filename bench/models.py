"""The demo models and request bodies: trained here at start, nothing downloaded.

A LogisticRegression (cheap per row: the server's own overhead dominates) and a
RandomForestClassifier (expensive per call, cheap per extra row: batching pays off), both on
the same 20-feature classification task, each saved with joblib next to its config.yaml.
"""

from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import orjson
import yaml
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

N_FEATURES = 20


@dataclass(frozen=True)
class DemoModel:
    name: str
    artifact: Path
    config: Path


def train(directory: Path) -> list[DemoModel]:
    """Train, save and configure the two demo models under `directory`."""
    x, y = make_classification(n_samples=2000, n_features=N_FEATURES, random_state=0)
    estimators = {
        "logreg": LogisticRegression(max_iter=1000),
        "forest": RandomForestClassifier(n_estimators=100, random_state=0),
    }
    models = []
    for name, estimator in estimators.items():
        estimator.fit(x, y)
        artifact = directory / f"{name}.joblib"
        joblib.dump(estimator, artifact)
        config = directory / f"{name}.yaml"
        config.write_text(yaml.safe_dump(_config(name, artifact), sort_keys=False))
        models.append(DemoModel(name, artifact, config))
    return models


def _config(name: str, artifact: Path) -> dict[str, object]:
    """The model configuration of CONTRACT section 2 for a local artifact."""
    return {
        "name": name,
        "modelType": "joblib",
        "job": "classification",
        "model": {"method": "LOCAL", "path": str(artifact)},
        "inputSize": N_FEATURES,
    }


def prediction_bodies(count: int, rows_per_body: int = 1, seed: int = 1) -> list[bytes]:
    """`count` distinct JSON bodies `{"instances": [...]}` of random rows, pre-encoded."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(count, rows_per_body, N_FEATURES))
    return [orjson.dumps({"instances": batch.tolist()}) for batch in rows]
