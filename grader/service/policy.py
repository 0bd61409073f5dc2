"""Course policy: late penalties, the daily attempt cap and a student's standing
(which score counts: best or last, after penalty and override)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from sqlalchemy import func, or_, select

from grader.service.db import db
from grader.service.lifecycle import WAITING
from grader.service.models import FREE_STATES, Assignment, Submission, User, utcnow
from grader.service.specs import current_spec
from grader.spec import AssignmentSpec


def _naive_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def late_penalty(spec: AssignmentSpec, when: dt.datetime) -> tuple[int, float]:
    """Whole days late (started days count) and the penalty fraction, capped."""
    deadline = spec.policy.deadline
    if deadline is None:
        return 0, 0.0
    late = _naive_utc(when) - _naive_utc(deadline)
    if late <= dt.timedelta(0):
        return 0, 0.0
    days = math.ceil(late.total_seconds() / 86400)
    penalty = min(spec.policy.late_penalty_cap, spec.policy.late_penalty_per_day * days)
    return days, round(penalty, 4)


def attempts_used_today(user: User, assignment: Assignment, now: dt.datetime | None = None) -> int:
    """Submissions today (UTC) that count: refused files and infrastructure errors do not."""
    now = now or utcnow()
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return (
        db.session.scalar(
            select(func.count(Submission.id)).where(
                Submission.user_id == user.id,
                Submission.assignment_id == assignment.id,
                Submission.created_at >= start,
                Submission.state.not_in(FREE_STATES),
                # Waiting for the test set is nobody's attempt yet.
                or_(
                    Submission.error_message.is_(None),
                    Submission.error_message.not_like(f"{WAITING}%"),
                ),
            )
        )
        or 0
    )


def attempts_left_today(user: User, assignment: Assignment) -> int | None:
    limit = current_spec(assignment).policy.submissions_per_day
    if limit is None:
        return None
    return max(0, limit - attempts_used_today(user, assignment))


@dataclass
class Standing:
    """A student's standing on one assignment, as shown in lists and the gradebook."""

    attempts: int
    best: float | None
    latest: float | None
    counted: float | None
    latest_submission: Submission | None
    late: bool
    max_score: float | None
    flagged: int = 0  # submissions the generalisation probe flagged (instructors only)
    counted_submission: Submission | None = None  # the one whose score counts

    @property
    def status(self) -> str:
        """The counted submission's state; otherwise where the latest one is (queued,
        refused, ...); "none" without any. One meaning for the gradebook, its filter,
        the CSV and the pass rate."""
        sub = self.counted_submission or self.latest_submission
        return sub.state if sub is not None else "none"


def standing(user: User, assignment: Assignment, spec: AssignmentSpec | None = None) -> Standing:
    subs = db.session.scalars(
        select(Submission)
        .where(Submission.user_id == user.id, Submission.assignment_id == assignment.id)
        .order_by(Submission.created_at.desc(), Submission.id.desc())
    ).all()
    return standing_from(list(subs), spec or current_spec(assignment))


def standing_from(subs: list[Submission], spec: AssignmentSpec) -> Standing:
    """``subs`` newest first."""
    scored = [s for s in subs if s.final_score is not None]
    best = max((s.final_score for s in scored), default=None)  # type: ignore[type-var]
    latest = scored[0].final_score if scored else None
    counted = best if spec.policy.counts == "best" else latest
    if spec.policy.counts == "best":
        counted_sub = max(scored, key=lambda s: s.final_score or 0.0) if scored else None
    else:
        counted_sub = scored[0] if scored else None
    max_score = scored[0].result.max_score if scored and scored[0].result else None
    return Standing(
        attempts=sum(1 for s in subs if s.uses_attempt),
        best=best,
        latest=latest,
        counted=counted,
        latest_submission=subs[0] if subs else None,
        late=bool(counted_sub and counted_sub.late_days > 0),
        max_score=max_score,
        flagged=sum(1 for s in scored if s.integrity is not None),
        counted_submission=counted_sub,
    )
