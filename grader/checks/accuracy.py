"""The CIFAR-10 accuracy check: the only check that needs the model run, and the only group
whose points follow a curve (credit at the minimum, rising to all at the target) rather
than equal shares.
"""

from __future__ import annotations

from grader.checks.base import CheckType, register
from grader.inspection.architecture import Architecture
from grader.report import Check, Metrics
from grader.scoring import Credit, accuracy_fraction, curve_credit
from grader.spec import AssignmentSpec
from grader.units import pct


@register
class Accuracy(CheckType):
    group = "accuracy"
    field = "evaluation"
    needs_metrics = True

    def describe(self, spec: AssignmentSpec) -> str:
        assert spec.evaluation is not None
        return f"CIFAR-10 test accuracy at least {pct(spec.evaluation.min_accuracy)}"

    def run(self, spec: AssignmentSpec, arch: Architecture, metrics: Metrics | None) -> list[Check]:
        evaluation = spec.evaluation
        assert evaluation is not None and metrics is not None
        accuracy = metrics.accuracy
        passed = accuracy >= evaluation.min_accuracy
        yours, minimum = pct(accuracy), pct(evaluation.min_accuracy)
        if yours == minimum and not passed:  # 69.96 % must not read "70.0 % is below 70.0 %"
            yours = f"{accuracy * 100:.2f} %"
        return [
            Check(
                name="CIFAR-10 test accuracy",
                group="accuracy",
                passed=passed,
                expected=f"at least {minimum}",
                actual=yours,
                message=""
                if passed
                else f"Accuracy {yours} is below the minimum of {minimum} "
                f"on {metrics.num_images:,} test images.",
            )
        ]

    def credit(self, checks: list[Check], spec: AssignmentSpec, metrics: Metrics | None) -> Credit:
        assert spec.evaluation is not None and metrics is not None
        fraction = accuracy_fraction(metrics.accuracy, spec.evaluation, spec.rubric)
        return curve_credit(fraction, self.group)
