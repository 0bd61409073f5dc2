"""Parameter-count checks: whole-model totals against the ranges the assignment allows.

(The per-layer counts of an exact layer list are checked with that list, in
grader.checks.architecture, but earn points in this group.)
"""

from __future__ import annotations

from typing import ClassVar

from grader.checks.base import CheckType, register
from grader.inspection.architecture import Architecture
from grader.report import Check, Metrics
from grader.spec import AssignmentSpec, Range


class _ParamRange(CheckType):
    group = "parameters"
    label: ClassVar[str]

    def _range(self, spec: AssignmentSpec) -> Range:
        rng = getattr(spec, self.field)
        assert rng is not None
        return rng

    def describe(self, spec: AssignmentSpec) -> str:
        return f"{self.label.lower()} {self._range(spec).describe()}"

    def run(self, spec: AssignmentSpec, arch: Architecture, metrics: Metrics | None) -> list[Check]:
        rng = self._range(spec)
        value: int = getattr(arch, self.field)
        ok = rng.contains(value)
        return [
            Check(
                name=self.label,
                group="parameters",
                passed=ok,
                expected=rng.describe(),
                actual=value,
                message="" if ok else f"{self.label}: expected {rng.describe()}, yours {value:,}.",
            )
        ]


@register
class TotalParams(_ParamRange):
    field = "total_params"
    label = "Total parameters"


@register
class TrainableParams(_ParamRange):
    field = "trainable_params"
    label = "Trainable parameters"
