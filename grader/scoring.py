"""Turns the checks' verdicts into points, following the spec's rubric.

Knows no particular check: a group's points come from the rubric field of the same name,
and how much of them is earned is either an equal share per passed check or a credit the
group's check type computed (the accuracy curve).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from grader.report import Check, ScorePart
from grader.spec import Evaluation, Rubric


class Credit(NamedTuple):
    """The share of a group's points earned (``earned`` of ``out_of``), and how, in words."""

    earned: float
    out_of: float
    detail: str


def shared_credit(checks: list[Check]) -> Credit:
    """Points shared equally among the group's checks."""
    passed = sum(c.passed for c in checks)
    return Credit(passed, len(checks), f"{passed} of {len(checks)} checks passed")


def curve_credit(fraction: float, group: str) -> Credit:
    """A fraction of the points computed by the group's own rule."""
    return Credit(fraction, 1, f"{fraction:.0%} of the {group} points")


def accuracy_fraction(accuracy: float, evaluation: Evaluation, rubric: Rubric) -> float:
    """0 below the minimum; ``credit_at_min`` at it, rising linearly to 1 at the target."""
    if accuracy < evaluation.min_accuracy:
        return 0.0
    target = evaluation.target_accuracy
    if target is None or target <= evaluation.min_accuracy or accuracy >= target:
        return 1.0
    span = (accuracy - evaluation.min_accuracy) / (target - evaluation.min_accuracy)
    return rubric.credit_at_min + (1 - rubric.credit_at_min) * span


def group_points(rubric: Rubric, group: str) -> float:
    """The points the rubric gives a group: its field of the same name."""
    return float(getattr(rubric, group))


def score(
    checks: list[Check],
    rubric: Rubric,
    accuracy_credit: float | None = None,
    *,
    credits: Mapping[str, Credit] | None = None,
) -> tuple[float, float, list[ScorePart]]:
    """Points per group, for the groups the checks (or ``credits``) name, in that order.

    A group's points are shared equally among its checks unless ``credits`` gives its
    credit (``accuracy_credit`` is short for the "accuracy" group's). A group with no
    checks and no credit is left out of the maximum, so an assignment never awards
    points for something it did not test; so is a group the rubric gives no points.
    """
    given = dict(credits or {})
    if accuracy_credit is not None:
        given.setdefault("accuracy", curve_credit(accuracy_credit, "accuracy"))
    parts: list[ScorePart] = []
    for group in dict.fromkeys([*(c.group for c in checks), *given]):
        points = group_points(rubric, group)
        if points == 0:
            continue
        if group in given:
            credit = given[group]
        else:
            credit = shared_credit([c for c in checks if c.group == group])
        parts.append(
            ScorePart(
                group=group,
                points=round(points * credit.earned / credit.out_of, 2),
                max_points=points,
                detail=credit.detail,
            )
        )
    total = round(sum(p.points for p in parts), 2)
    return total, float(sum(p.max_points for p in parts)), parts
