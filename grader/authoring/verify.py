"""Grade a reference solution against a spec: the spec may only be published when its own
solution passes it.

The architecture and parameter checks need only the static inspection (no TensorFlow
here, under a second). A CIFAR-10 spec's accuracy needs the model run: with a test set,
the reference is graded in full (sandbox, the grader's preprocessing); without one, only
the checks that need no run are made and the result says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from grader.authoring.generate import AuthoringError
from grader.checks import architecture_checks
from grader.data import TestSet
from grader.errors import NotGradable
from grader.pipeline import grade_file, inspect_file
from grader.report import Check
from grader.settings import Settings
from grader.spec import AssignmentSpec


@dataclass
class Verification:
    """How the reference fared: ``passed``, the failed checks, and whether it was run."""

    passed: bool
    failures: list[Check] = field(default_factory=list)
    evaluated: bool = False  # the model was run (accuracy checked), not only inspected
    accuracy: float | None = None
    score: float | None = None
    max_score: float | None = None

    def reason(self) -> str:
        """The failures as one message for the instructor."""
        parts = [f"{c.name}: {c.message or 'failed'}" for c in self.failures]
        return "The reference solution fails this spec, so it was not published. " + "; ".join(
            parts
        )


def verify(
    model_path: Path,
    spec: AssignmentSpec,
    settings: Settings,
    *,
    test_set: TestSet | None = None,
    run: bool = False,
) -> Verification:
    """Check the reference against ``spec``. ``run`` grades it in the sandbox (and, for a
    CIFAR-10 spec, on ``test_set``); else only statically. Raises AuthoringError when the
    reference is not gradable under the spec (its input, the allow-list)."""
    if run:
        report = grade_file(model_path, spec, settings=settings, test_set=test_set)
        if report.status == "not_gradable":
            raise AuthoringError(f"The reference solution is not gradable: {report.reason}")
        return Verification(
            passed=report.status == "passed",
            failures=[c for c in report.checks if not c.passed],
            evaluated=True,
            accuracy=report.metrics.accuracy if report.metrics else None,
            score=report.score,
            max_score=report.max_score,
        )
    try:
        arch = inspect_file(model_path, spec, settings).architecture
    except NotGradable as exc:
        raise AuthoringError(f"The reference solution is not gradable: {exc.reason}") from None
    checks = architecture_checks(spec, arch)
    failures = [c for c in checks if not c.passed]
    return Verification(passed=not failures, failures=failures)
