"""Copy detection across students: index each graded submission's weight fingerprint,
and record pairs of different students' submissions with the same or nearly the same
weights, for the instructor only. What counts as a pair is ``grader.copymatch``'s rule
(shared with offline batch grading); this module keeps the database index."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, or_, select

from grader import copymatch, fingerprint
from grader.service.db import db
from grader.service.models import SCORED_STATES, CopyPair, Submission, WeightKey, utcnow


def _prints(sub: Submission) -> list[dict[str, Any]]:
    stored = (sub.inspection or {}).get("inspection") or {}
    prints = stored.get("fingerprint")
    return prints if isinstance(prints, list) else []


def record(submission_id: int) -> list[CopyPair]:
    """Index a graded submission and return the pairs it forms (also stored)."""
    sub = db.session.get(Submission, submission_id)
    if sub is None or sub.state not in SCORED_STATES:
        return []
    prints = _prints(sub)
    db.session.execute(delete(WeightKey).where(WeightKey.submission_id == sub.id))
    keys = fingerprint.keys(prints)
    db.session.add_all(
        WeightKey(submission_id=sub.id, assignment_id=sub.assignment_id, user_id=sub.user_id,
                  key=key)
        for key in keys
    )  # fmt: skip
    by_key = select(WeightKey.submission_id).where(
        WeightKey.assignment_id == sub.assignment_id,
        WeightKey.user_id != sub.user_id,
        WeightKey.key.in_(keys),
    )
    same_file = select(Submission.id).where(
        Submission.assignment_id == sub.assignment_id,
        Submission.user_id != sub.user_id,
        Submission.file_sha256 == sub.file_sha256,
    )
    candidates = db.session.scalars(
        select(Submission).where(
            or_(Submission.id.in_(by_key), Submission.id.in_(same_file)),
            Submission.state.in_(SCORED_STATES),
        )
    ).all()
    found = []
    for other in candidates:
        pair = _compare(sub, other, prints)
        if pair is not None:
            found.append(pair)
    db.session.commit()
    return found


def _compare(sub: Submission, other: Submission, prints: list[dict[str, Any]]) -> CopyPair | None:
    match = copymatch.compare(sub.file_sha256, prints, other.file_sha256, _prints(other))
    if match is None:
        return None
    first, second = sorted((sub.id, other.id))
    pair = db.session.scalar(
        select(CopyPair).where(CopyPair.first_id == first, CopyPair.second_id == second)
    )
    if pair is None:
        pair = CopyPair(first_id=first, second_id=second, assignment_id=sub.assignment_id)
        db.session.add(pair)
    pair.similarity, pair.kind, pair.found_at = match.similarity, match.kind, utcnow()
    return pair


def pairs(assignment_id: str) -> list[CopyPair]:
    """The pairs found for an assignment, most similar first."""
    return list(
        db.session.scalars(
            select(CopyPair)
            .where(CopyPair.assignment_id == assignment_id)
            .order_by(CopyPair.similarity.desc(), CopyPair.id)
        )
    )
