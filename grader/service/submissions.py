"""Submissions: accept an upload, queue it, regrade, override, and recover what a
restart left unfinished. Grading itself is the job body's (:mod:`jobs`)."""

from __future__ import annotations

from typing import BinaryIO

from sqlalchemy import func, select, update

from grader import units
from grader.checks import max_score
from grader.formats import EXTENSIONS, has_model_suffix, sniff_head
from grader.service import lifecycle
from grader.service.context import current
from grader.service.db import db
from grader.service.models import (
    ACTIVE_STATES,
    EVALUATING,
    INSPECTING,
    QUEUED,
    Assignment,
    Submission,
    User,
    audit,
    utcnow,
)
from grader.service.policy import attempts_left_today, cap_reopens_at, course_zone, late_penalty
from grader.service.specs import current_spec, spec_of
from grader.service.storage import Empty, StorageError, TooLarge


class SubmissionRefused(Exception):
    """The upload is refused before grading; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def check_filename(filename: str) -> str:
    """The browser's name, for display only: control characters (NUL included, which
    PostgreSQL cannot store) are dropped, and only model files are accepted."""
    name = "".join(ch for ch in (filename or "") if ch.isprintable()).strip()
    if not name:
        raise SubmissionRefused("Choose a model file to upload.")
    if not has_model_suffix(name):
        raise SubmissionRefused(f"Only {', '.join(EXTENSIONS)} model files are accepted.")
    return name[-255:]


def _refuse_over_cap(user: User, assignment: Assignment) -> None:
    left = attempts_left_today(user, assignment)
    if left is not None and left <= 0:
        limit = current_spec(assignment).policy.submissions_per_day
        reopens = units.when(cap_reopens_at(), course_zone())
        raise SubmissionRefused(
            f"You have used all {limit} submissions for today; uploads reopen at {reopens}.", 429
        )


def submit_for_grading(submission_id: int) -> None:
    """Hand a queued submission to the active service's executor."""
    executor = current().executor
    if executor is not None:
        executor.submit(submission_id)


def create_submission(
    user: User, assignment: Assignment, stream: BinaryIO, filename: str
) -> Submission:
    """Store an upload and queue it for grading; refuses over-quota or oversize uploads."""
    name = check_filename(filename)
    if assignment.current_version is None or not assignment.visible:
        raise SubmissionRefused("This assignment is not open.", 404)
    _refuse_over_cap(user, assignment)  # early, before the upload is stored
    service = current()
    limit = service.settings.max_upload_bytes
    try:
        sha, size = service.storage().put(stream, max_bytes=limit)
    except TooLarge:
        raise SubmissionRefused(
            f"The file is larger than the {units.size(limit)} limit.", 413
        ) from None
    except Empty:
        raise SubmissionRefused("The file is empty.") from None
    except StorageError:
        raise SubmissionRefused(
            "Your file could not be stored right now; nothing was recorded. "
            "Please try again in a few minutes.",
            503,
        ) from None
    fmt = sniff_head(service.storage().head(sha, 8))
    try:
        sub = record_upload(user, assignment, sha, size, name, fmt)
    except SubmissionRefused:
        # Over the cap by a parallel upload: the file stays (content-addressed, it may be
        # the very bytes another upload of this moment is about to reference).
        raise
    except BaseException:
        _forget_unreferenced(sha)
        raise
    submit_for_grading(sub.id)
    return sub


def _forget_unreferenced(sha: str) -> None:
    """An upload whose row was not made leaves no file behind (unless another row has it)."""
    try:
        db.session.rollback()
        if db.session.scalar(select(Submission.id).where(Submission.file_sha256 == sha).limit(1)):
            return
        current().storage().delete(sha)
    except Exception:  # the database or store is down: an orphan blob is harmless, if untidy
        pass


def record_upload(
    user: User, assignment: Assignment, sha: str, size: int, name: str, fmt: str
) -> Submission:
    """The queued submission row for a stored file, with the late penalty of this moment.

    The daily cap is checked again here, after taking the student's row lock (a no-op
    UPDATE: a row lock on PostgreSQL, the write lock on SQLite), so parallel uploads
    are counted one after the other and never exceed it."""
    db.session.execute(update(User).where(User.id == user.id).values(active=User.active))
    try:
        _refuse_over_cap(user, assignment)
    except SubmissionRefused:
        db.session.rollback()
        raise
    now = utcnow()
    days, penalty = late_penalty(current_spec(assignment), now)
    sub = Submission(
        user_id=user.id,
        assignment_id=assignment.id,
        spec_version_id=assignment.current_version.id,  # type: ignore[union-attr]
        file_sha256=sha,
        file_size=size,
        original_filename=name,
        file_format=fmt,
        state=QUEUED,
        queue="inspect",
        created_at=now,
        late_days=days,
        penalty=penalty,
    )
    sub.add_log(f"queued: {size} bytes, sha256 {sha[:12]}, format {fmt or 'unknown'}")
    db.session.add(sub)
    db.session.commit()
    return sub


def requeue(sub: Submission, actor: User | None) -> None:
    """Reset a submission for regrading against the assignment's current spec."""
    assignment = sub.assignment
    if assignment.current_version is not None:
        sub.spec_version_id = assignment.current_version.id
        days, penalty = late_penalty(spec_of(assignment.current_version), sub.created_at)
        sub.late_days, sub.penalty = days, penalty
    sub.state = QUEUED
    sub.queue = "inspect"
    sub.job_id = None
    sub.tries = 0  # a new round: the retry limit starts again
    sub.inspection = None  # the spec may have changed what inspection checks
    sub.started_at = sub.inspected_at = sub.loaded_at = None
    sub.evaluated_at = sub.finished_at = None
    sub.error_message = None
    sub.add_log(f"regrade requested by {actor.username if actor else 'system'}")
    audit(actor, "regrade", submission_id=sub.id, assignment_id=sub.assignment_id)


def regrade(subs: list[Submission], actor: User | None) -> int:
    for sub in subs:
        requeue(sub, actor)
    db.session.commit()
    ids = [sub.id for sub in subs]
    for sid in ids:
        submit_for_grading(sid)
    return len(ids)


def override(sub: Submission, score: float, reason: str, actor: User) -> None:
    """An instructor's score, in the assignment's range (0 to its maximum), with a reason;
    audited. Raises ValueError with the rule broken."""
    reason = reason.strip()
    if not reason:
        raise ValueError("A reason is required.")
    maximum = _max_score(sub)
    if not 0 <= score <= maximum:
        raise ValueError(f"The score must be between 0 and {maximum:g}, the assignment's maximum.")
    before = sub.final_score
    sub.override_score = score
    sub.override_reason = reason
    sub.override_by_id = actor.id
    sub.override_at = utcnow()
    audit(actor, "override", submission_id=sub.id, assignment_id=sub.assignment_id,
          old=before, new=score, reason=reason)  # fmt: skip
    sub.add_log(f"score overridden to {score} by {actor.username}: {reason}")
    db.session.commit()


def clear_override(sub: Submission, reason: str, actor: User) -> None:
    """Back to the automatic score (after the late penalty), with a reason; audited."""
    reason = reason.strip()
    if not reason:
        raise ValueError("A reason is required.")
    if sub.override_score is None:
        raise ValueError("This submission has no override.")
    before = sub.override_score
    sub.override_score = sub.override_reason = sub.override_by_id = sub.override_at = None
    audit(actor, "override_cleared", submission_id=sub.id, assignment_id=sub.assignment_id,
          old=before, new=sub.final_score, reason=reason)  # fmt: skip
    sub.add_log(f"override removed by {actor.username}: {reason}")
    db.session.commit()


def _max_score(sub: Submission) -> float:
    if sub.result is not None and sub.result.max_score:
        return float(sub.result.max_score)
    return max_score(spec_of(sub.spec_version))


def queue_counts() -> dict[str, int]:
    rows = db.session.execute(
        select(Submission.state, func.count(Submission.id))
        .where(Submission.state.in_(ACTIVE_STATES))
        .group_by(Submission.state)
    ).all()
    counts = {state: n for state, n in rows}
    return {
        "waiting": counts.get(QUEUED, 0),
        "running": counts.get(INSPECTING, 0) + counts.get(EVALUATING, 0),
    }


def recover_incomplete() -> int:
    """On start-up of an in-process executor, hand back what a previous process left
    unfinished (Celery workers' watchdog does this for ``celery``): a running job is
    released like any interrupted try (counted, and ``error`` past the limit), a
    queued one is sent again."""
    service = current()
    rows = db.session.execute(
        select(Submission.id, Submission.state, Submission.queue, Submission.job_id).where(
            Submission.state.in_(ACTIVE_STATES)
        )
    ).all()
    db.session.rollback()
    work = []
    for sid, state, queue, token in rows:
        if state == QUEUED:
            work.append((sid, queue if queue in ("inspect", "evaluate") else "inspect"))
            continue
        _, again = lifecycle.release(
            sid, token, "the server restarted during the job", service.settings.max_tries
        )
        if again is not None:
            work.append((sid, again))
    if service.executor is not None:
        for sid, queue in work:
            service.executor.submit(sid, queue)
    return len(work)
