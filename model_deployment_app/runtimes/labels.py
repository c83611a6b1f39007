"""Class labels for native files: what the file records, else the config's `classes`, else
0..k-1, and a classifier's single-score binary output as two probability columns."""

from collections.abc import Sequence
from typing import Any

import numpy as np

from model_deployment_app.errors import StartupError


def class_labels(
    recorded: Sequence[Any] | None, configured: Sequence[Any] | None, count: int
) -> np.ndarray:
    """The labels of `count` probability columns. `configured` (the config's `classes`)
    names them where given; else the labels the file records; else 0..k-1."""
    if configured is not None:
        if len(configured) != count:
            raise StartupError(
                f"classes names {len(configured)} labels but the model has {count} classes"
            )
        return np.asarray(configured)
    if recorded is not None and len(recorded) == count:
        return np.asarray(recorded)
    return np.arange(count)


def two_columns(scores: np.ndarray) -> np.ndarray:
    """A binary classifier's probability of the positive class as [P(0), P(1)] columns."""
    if scores.ndim == 2 and scores.shape[1] > 1:
        return scores
    positive = scores.reshape(-1).astype(np.float64, copy=False)
    return np.column_stack((1.0 - positive, positive))


class Classes:
    """`classes_` for a wrapper that sets `classes` (None for a regressor, which has none)."""

    classes: np.ndarray | None = None

    @property
    def classes_(self) -> np.ndarray:
        if self.classes is None:
            raise AttributeError("classes_ is only defined for a classifier")
        return self.classes


class Relabelled:
    """An estimator whose `predict` answers column indexes (0..k-1), answering `classes`
    instead; every other attribute is the estimator's."""

    def __init__(self, estimator: Any, classes: np.ndarray) -> None:
        self.estimator = estimator
        self.classes_ = classes

    def predict_proba(self, features: Any) -> np.ndarray:
        return self.estimator.predict_proba(features)

    def predict(self, features: Any) -> np.ndarray:
        indexes = np.asarray(self.estimator.predict(features)).reshape(-1).astype(np.intp)
        return self.classes_[indexes]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.estimator, name)
