"""A classifier that takes its time: for drain and timeout tests. A module of its own, so a
server process started by the tests can unpickle it (the tests run from the repository root)."""

import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class SlowClassifier(ClassifierMixin, BaseEstimator):
    """Answers [0.25, 0.75] for every row, after `seconds` per call (the warm-up call too)."""

    def __init__(self, seconds: float = 1.0) -> None:
        self.seconds = seconds

    def fit(self, X: np.ndarray, y: np.ndarray) -> "SlowClassifier":
        self.classes_ = np.array(["a", "b"])
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        time.sleep(self.seconds)
        return np.tile([0.25, 0.75], (len(X), 1))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
