"""A pixel classifier that labels decoded images (for class crossings along interpolations)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

from .._checks import check_choice

KINDS = ("mlp", "logistic")


@dataclass
class PixelClassifier:
    """A fitted scikit-learn classifier on flattened images.

    Attributes:
        model: the estimator.
        kind: 'mlp' (one hidden layer of 256 ReLU units, Adam, early stopping) or 'logistic'.
        accuracy: accuracy on the held-out images given to :func:`train_classifier`.
        train_size, test_size: images used.
        seconds: fitting time.
    """

    model: object
    kind: str
    accuracy: float
    train_size: int
    test_size: int
    seconds: float

    def predict(self, images: torch.Tensor) -> np.ndarray:
        """Labels of (..., D) images -> (...) int64 array."""
        flat = images.detach().reshape(-1, images.shape[-1]).to("cpu", torch.float64).numpy()
        return self.model.predict(flat).astype(np.int64).reshape(images.shape[:-1])

    def describe(self) -> dict:
        return {
            "kind": self.kind, "accuracy": self.accuracy, "train_size": self.train_size,
            "test_size": self.test_size, "seconds": self.seconds,
        }


def train_classifier(
    X: torch.Tensor, y: torch.Tensor, X_test: torch.Tensor, y_test: torch.Tensor, kind: str = "mlp", seed: int = 0
) -> PixelClassifier:
    """Fit a classifier on (N, D) images with (N,) labels and score it on held-out ones."""
    check_choice("classifier", kind, KINDS)
    if X.dim() != 2 or y.shape != (len(X),) or X_test.dim() != 2 or y_test.shape != (len(X_test),):
        raise ValueError("need X (N, D) with y (N,) and X_test (M, D) with y_test (M,)")
    if kind == "mlp":
        model = MLPClassifier(hidden_layer_sizes=(256,), early_stopping=True, max_iter=200, random_state=seed)
    else:
        model = LogisticRegression(max_iter=1000)
    start = time.perf_counter()
    model.fit(X.double().numpy(), y.numpy())
    seconds = time.perf_counter() - start
    accuracy = float((model.predict(X_test.double().numpy()) == y_test.numpy()).mean())
    return PixelClassifier(model, kind, accuracy, len(X), len(X_test), seconds)
