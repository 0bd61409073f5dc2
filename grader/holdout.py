"""The instructor's second held-out set (``evaluation.holdout``): the public CIFAR-10
test set can be memorised, a re-collection of it (e.g. CIFAR-10.1) cannot. Its images
are predicted in the same sandbox run as the test images; its labels stay here."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from grader.data import TestSet, load_holdout
from grader.errors import ConfigurationError
from grader.report import HoldoutResult
from grader.spec import Holdout
from grader.units import pct


def resolve(rule: Holdout, assignments_dir: Path) -> Path:
    """The set's file: relative paths are read from the assignments folder."""
    path = Path(rule.path).expanduser()
    return path if path.is_absolute() else assignments_dir / path


def prepare(rule: Holdout, assignments_dir: Path) -> tuple[TestSet | None, str]:
    """The held-out set, or the reason it cannot be used; a missing or broken set is the
    instructor's to fix and must not stop the grading of the test set."""
    try:
        return load_holdout(resolve(rule, assignments_dir)), ""
    except ConfigurationError as exc:
        return None, str(exc)


def score(
    rule: Holdout,
    source: str,
    predictions: np.ndarray,
    labels: np.ndarray,
    test_accuracy: float,
) -> HoldoutResult:
    """Accuracy on the held-out images and its gap below the test accuracy."""
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    accuracy = round(float(np.mean(np.argmax(predictions, axis=1) == labels)), 4)
    gap = round(test_accuracy - accuracy, 4)
    return HoldoutResult(
        source=source,
        images=len(labels),
        accuracy=accuracy,
        test_accuracy=round(test_accuracy, 4),
        gap=gap,
        max_gap=rule.max_gap,
        flagged=gap > rule.max_gap,
    )


def rejudge(
    result: HoldoutResult | None, rule: Holdout | None, assignments_dir: Path
) -> HoldoutResult | None:
    """A stored figure under another spec's rule (the what-if): kept only when the rule
    names the same set, and flagged again by the rule's ``max_gap``."""
    if result is None or rule is None or result.accuracy is None or result.gap is None:
        return None
    if result.source != str(resolve(rule, assignments_dir)):
        return None
    return result.model_copy(update={"max_gap": rule.max_gap, "flagged": result.gap > rule.max_gap})


def unavailable(rule: Holdout, problem: str) -> HoldoutResult:
    return HoldoutResult(source=rule.path, max_gap=rule.max_gap, problem=problem)


def message(result: HoldoutResult) -> str:
    """The flag's explanation, in the instructor's terms."""
    assert result.accuracy is not None and result.test_accuracy is not None
    return (
        f"The model scores {pct(result.test_accuracy)} on the CIFAR-10 test set but "
        f"{pct(result.accuracy)} on the {result.images:,} images of the held-out set: a gap "
        f"of {(result.gap or 0) * 100:.1f} points, above the assignment's limit of "
        f"{result.max_gap * 100:.0f}. A model that learned the classes scores a few points "
        "lower on a re-collection of the test set; one that memorised the public test "
        "images does not generalise to it."
    )
