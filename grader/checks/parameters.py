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

MAX_MESSAGE = 400  # longest message; an explanation that would not fit is left out
BREAKDOWN_TERMS = 6  # layers listed one by one in a total's breakdown, at most


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
        message = ""
        if not ok:
            message = f"{self.label}: expected {rng.describe()}, yours {value:,}"
            explained = message + _breakdown(arch, self.field == "trainable_params") + "."
            message = explained if len(explained) <= MAX_MESSAGE else message + "."
        return [
            Check(
                name=self.label,
                group="parameters",
                passed=ok,
                expected=rng.describe(),
                actual=value,
                message=message,
            )
        ]


def _breakdown(arch: Architecture, trainable: bool) -> str:
    """Where the student's count comes from: every layer with weights while they are few
    (' = 896 (conv2d) + 18,496 (conv2d_1)'), else the largest ones."""
    counts = [
        (layer.trainable_params if trainable else layer.params, layer.name[:40])
        for layer in arch.layers
    ]
    counts = [(n, name) for n, name in counts if n]
    if not counts:
        return ""
    if len(counts) == 1:
        return f", all in {counts[0][1]}"
    if len(counts) <= BREAKDOWN_TERMS:
        return " = " + " + ".join(f"{n:,} ({name})" for n, name in counts)
    largest = sorted(counts, key=lambda c: -c[0])[:3]
    return ", most in " + ", ".join(f"{name} ({n:,})" for n, name in largest)


@register
class TotalParams(_ParamRange):
    field = "total_params"
    label = "Total parameters"


@register
class TrainableParams(_ParamRange):
    field = "trainable_params"
    label = "Trainable parameters"
