"""Grading services shared by pages, the API and the CLI: specs, policies,
submissions and the job body that calls the grading pipeline."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from flask import current_app
from sqlalchemy import func, select

from grader.errors import ConfigurationError
from grader.report import Report
from grader.settings import Settings, get_settings
from grader.spec import AssignmentSpec, parse_spec
from grader.web.extensions import db
from grader.web.models import (
    ACTIVE_STATES,
    ERROR,
    EVALUATING,
    FAILED,
    FREE_STATES,
    GRADED,
    INSPECTING,
    NOT_GRADABLE,
    QUEUED,
    SCORED_STATES,
    Assignment,
    Result,
    SpecVersion,
    Submission,
    User,
    audit,
    utcnow,
)
from grader.web.storage import (
    S3Storage,
    Storage,
    StorageError,
    TooLarge,
    open_storage,
    sniff_format,
)

ACCEPTED_EXTENSIONS = (".keras", ".h5")


class SubmissionRefused(Exception):
    """The upload is refused before grading; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def settings() -> Settings:
    return current_app.config.get("GRADER_SETTINGS") or get_settings()


def storage() -> Storage | S3Storage:
    """The configured file store: local folder, or S3 when ``GRADER_S3_BUCKET`` is set."""
    return open_storage(current_app.config)


# --- Specs -----------------------------------------------------------------


def spec_of(version: SpecVersion) -> AssignmentSpec:
    return parse_spec(version.yaml_text, f"{version.assignment_id} v{version.version}")


def current_spec(assignment: Assignment) -> AssignmentSpec:
    assert assignment.current_version is not None
    return spec_of(assignment.current_version)


def import_spec(text: str, source: str, actor: User | None = None) -> tuple[Assignment, str]:
    """Add or update an assignment from spec YAML; returns (assignment, what happened).

    Raises ConfigurationError with a readable message for an invalid spec.
    """
    spec = parse_spec(text, source)
    sha = hashlib.sha256(text.encode()).hexdigest()
    assignment = db.session.get(Assignment, spec.id)
    if assignment is None:
        assignment = Assignment(id=spec.id, title=spec.title)
        db.session.add(assignment)
        db.session.flush()
        outcome = "created"
    elif assignment.current_version is not None and assignment.current_version.sha256 == sha:
        return assignment, "unchanged"
    else:
        outcome = "updated"
    last = db.session.scalar(
        select(func.max(SpecVersion.version)).where(SpecVersion.assignment_id == spec.id)
    )
    version = SpecVersion(
        assignment_id=spec.id,
        version=(last or 0) + 1,
        yaml_text=text,
        sha256=sha,
        created_by_id=actor.id if actor else None,
    )
    db.session.add(version)
    db.session.flush()
    assignment.current_version = version
    assignment.title = spec.title
    audit(actor, f"assignment_{outcome}", assignment_id=spec.id, version=version.version)
    db.session.commit()
    return assignment, outcome


def import_spec_files(paths: list[Path], actor: User | None = None) -> list[tuple[str, str]]:
    out = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assignment, outcome = import_spec(text, str(path), actor)
        if assignment.id != path.stem:
            raise ConfigurationError(f"{path}: id '{assignment.id}' does not match the file name")
        out.append((assignment.id, outcome))
    return out


# --- Policies --------------------------------------------------------------


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


def standing(user: User, assignment: Assignment, spec: AssignmentSpec | None = None) -> Standing:
    subs = db.session.scalars(
        select(Submission)
        .where(Submission.user_id == user.id, Submission.assignment_id == assignment.id)
        .order_by(Submission.created_at.desc(), Submission.id.desc())
    ).all()
    return standing_from(subs, spec or current_spec(assignment))


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
    )


# --- Submissions -----------------------------------------------------------


def check_filename(filename: str) -> str:
    name = (filename or "").strip()
    if not name:
        raise SubmissionRefused("Choose a model file to upload.")
    if not name.lower().endswith(ACCEPTED_EXTENSIONS):
        raise SubmissionRefused("Only .keras and .h5 model files are accepted.")
    return name[-255:]


def create_submission(
    user: User, assignment: Assignment, stream: BinaryIO, filename: str
) -> Submission:
    """Store an upload and queue it for grading; refuses over-quota or oversize uploads."""
    name = check_filename(filename)
    if assignment.current_version is None or not assignment.visible:
        raise SubmissionRefused("This assignment is not open.", 404)
    spec = current_spec(assignment)
    left = attempts_left_today(user, assignment)
    if left is not None and left <= 0:
        raise SubmissionRefused(
            f"You have used all {spec.policy.submissions_per_day} submissions for today; "
            "try again tomorrow (UTC).",
            429,
        )
    limit = settings().max_upload_bytes
    try:
        sha, size = storage().put(stream, max_bytes=limit)
    except TooLarge:
        raise SubmissionRefused(
            f"The file is larger than the {limit // (1024 * 1024)} MB limit.", 413
        ) from None
    if size == 0:
        raise SubmissionRefused("The file is empty.")
    fmt = sniff_format(storage().head(sha, 8))
    sub = record_upload(user, assignment, sha, size, name, fmt)
    from grader.web.jobs import submit_for_grading

    submit_for_grading(sub.id)
    return sub


def record_upload(
    user: User, assignment: Assignment, sha: str, size: int, name: str, fmt: str
) -> Submission:
    """The queued submission row for a stored file, with the late penalty of this moment."""
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
    sub.started_at = sub.inspected_at = sub.loaded_at = None
    sub.evaluated_at = sub.finished_at = None
    sub.error_message = None
    sub.add_log(f"regrade requested by {actor.username if actor else 'system'}")
    audit(actor, "regrade", submission_id=sub.id, assignment_id=sub.assignment_id)


def regrade(subs: list[Submission], actor: User | None) -> int:
    for sub in subs:
        requeue(sub, actor)
    db.session.commit()
    from grader.web.jobs import submit_for_grading

    for sub in subs:
        submit_for_grading(sub.id)
    return len(subs)


def override(sub: Submission, score: float, reason: str, actor: User) -> None:
    reason = reason.strip()
    if not reason:
        raise ValueError("A reason is required.")
    before = sub.final_score
    sub.override_score = score
    sub.override_reason = reason
    sub.override_by_id = actor.id
    sub.override_at = utcnow()
    audit(
        actor,
        "override",
        submission_id=sub.id,
        assignment_id=sub.assignment_id,
        old=before,
        new=score,
        reason=reason,
    )
    sub.add_log(f"score overridden to {score} by {actor.username}: {reason}")
    db.session.commit()


# --- The job body ----------------------------------------------------------

_PHASE_STATES = {"inspecting": INSPECTING, "evaluating": EVALUATING}
_STATUS_STATES = {"passed": GRADED, "failed": FAILED, "not_gradable": NOT_GRADABLE}


def _on_phase(sub: Submission, phase: str) -> None:
    now = utcnow()
    if phase in ("loading", "loaded"):
        sub.loaded_at = now
    elif phase == "evaluating":
        sub.inspected_at = sub.inspected_at or now
    elif phase == "scoring":
        sub.evaluated_at = now
    if phase in _PHASE_STATES:
        sub.state = _PHASE_STATES[phase]
    sub.add_log(f"phase: {phase}")
    db.session.commit()


def run_grading(submission_id: int) -> None:
    """Grade one submission and store its result. Safe to run twice: the result
    row is replaced, never duplicated."""
    from grader.pipeline import grade_file

    sub = db.session.get(Submission, submission_id)
    if sub is None or sub.state not in ACTIVE_STATES:
        return
    sub.attempts += 1
    sub.started_at = utcnow()
    sub.worker_host = socket.gethostname()
    sub.state = INSPECTING
    sub.add_log(f"started on {sub.worker_host} (try {sub.attempts})")
    db.session.commit()
    try:
        spec = spec_of(sub.spec_version)
        with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
            # The pipeline sees a name we choose from the content, never the browser's,
            # and the copy it grades is the one verified against the sha256.
            model_path = storage().fetch(
                sub.file_sha256, Path(tmp) / f"model.{sub.file_format or 'keras'}"
            )
            report = grade_file(
                model_path,
                spec,
                settings=settings(),
                on_phase=lambda phase: _on_phase(sub, phase),
            )
    except (StorageError, ConfigurationError, Exception) as exc:  # infrastructure failure
        db.session.rollback()
        sub = db.session.get(Submission, submission_id)
        assert sub is not None
        sub.state = ERROR
        sub.error_message = f"{type(exc).__name__}: {exc}"[:2000]
        sub.finished_at = utcnow()
        sub.add_log(f"error: {sub.error_message}")
        db.session.commit()
        current_app.logger.exception("grading submission %s failed", submission_id)
        return
    store_report(sub, report)


def store_report(sub: Submission, report: Report) -> None:
    data = report.model_dump(mode="json")
    result = sub.result or Result(submission_id=sub.id)
    result.status = report.status
    result.score = report.score
    result.max_score = report.max_score
    result.accuracy = report.metrics.accuracy if report.metrics else None
    result.reason = report.reason
    result.report = data
    result.grader_version = report.grader_version[:40]
    result.spec_version_id = sub.spec_version_id
    result.created_at = utcnow()
    sub.result = result
    now = utcnow()
    sub.inspected_at = sub.inspected_at or now
    sub.evaluated_at = sub.evaluated_at or now
    sub.finished_at = now
    sub.state = _STATUS_STATES[report.status]
    sub.add_log(f"finished: {report.status}, score {report.score}/{report.max_score}")
    db.session.commit()


def queue_counts() -> dict[str, int]:
    rows = db.session.execute(
        select(Submission.state, func.count(Submission.id))
        .where(Submission.state.in_(ACTIVE_STATES))
        .group_by(Submission.state)
    ).all()
    counts = dict(rows)
    return {
        "waiting": counts.get(QUEUED, 0),
        "running": counts.get(INSPECTING, 0) + counts.get(EVALUATING, 0),
    }


def queue_position(sub: Submission) -> int | None:
    """Submissions ahead of this one in its queue (None unless queued)."""
    from grader.queue.lifecycle import queue_position as position

    return position(sub)


def current_phase(sub: Submission) -> str:
    """Where the submission is now, in words (status page, ``grader queue``)."""
    from grader.queue.lifecycle import current_phase as phase

    return phase(sub)


def recover_incomplete() -> int:
    """On start-up of the in-process (thread) executor, hand back what a previous
    process left unfinished. The Celery workers' watchdog does this for ``celery``."""
    subs = db.session.scalars(select(Submission).where(Submission.state.in_(ACTIVE_STATES))).all()
    for sub in subs:
        sub.state = QUEUED
        sub.add_log("re-queued after a restart")
    db.session.commit()
    from grader.web.jobs import submit_for_grading

    for sub in subs:
        submit_for_grading(sub.id)
    return len(subs)


SCORED = SCORED_STATES
