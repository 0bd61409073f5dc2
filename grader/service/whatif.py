"""What-if: every existing submission regraded against a draft spec, without writing.

Before a spec change goes live the instructor sees which grades it would change: each
submission's file is inspected again under the draft (statically, no TensorFlow here),
its checks run and scored by the draft's rubric, late penalties recomputed from the
draft's policy, and each student's counted grade (best or last, per the draft) compared
with today's. Overrides stay as they are. The accuracy of an evaluated assignment is the
stored one when the draft feeds the model the same images; when it would not (another
preprocessing), the submission is run again in the sandbox only if ``run_models`` is
asked for, else it is listed as not re-scored.

Nothing is written: no row, no result, no audit entry, no stored file; the files are
copied to a temporary folder and the session is rolled back at the end.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from grader import holdout
from grader.checks import max_score
from grader.data import find_test_set, test_set_available
from grader.errors import ConfigurationError, NotGradable, SandboxUnavailable
from grader.inspection.static import Inspection
from grader.pipeline import Evaluation, EvaluationRefused, build_report, evaluate, inspect_file
from grader.report import Report
from grader.sandbox import EvaluationResult
from grader.service.context import current
from grader.service.db import db
from grader.service.models import ACTIVE_STATES, Assignment, Submission
from grader.service.policy import counted_score, late_penalty, standing_from
from grader.service.specs import current_spec, spec_of
from grader.service.storage import StorageError
from grader.spec import AssignmentSpec

UP, DOWN, SAME = "up", "down", "same"


@dataclass
class SubmissionOutcome:
    """One submission under the current spec and under the draft."""

    submission_id: int
    username: str
    name: str
    old_status: str
    old_score: float | None
    new_status: str  # passed | failed | not_gradable | pending | not_rescored
    new_score: float | None
    reason: str = ""  # why it is not gradable or not re-scored under the draft

    @property
    def direction(self) -> str:
        return _direction(self.old_score, self.new_score)


@dataclass
class StudentChange:
    """A student whose counted grade the draft would change."""

    username: str
    name: str
    old_score: float | None
    new_score: float | None

    @property
    def direction(self) -> str:
        return _direction(self.old_score, self.new_score)


@dataclass
class WhatIf:
    assignment_id: str
    current_version: int
    old_max: float
    new_max: float
    outcomes: list[SubmissionOutcome] = field(default_factory=list)
    students: list[StudentChange] = field(default_factory=list)  # changed grades only
    students_total: int = 0

    @property
    def submissions(self) -> int:
        return len(self.outcomes)

    @property
    def up(self) -> int:
        return sum(1 for s in self.students if s.direction == UP)

    @property
    def down(self) -> int:
        return sum(1 for s in self.students if s.direction == DOWN)

    @property
    def changed_submissions(self) -> list[SubmissionOutcome]:
        return [o for o in self.outcomes if o.direction != SAME]

    @property
    def not_rescored(self) -> list[SubmissionOutcome]:
        return [o for o in self.outcomes if o.new_status in ("pending", "not_rescored")]

    def summary(self) -> str:
        """One sentence: how many grades change, up and down."""
        if not self.outcomes:
            return (
                f"{self.assignment_id} has no submissions yet: publishing this draft "
                "changes no grade."
            )
        changed = len(self.students)
        text = (
            f"{changed} of {self.students_total} students' grades would change "
            f"({self.up} up, {self.down} down); {len(self.changed_submissions)} of "
            f"{self.submissions} submissions would score differently."
        )
        if self.new_max != self.old_max:
            text += f" The maximum score goes from {self.old_max:g} to {self.new_max:g}."
        if self.not_rescored:
            text += f" {len(self.not_rescored)} could not be re-scored (listed)."
        return text


def _direction(old: float | None, new: float | None) -> str:
    if old == new:
        return SAME
    if new is None or (old is not None and new < old):
        return DOWN
    return UP


def what_if(assignment: Assignment, draft: AssignmentSpec, *, run_models: bool = False) -> WhatIf:
    """Regrade every submission of ``assignment`` against ``draft`` in memory.

    Raises ConfigurationError when the draft is for another assignment.
    """
    if draft.id != assignment.id:
        raise ConfigurationError(
            f"The draft is for '{draft.id}', not '{assignment.id}': its id must not change."
        )
    assert assignment.current_version is not None
    spec = current_spec(assignment)
    subs = db.session.scalars(
        select(Submission)
        .where(Submission.assignment_id == assignment.id)
        .order_by(Submission.created_at.desc(), Submission.id.desc())
    ).all()
    report = WhatIf(
        assignment_id=assignment.id,
        current_version=assignment.current_version.version,
        old_max=max_score(spec),
        new_max=max_score(draft),
    )
    try:
        regrader = _Regrader(draft, run_models)
        with tempfile.TemporaryDirectory(prefix="whatif-") as tmp:
            new_scores: dict[int, float | None] = {}
            for sub in subs:
                outcome = regrader.outcome(sub, Path(tmp))
                report.outcomes.append(outcome)
                new_scores[sub.id] = outcome.new_score
        by_user: dict[int, list[Submission]] = defaultdict(list)
        for sub in subs:  # newest first
            by_user[sub.user_id].append(sub)
        report.students_total = len(by_user)
        for user_subs in by_user.values():
            old = standing_from(user_subs, spec).counted
            new = counted_score([new_scores[s.id] for s in user_subs], draft)
            if old != new:
                user = user_subs[0].user
                report.students.append(StudentChange(user.username, user.display_name, old, new))
        report.outcomes.sort(key=lambda o: o.submission_id)
        report.students.sort(key=lambda s: s.username)
    finally:
        db.session.rollback()  # nothing of this is ever written
    return report


class _Regrader:
    """Regrades one submission after another under the draft; a file shared by several
    submissions is inspected once."""

    def __init__(self, draft: AssignmentSpec, run_models: bool) -> None:
        self.draft = draft
        self.run_models = run_models
        self.inspections: dict[str, Inspection | str] = {}

    def outcome(self, sub: Submission, tmp: Path) -> SubmissionOutcome:
        user = sub.user
        base = SubmissionOutcome(
            submission_id=sub.id,
            username=user.username,
            name=user.display_name,
            old_status=sub.state,
            old_score=sub.final_score,
            new_status="pending",
            new_score=sub.final_score,
        )
        if sub.state in ACTIVE_STATES:
            base.reason = "still being graded"
            return base
        path = tmp / f"{sub.file_sha256}.{sub.file_format or 'keras'}"
        try:
            found = self._inspect(sub, path)
        except (StorageError, OSError) as exc:  # this submission is not re-scored; the rest go on
            base.new_status = "not_rescored"
            base.reason = f"its file could not be read from the store ({exc})"
            return base
        if isinstance(found, str):
            base.new_status, base.new_score, base.reason = "not_gradable", None, found
            return self._final(base, sub)
        result = self._report(sub, path, found)
        if isinstance(result, str):
            base.new_status, base.reason = "not_rescored", result
            return base
        if result.status == "not_gradable":
            base.new_status, base.new_score = "not_gradable", None
            base.reason = result.reason or ""
            return self._final(base, sub)
        base.new_status = result.status
        _days, penalty = late_penalty(self.draft, sub.created_at)
        base.new_score = round(result.score * (1.0 - penalty), 2)
        return self._final(base, sub)

    @staticmethod
    def _final(outcome: SubmissionOutcome, sub: Submission) -> SubmissionOutcome:
        if sub.override_score is not None:  # an instructor's score stands
            outcome.new_score = sub.override_score
        return outcome

    def _inspect(self, sub: Submission, path: Path) -> Inspection | str:
        """The draft's static inspection of the file, or the reason it is refused."""
        if sub.file_sha256 not in self.inspections:
            try:
                current().storage().fetch(sub.file_sha256, path)
                self.inspections[sub.file_sha256] = inspect_file(
                    path, self.draft, current().settings
                )
            except NotGradable as exc:
                self.inspections[sub.file_sha256] = exc.reason
        return self.inspections[sub.file_sha256]

    def _report(self, sub: Submission, path: Path, inspection: Inspection) -> Report | str:
        """The draft's report, or why it cannot be told without running the model."""
        draft = self.draft
        if draft.evaluation is None:
            return build_report(draft, inspection, _static(inspection))
        stored = _stored_evaluation(sub, draft, inspection)
        if stored is not None:
            return build_report(draft, inspection, stored)
        if not self.run_models:
            return (
                "the draft evaluates the model differently (or it was never run): "
                "run the what-if with the models to re-score it"
            )
        settings = current().settings
        if not test_set_available(settings.cifar10):
            return "no CIFAR-10 test set here to run the model on"
        try:
            test_set = find_test_set(None, settings.cifar10)
            evaluation = evaluate(path, inspection, draft, settings=settings, test_set=test_set)
        except (ConfigurationError, SandboxUnavailable) as exc:
            return str(exc)
        except (EvaluationRefused, NotGradable) as exc:
            return Report(status="not_gradable", reason=exc.reason, assignment=draft.id)
        return build_report(draft, inspection, evaluation)


def _static(inspection: Inspection) -> Evaluation:
    """An evaluation without a run: the checks that need none are all there is."""
    return Evaluation(result=_no_run(inspection), metrics=None, timings={})


def _no_run(inspection: Inspection, device: str = "cpu") -> EvaluationResult:
    arch = inspection.architecture
    return EvaluationResult(
        layers=[],
        total_params=arch.total_params,
        trainable_params=arch.trainable_params,
        input_shape=list(arch.input_shape),
        predictions=None,
        device=device,
    )


def _stored_evaluation(
    sub: Submission, draft: AssignmentSpec, inspection: Inspection
) -> Evaluation | None:
    """The stored run's accuracy, when the draft would feed the model the same images."""
    if sub.result is None or not sub.result.report:
        return None
    try:
        old = Report.model_validate(sub.result.report)
    except ValueError:
        return None
    graded_under = spec_of(sub.spec_version).evaluation
    block = draft.evaluation
    if old.metrics is None or graded_under is None or block is None:
        return None
    same_input = (
        graded_under.dataset == block.dataset
        and graded_under.split == block.split
        and graded_under.preprocessing == block.preprocessing
    )
    if not same_input:
        return None
    return Evaluation(
        result=_no_run(inspection, old.device or "cpu"),
        metrics=old.metrics,
        timings={},
        probes=old.probes,
        holdout=holdout.rejudge(
            old.integrity.holdout if old.integrity is not None else None,
            block.holdout,
            current().settings.assignments_dir,
        ),
    )
