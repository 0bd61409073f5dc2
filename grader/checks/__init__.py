"""Every check the grader can run, behind one registry, so the pipeline and the scorer never
name a particular check: they run and score whatever the spec asks for.

Built-in types, in report order: output shape, layer list, layer counts (architecture);
total and trainable parameters (parameters); CIFAR-10 accuracy (accuracy).
"""

from __future__ import annotations

# Importing a module registers its types; this order is the order of checks in the report.
# isort: off
from grader.checks import architecture, parameters, accuracy  # noqa: F401

# isort: on
from grader.checks.base import CHECK_TYPES, CheckType, fmt_shape, register, unregister
from grader.inspection.architecture import Architecture
from grader.report import Check, Metrics, ScorePart
from grader.scoring import Credit, group_points, score
from grader.spec import AssignmentSpec

__all__ = [
    "CHECK_TYPES",
    "CheckType",
    "architecture_checks",
    "fmt_shape",
    "max_score",
    "register",
    "run_checks",
    "score_checks",
    "unregister",
]


def run_checks(spec: AssignmentSpec, arch: Architecture, metrics: Metrics | None) -> list[Check]:
    """All checks the spec asks for, in report order; without ``metrics`` (the model not
    run), those that need them are left out."""
    checks: list[Check] = []
    for kind in CHECK_TYPES:
        if kind.applies(spec) and (metrics is not None or not kind.needs_metrics):
            checks.extend(kind.run(spec, arch, metrics))
    return checks


def architecture_checks(spec: AssignmentSpec, arch: Architecture) -> list[Check]:
    """The checks that need only the model's structure (all but accuracy), in reading order."""
    return run_checks(spec, arch, None)


def score_checks(
    spec: AssignmentSpec, checks: list[Check], metrics: Metrics | None
) -> tuple[float, float, list[ScorePart]]:
    """Score, maximum and breakdown: each group's credit by the rule of its check type."""
    credits: dict[str, Credit] = {}
    for group in dict.fromkeys(c.group for c in checks):
        members = [c for c in checks if c.group == group]
        credits[group] = _rule_for(group).credit(members, spec, metrics)
    return score(checks, spec.rubric, credits=credits)


def max_score(spec: AssignmentSpec) -> float:
    """The points a model could earn under this spec, the same whatever the model:
    the points of every group some check of the spec falls in."""
    groups = dict.fromkeys(g for kind in CHECK_TYPES for g in kind.groups(spec))
    return float(sum(group_points(spec.rubric, g) for g in groups))


def _rule_for(group: str) -> CheckType:
    """Types sharing a group share the credit rule of the first registered one."""
    return next((kind for kind in CHECK_TYPES if kind.group == group), _SHARED)


class _Shared(CheckType):
    """Equal shares, for a group that only a type of another group emits checks in."""


_SHARED = _Shared()
