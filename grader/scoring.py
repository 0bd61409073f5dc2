"""Turns checks and accuracy into points, following the spec's rubric."""

from __future__ import annotations

from grader.report import Check, ScorePart
from grader.spec import Evaluation, Rubric


def accuracy_fraction(accuracy: float, evaluation: Evaluation, rubric: Rubric) -> float:
    """0 below the minimum; ``credit_at_min`` at it, rising linearly to 1 at the target."""
    if accuracy < evaluation.min_accuracy:
        return 0.0
    target = evaluation.target_accuracy
    if target is None or target <= evaluation.min_accuracy or accuracy >= target:
        return 1.0
    span = (accuracy - evaluation.min_accuracy) / (target - evaluation.min_accuracy)
    return rubric.credit_at_min + (1 - rubric.credit_at_min) * span


def score(
    checks: list[Check], rubric: Rubric, accuracy_credit: float | None
) -> tuple[float, float, list[ScorePart]]:
    """Points per group: shared equally among its checks; accuracy by its own curve.

    A group with no checks in this spec is left out of the maximum, so an
    assignment never awards points for something it did not test.
    """
    parts: list[ScorePart] = []
    for group in ("architecture", "parameters"):
        points = float(getattr(rubric, group))
        members = [c for c in checks if c.group == group]
        if not members or points == 0:
            continue
        passed = sum(c.passed for c in members)
        parts.append(
            ScorePart(
                group=group,
                points=round(points * passed / len(members), 2),
                max_points=points,
                detail=f"{passed} of {len(members)} checks passed",
            )
        )
    if accuracy_credit is not None and rubric.accuracy:
        parts.append(
            ScorePart(
                group="accuracy",
                points=round(rubric.accuracy * accuracy_credit, 2),
                max_points=float(rubric.accuracy),
                detail=f"{accuracy_credit:.0%} of the accuracy points",
            )
        )
    total = round(sum(p.points for p in parts), 2)
    return total, float(sum(p.max_points for p in parts)), parts
