"""Accuracy computed from sandbox predictions equals Keras's own, on synthetic and real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from models import cifar_cnn, save
from testutil import real_cifar10, shipped_spec

from grader.data import find_test_set
from grader.metrics import score_predictions
from grader.pipeline import grade_file


def _keras_accuracy(model, x_uint8: np.ndarray, y: np.ndarray) -> float:
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    _, accuracy = model.evaluate(x_uint8.astype("float32") / 255.0, y, verbose=0, batch_size=500)
    return float(accuracy)


def _manual_confusion(y: np.ndarray, predicted: np.ndarray) -> list[list[int]]:
    matrix = [[0] * 10 for _ in range(10)]
    for true, guess in zip(y.tolist(), predicted.tolist(), strict=True):
        matrix[true][guess] += 1
    return matrix


def test_accuracy_equals_keras_evaluate(tmp_path: Path, settings) -> None:
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, size=(600, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, size=600).astype(np.uint8)
    data = tmp_path / "synthetic.npz"
    np.savez(data, x=x, y=y)
    model = cifar_cnn(seed=3)
    path = save(model, tmp_path / "random.keras")

    report = grade_file(path, shipped_spec("day097-cifar10"), settings=settings,
                        test_set=find_test_set(data))  # fmt: skip
    assert report.status == "failed"  # random weights cannot reach 70 %
    metrics = report.metrics
    assert metrics.num_images == 600
    assert metrics.accuracy == pytest.approx(_keras_accuracy(model, x, y), abs=1e-6)

    predicted = np.argmax(model.predict(x.astype("float32") / 255.0, verbose=0), axis=1)
    assert metrics.confusion_matrix == _manual_confusion(y, predicted)
    for index, (name, accuracy) in enumerate(metrics.per_class_accuracy.items()):
        mask = y == index
        assert accuracy == pytest.approx(float(np.mean(predicted[mask] == index)), abs=1e-6), name
    accuracy_check = next(c for c in report.checks if c.group == "accuracy")
    assert not accuracy_check.passed and "below the minimum of 70.0 %" in accuracy_check.message


def test_logits_and_softmax_grade_the_same() -> None:
    logits = np.array([[2.0, -1.0, 0.5] + [0.0] * 7, [-3.0, 4.0, 1.0] + [0.0] * 7])
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([0, 2])
    assert score_predictions(logits, labels) == score_predictions(softmax, labels)
    assert score_predictions(logits, labels).accuracy == 0.5


@pytest.mark.parametrize(
    ("predictions", "reason"),
    [
        (np.zeros((3, 10)), "shape (3, 10)"),
        (np.zeros((4, 7)), "7 outputs"),
        (np.full((4, 10), np.nan), "NaN or infinite"),
        (np.zeros(4), "shape (4,)"),
    ],
)
def test_bad_predictions_are_refused(predictions: np.ndarray, reason: str) -> None:
    from grader.errors import NotGradable

    with pytest.raises(NotGradable, match=reason.replace("(", r"\(").replace(")", r"\)")):
        score_predictions(predictions, np.zeros(4, dtype=int))


@pytest.mark.slow
def test_real_cifar10_test_set(tmp_path: Path, settings) -> None:
    source = real_cifar10()
    if source is None:
        pytest.skip(
            "real CIFAR-10 not found: set GRADER_CIFAR10 or place it in ../shared/data/cifar10"
        )
    test_set = find_test_set(source)
    x = test_set.images()
    assert x.shape == (10000, 32, 32, 3) and test_set.labels[:10].tolist() == [
        3,
        8,
        8,
        0,
        6,
        6,
        1,
        6,
        3,
        1,
    ]
    model = cifar_cnn(seed=11)
    path = save(model, tmp_path / "cifar.keras")
    report = grade_file(path, shipped_spec("day097-cifar10"), settings=settings, test_set=test_set)
    assert report.metrics.num_images == 10000
    assert report.metrics.accuracy == pytest.approx(
        _keras_accuracy(model, np.asarray(x), test_set.labels), abs=1e-6
    )
    assert sum(map(sum, report.metrics.confusion_matrix)) == 10000


@pytest.mark.parametrize(
    ("accuracy", "shown"), [(0.6996, "69.96 %"), (0.6949, "69.5 %"), (0.7, None)]
)
def test_a_failing_accuracy_never_reads_as_the_minimum(accuracy: float, shown: str | None) -> None:
    from grader.checks.accuracy import Accuracy
    from grader.report import Metrics

    spec = shipped_spec("day097-cifar10")  # min_accuracy 0.70
    metrics = Metrics(accuracy=accuracy, num_images=10, per_class_accuracy={}, confusion_matrix=[])
    (check,) = Accuracy().run(spec, None, metrics)  # type: ignore[arg-type]
    assert check.expected == "at least 70.0 %"
    if shown is None:
        assert check.passed and check.actual == "70.0 %"
    else:
        assert not check.passed and check.actual == shown
        expected = f"Accuracy {shown} is below the minimum of 70.0 % on 10 test images."
        assert check.message == expected
