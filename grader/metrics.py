"""Scores predictions on the trusted side; the labels never leave this process."""

from __future__ import annotations

import numpy as np

from grader.errors import NotGradable
from grader.report import CIFAR10_CLASSES, Metrics


def validate_predictions(predictions: np.ndarray, num_images: int, num_classes: int) -> None:
    """Refuse output a grader could mis-score: wrong shape, NaN or infinity."""
    if predictions.ndim != 2 or predictions.shape[0] != num_images:
        raise NotGradable(
            f"The model returned predictions of shape {tuple(predictions.shape)}; expected "
            f"({num_images}, {num_classes}), one row of class scores per image."
        )
    if predictions.shape[1] != num_classes:
        raise NotGradable(
            f"The model has {predictions.shape[1]} outputs; CIFAR-10 needs {num_classes}, "
            "one score per class."
        )
    if not np.issubdtype(predictions.dtype, np.number) or not np.isfinite(predictions).all():
        raise NotGradable("The model's predictions contain NaN or infinite values.")


def score_predictions(
    predictions: np.ndarray,
    labels: np.ndarray,
    classes: tuple[str, ...] = CIFAR10_CLASSES,
    invalid: np.ndarray | None = None,
) -> Metrics:
    """Accuracy by argmax (softmax and logits grade the same), per class and confusion.

    ``invalid`` (one flag per image) marks rows scored as wrong whatever they hold (NaN
    outputs, or not one score per class: grader.diagnosis explains them); they are in
    no column of the confusion matrix. Without it, such predictions are refused."""
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    n = len(classes)
    if invalid is None:
        validate_predictions(predictions, len(labels), n)
        valid = np.ones(len(labels), dtype=bool)
    else:
        if predictions.ndim != 2 or predictions.shape[0] != len(labels):
            validate_predictions(predictions, len(labels), n)  # raises: the shape
        valid = ~np.asarray(invalid, dtype=bool).reshape(-1) & (predictions.shape[1] == n)
    predicted = np.argmax(predictions, axis=1) if predictions.shape[1] == n else labels * 0
    confusion = np.bincount(labels[valid] * n + predicted[valid], minlength=n * n).reshape(n, n)
    support = np.bincount(labels, minlength=n)[:n]
    per_class = np.divide(
        np.diag(confusion), support, out=np.zeros(n, dtype=float), where=support > 0
    )
    return Metrics(
        accuracy=float(np.mean(valid & (predicted == labels))),
        num_images=len(labels),
        per_class_accuracy={c: round(float(a), 6) for c, a in zip(classes, per_class, strict=True)},
        confusion_matrix=confusion.tolist(),
    )
