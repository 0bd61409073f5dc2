"""Course policy: late penalties, the daily attempt cap and a student's standing
(which score counts: best or last, after penalty and override)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select

from grader.service.context import settings
from grader.service.db import db
from grader.service.lifecycle import WAITING
from grader.service.models import FREE_STATES, Assignment, Submission, User, utcnow
from grader.service.specs import current_spec
from grader.spec import AssignmentSpec


def course_zone() -> ZoneInfo:
    """The course's time zone (``GRADER_COURSE_TIMEZONE``); UTC outside a service."""
    try:
        return ZoneInfo(settings().course_timezone)
    except RuntimeError:  # no service active (a unit test, the CLI's own grading)
        return ZoneInfo("UTC")


def _naive_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def deadline_utc(spec: AssignmentSpec, zone: dt.tzinfo | None = None) -> dt.datetime | None:
    """The instant the deadline enforces, aware UTC: a deadline written with an offset is
    that instant; one written without is wall time in the course's zone (so
    ``2026-03-30T09:00`` in Europe/Berlin is 07:00 UTC, after the change to summer time).
    Shown on every page and used for every penalty: one instant."""
    deadline = spec.policy.deadline
    if deadline is None:
        return None
    if deadline.tzinfo is None:
        deadline = deadline.replace(tzinfo=zone or course_zone())
    return deadline.astimezone(dt.UTC)


def late_penalty(
    spec: AssignmentSpec, when: dt.datetime, zone: dt.tzinfo | None = None
) -> tuple[int, float]:
    """Whole days late (started 24-hour days after the deadline instant count) and the
    penalty fraction, capped. ``when`` naive is UTC."""
    deadline = deadline_utc(spec, zone)
    if deadline is None:
        return 0, 0.0
    late = _naive_utc(when) - _naive_utc(deadline)
    if late <= dt.timedelta(0):
        return 0, 0.0
    days = math.ceil(late.total_seconds() / 86400)
    penalty = min(spec.policy.late_penalty_cap, spec.policy.late_penalty_per_day * days)
    return days, round(penalty, 4)


def day_bounds(now: dt.datetime, zone: dt.tzinfo | None = None) -> tuple[dt.datetime, dt.datetime]:
    """The course day containing ``now`` (naive UTC): its start and the next day's start,
    as naive UTC; midnight in the course's zone, 23 or 25 hours apart across a change
    of summer time."""
    zone = zone or course_zone()
    local = _naive_utc(now).replace(tzinfo=dt.UTC).astimezone(zone)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    following = start + dt.timedelta(days=1)  # wall-clock arithmetic: the next midnight
    return _naive_utc(start), _naive_utc(following)


def cap_reopens_at(now: dt.datetime | None = None) -> dt.datetime:
    """When the daily cap resets: the next midnight of the course's zone (naive UTC)."""
    return day_bounds(now or utcnow())[1]


def attempts_used_today(user: User, assignment: Assignment, now: dt.datetime | None = None) -> int:
    """Submissions this course day that count: refused files and infrastructure errors
    do not."""
    start = day_bounds(now or utcnow())[0]
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


#: The pages' word for each submission state: badges, the gradebook and its filter, the
#: CSV export and the API's students all read "passed", never "graded".
STATE_LABELS = {
    "queued": "queued",
    "inspecting": "inspecting",
    "evaluating": "evaluating",
    "graded": "passed",
    "failed": "failed",
    "not_gradable": "not gradable",
    "error": "error",
}
#: A student's standing without a scored submission.
NOT_SUBMITTED, NO_VALID = "not submitted", "no valid submission"
#: Every word a standing can be labelled with, in the order the gradebook filter lists them.
STANDING_LABELS = ("passed", "failed", NO_VALID, NOT_SUBMITTED, "queued", "inspecting",
                   "evaluating")  # fmt: skip


def state_label(state: str) -> str:
    return STATE_LABELS.get(state, state.replace("_", " "))


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
        if self.counted_submission is not None:
            return self.counted_submission.settled_state
        sub = self.latest_submission
        return sub.state if sub is not None else "none"

    @property
    def label(self) -> str:
        """The status in the pages' words: the counted submission's ("passed", "failed");
        without one, "queued" and the like while the latest is on its way, "no valid
        submission" when every upload was refused, "not submitted" without any."""
        if self.counted_submission is not None:
            return state_label(self.counted_submission.settled_state)
        latest = self.latest_submission
        if latest is None:
            return NOT_SUBMITTED
        return state_label(latest.state) if latest.is_active else NO_VALID


def standing(user: User, assignment: Assignment, spec: AssignmentSpec | None = None) -> Standing:
    subs = db.session.scalars(
        select(Submission)
        .where(Submission.user_id == user.id, Submission.assignment_id == assignment.id)
        .order_by(Submission.created_at.desc(), Submission.id.desc())
    ).all()
    return standing_from(list(subs), spec or current_spec(assignment))


def counted_score(scores: list[float | None], spec: AssignmentSpec) -> float | None:
    """The grade that counts among a student's scores (newest first): the best or the
    last, per the spec's ``policy.counts``."""
    scored = [s for s in scores if s is not None]
    if not scored:
        return None
    return max(scored) if spec.policy.counts == "best" else scored[0]


def standing_from(subs: list[Submission], spec: AssignmentSpec) -> Standing:
    """``subs`` newest first."""
    scored = [s for s in subs if s.final_score is not None]
    best = max((s.final_score for s in scored), default=None)  # type: ignore[type-var]
    latest = scored[0].final_score if scored else None
    counted = counted_score([s.final_score for s in scored], spec)
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
