"""Database models: users, assignments with pinned spec versions, submissions,
results (the full report as JSON), API tokens and the audit log.

A single course is assumed. ``Submission.tries`` counts executor tries of the
current grading round (reset by a regrade), ``tries_total`` all of them; a
student's *attempts* are their submissions that count (see ``service.policy``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from grader.service.context import current
from grader.service.database import Base

ROLES = ("student", "instructor")

# Submission states, in order. Terminal states are the last four.
QUEUED, INSPECTING, EVALUATING = "queued", "inspecting", "evaluating"
GRADED, FAILED, NOT_GRADABLE, ERROR = "graded", "failed", "not_gradable", "error"
STATES = (QUEUED, INSPECTING, EVALUATING, GRADED, FAILED, NOT_GRADABLE, ERROR)
ACTIVE_STATES = (QUEUED, INSPECTING, EVALUATING)
TERMINAL_STATES = (GRADED, FAILED, NOT_GRADABLE, ERROR)
# A refused file or an infrastructure failure does not use up an attempt.
FREE_STATES = (NOT_GRADABLE, ERROR)
SCORED_STATES = (GRADED, FAILED)
# The state a stored result stands for (a regrade keeps it until the new one is in).
RESULT_STATES = {"passed": GRADED, "failed": FAILED, "not_gradable": NOT_GRADABLE}


def utcnow() -> dt.datetime:
    """Naive UTC: stored the same way on SQLite and PostgreSQL."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20), default="student")
    password_hash: Mapped[str | None] = mapped_column(String(256))
    active: Mapped[bool] = mapped_column(default=True)
    # One-time login link from a roster import (hashed; cleared when used).
    setup_token_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    setup_token_expires: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    submissions: Mapped[list[Submission]] = relationship(
        back_populates="user", foreign_keys="Submission.user_id"
    )

    # What Flask-Login asks of a user object (kept here so the model needs no web import).
    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        return str(self.id)

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_instructor(self) -> bool:
        return self.role == "instructor"

    def set_password(self, password: str) -> None:
        # Tests lower the cost through the service's password_method; production keeps scrypt.
        try:
            method = current().password_method
        except RuntimeError:
            method = "scrypt"
        self.password_hash = generate_password_hash(password, method=method)

    def check_password(self, password: str) -> bool:
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)

    def new_setup_token(self, days: int = 14) -> str:
        """Return a fresh one-time token; only its hash is stored."""
        token = secrets.token_urlsafe(32)
        self.setup_token_hash = hash_token(token)
        self.setup_token_expires = utcnow() + dt.timedelta(days=days)
        return token

    @property
    def display_name(self) -> str:
        return self.name or self.username


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]

    user: Mapped[User] = relationship()


class Assignment(Base):
    __tablename__ = "assignments"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the spec id
    title: Mapped[str] = mapped_column(String(300))
    current_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("spec_versions.id", use_alter=True, name="fk_assignments_current_version")
    )
    visible: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    current_version: Mapped[SpecVersion | None] = relationship(
        foreign_keys=[current_version_id], post_update=True
    )


class SpecVersion(Base):
    """An immutable copy of a spec; submissions are graded against a pinned one."""

    __tablename__ = "spec_versions"
    __table_args__ = (UniqueConstraint("assignment_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[str] = mapped_column(
        ForeignKey("assignments.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int]
    yaml_text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Submission(Base):
    __tablename__ = "submissions"
    __table_args__ = (Index("ix_submissions_user_assignment", "user_id", "assignment_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    assignment_id: Mapped[str] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"))
    spec_version_id: Mapped[int] = mapped_column(ForeignKey("spec_versions.id"))
    file_sha256: Mapped[str] = mapped_column(String(64))
    file_size: Mapped[int] = mapped_column(default=0)
    # The browser's name, for display only; never used in a path.
    original_filename: Mapped[str] = mapped_column(String(255), default="")
    file_format: Mapped[str] = mapped_column(String(10), default="")
    state: Mapped[str] = mapped_column(String(20), default=QUEUED, index=True)
    queue: Mapped[str] = mapped_column(String(40), default="default")
    # Per-phase timestamps (queued = created_at).
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[dt.datetime | None]
    inspected_at: Mapped[dt.datetime | None]
    loaded_at: Mapped[dt.datetime | None]
    evaluated_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    heartbeat_at: Mapped[dt.datetime | None]  # a running job's last sign of life
    worker_host: Mapped[str | None] = mapped_column(String(200))
    job_id: Mapped[str | None] = mapped_column(String(100))
    # Executor tries (not a student's attempts): this grading round, and ever.
    tries: Mapped[int] = mapped_column(default=0, server_default="0")
    tries_total: Mapped[int] = mapped_column(default=0)
    error_message: Mapped[str | None] = mapped_column(Text)
    # What static inspection found (trusted: computed here), so evaluation need not redo it.
    inspection: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    log: Mapped[str] = mapped_column(Text, default="")
    # Late policy, fixed at upload time.
    late_days: Mapped[int] = mapped_column(default=0)
    penalty: Mapped[float] = mapped_column(default=0.0)
    # Instructor override (audited).
    override_score: Mapped[float | None]
    override_reason: Mapped[str | None] = mapped_column(Text)
    override_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    override_at: Mapped[dt.datetime | None]

    user: Mapped[User] = relationship(back_populates="submissions", foreign_keys=[user_id])
    assignment: Mapped[Assignment] = relationship()
    spec_version: Mapped[SpecVersion] = relationship()
    result: Mapped[Result | None] = relationship(
        back_populates="submission", uselist=False, cascade="all, delete-orphan"
    )

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def uses_attempt(self) -> bool:
        return self.state not in FREE_STATES

    @property
    def settled_state(self) -> str:
        """The state its figures come from: its own; while a regrade is on its way, the
        one its previous result stands for, so that the previous score still counts (and
        the pass rate holds) until the new one is in."""
        if self.is_active and self.result is not None:
            return RESULT_STATES.get(self.result.status, self.state)
        return self.state

    @property
    def raw_score(self) -> float | None:
        if self.result is None or self.settled_state not in SCORED_STATES:
            return None
        return self.result.score

    @property
    def final_score(self) -> float | None:
        """Override if any, else the grade after the late penalty."""
        if self.override_score is not None:
            return self.override_score
        raw = self.raw_score
        if raw is None:
            return None
        return round(raw * (1.0 - self.penalty), 2)

    @property
    def integrity(self) -> dict[str, Any] | None:
        """The generalisation probe's verdict, when it flagged this submission."""
        if self.result is None or self.settled_state not in SCORED_STATES:
            return None
        verdict = (self.result.report or {}).get("integrity")
        return verdict if verdict and verdict.get("flagged") else None

    @property
    def diagnosis_codes(self) -> list[str]:
        report = self.result.report if self.result is not None else None
        return [d.get("code", "") for d in (report or {}).get("diagnosis") or []]

    def add_log(self, line: str) -> None:
        stamp = utcnow().isoformat(timespec="seconds")
        self.log = (self.log or "") + f"{stamp} {line}\n"


class Result(Base):
    """The grader's verdict for one submission; replaced on regrade (one per submission)."""

    __tablename__ = "results"

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(
        ForeignKey("submissions.id", ondelete="CASCADE"), unique=True
    )
    status: Mapped[str] = mapped_column(String(20))
    score: Mapped[float] = mapped_column(default=0.0)
    max_score: Mapped[float] = mapped_column(default=0.0)
    accuracy: Mapped[float | None]
    reason: Mapped[str | None] = mapped_column(Text)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    grader_version: Mapped[str] = mapped_column(String(40), default="")
    spec_version_id: Mapped[int | None] = mapped_column(ForeignKey("spec_versions.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    submission: Mapped[Submission] = relationship(back_populates="result")


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(50))
    submission_id: Mapped[int | None] = mapped_column(
        ForeignKey("submissions.id", ondelete="SET NULL"), index=True
    )
    assignment_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    actor: Mapped[User | None] = relationship()


def audit(actor: User | None, action: str, **detail: Any) -> AuditLog:
    """Record who did what; the caller commits."""
    entry = AuditLog(
        actor_id=actor.id if actor else None,
        action=action,
        submission_id=detail.pop("submission_id", None),
        assignment_id=detail.pop("assignment_id", None),
        detail=detail,
    )
    current().session.add(entry)
    return entry


class WeightKey(Base):
    """One index key of a graded submission's weight fingerprint (grader.fingerprint):
    submissions sharing a key are candidate copies, found without comparing every pair."""

    __tablename__ = "weight_keys"
    __table_args__ = (Index("ix_weight_keys_assignment_key", "assignment_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(
        ForeignKey("submissions.id", ondelete="CASCADE"), index=True
    )
    assignment_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(80))


class CopyPair(Base):
    """Two students' submissions with identical or near-identical weights (instructors only)."""

    __tablename__ = "copy_pairs"
    __table_args__ = (UniqueConstraint("first_id", "second_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[str] = mapped_column(String(64), index=True)
    first_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    second_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    similarity: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(30))  # identical file | identical weights | similar
    found_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    first: Mapped[Submission] = relationship(foreign_keys=[first_id])
    second: Mapped[Submission] = relationship(foreign_keys=[second_id])
