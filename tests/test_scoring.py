"""The rubric: shared points per group, and the accuracy curve between minimum and target."""

from __future__ import annotations

import pytest

from grader.report import Check
from grader.scoring import accuracy_fraction, score
from grader.spec import Evaluation, Rubric


@pytest.mark.parametrize(
    ("accuracy", "fraction"),
    [(0.69, 0.0), (0.70, 0.6), (0.75, 0.8), (0.80, 1.0), (0.95, 1.0)],
)
def test_accuracy_credit_rises_linearly_from_minimum_to_target(accuracy, fraction) -> None:
    evaluation = Evaluation(min_accuracy=0.70, target_accuracy=0.80)
    rubric = Rubric(accuracy=70, credit_at_min=0.6)
    assert accuracy_fraction(accuracy, evaluation, rubric) == pytest.approx(fraction)


def test_without_target_the_minimum_earns_everything() -> None:
    evaluation = Evaluation(min_accuracy=0.5)
    assert accuracy_fraction(0.5, evaluation, Rubric(accuracy=10)) == 1.0
    assert accuracy_fraction(0.49, evaluation, Rubric(accuracy=10)) == 0.0


def _check(group: str, passed: bool) -> Check:
    return Check(name=f"{group}-{passed}", group=group, passed=passed)


def test_group_points_are_shared_among_its_checks() -> None:
    checks = [_check("architecture", True)] * 3 + [_check("architecture", False)]
    checks += [_check("parameters", True)]
    total, maximum, parts = score(checks, Rubric(architecture=40, parameters=20), None)
    assert (total, maximum) == (50.0, 60.0)
    assert [(p.group, p.points) for p in parts] == [("architecture", 30.0), ("parameters", 20.0)]


def test_groups_without_checks_are_not_in_the_maximum() -> None:
    total, maximum, parts = score([_check("parameters", True)], Rubric(), None)
    assert (total, maximum, len(parts)) == (50.0, 50.0, 1)


def test_accuracy_points_follow_the_credit() -> None:
    total, maximum, parts = score([], Rubric(accuracy=70), 0.5)
    assert (total, maximum) == (35.0, 70.0)
    assert parts[0].group == "accuracy"
