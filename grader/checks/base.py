"""The check-type contract and its registry, so a new kind of check is one class, not an edit
to the pipeline or the scorer.

Each spec block has one check type: it knows whether the spec asks for it, which rubric
group it earns points in, how to run against the student's model, and how to explain its
verdict ("expected vs yours"). The registry's order is the order of checks in the report.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from grader.inspection import values
from grader.inspection.architecture import Architecture
from grader.report import Check, Metrics
from grader.scoring import Credit, shared_credit
from grader.spec import AssignmentSpec


def fmt_shape(shape: Any) -> str:
    return "unknown" if shape is None else values.fmt_shape(shape)


class CheckType:
    """One kind of check, tied to one block of the assignment spec.

    Subclasses set ``group`` (the rubric field its points come from) and ``field`` (the
    spec block it reads), and implement ``run``. By default a group's points are shared
    equally among its checks; a type with another rule overrides ``credit``.
    """

    group: ClassVar[str]
    field: ClassVar[str]
    needs_metrics: ClassVar[bool] = False  # runs only once the model has been evaluated

    def applies(self, spec: AssignmentSpec) -> bool:
        """Whether the spec asks for this check (its block is present)."""
        return getattr(spec, self.field) is not None

    def groups(self, spec: AssignmentSpec) -> tuple[str, ...]:
        """The groups this type's checks fall in for this spec: what its points depend on."""
        return (self.group,) if self.applies(spec) else ()

    def describe(self, spec: AssignmentSpec) -> str:
        """What the spec asks for, in a few plain words."""
        raise NotImplementedError

    def run(self, spec: AssignmentSpec, arch: Architecture, metrics: Metrics | None) -> list[Check]:
        """The checks, each with what was expected, what the student has and why it failed."""
        raise NotImplementedError

    def credit(self, checks: list[Check], spec: AssignmentSpec, metrics: Metrics | None) -> Credit:
        """The share of the group's points earned by ``checks`` (all of the group's checks)."""
        return shared_credit(checks)


CHECK_TYPES: list[CheckType] = []

_T = TypeVar("_T", bound=type[CheckType])


def register(cls: _T) -> _T:
    """Class decorator: add a check type; its checks come after those registered earlier."""
    if any(type(existing) is cls for existing in CHECK_TYPES):
        raise ValueError(f"check type {cls.__name__} is already registered")
    CHECK_TYPES.append(cls())
    return cls


def unregister(cls: type[CheckType]) -> None:
    CHECK_TYPES[:] = [t for t in CHECK_TYPES if type(t) is not cls]
