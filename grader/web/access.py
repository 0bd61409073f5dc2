"""Authorisation helpers: students see only their own things, and get 404 (never
403) for anyone else's, so ids cannot be enumerated."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort, request
from flask_login import current_user, login_required

from grader.probes import GENERALISATION
from grader.service.db import db
from grader.service.models import Assignment, Submission

F = TypeVar("F", bound=Callable[..., Any])


def instructor_required(view: F) -> F:
    @wraps(view)
    @login_required
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_instructor:
            abort(404)
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def visible_submission(submission_id: int) -> Submission:
    if not 0 < submission_id <= MAX_ID:
        abort(404)
    sub = db.session.get(Submission, submission_id)
    if sub is None:
        abort(404)
    if not current_user.is_instructor and sub.user_id != current_user.id:
        abort(404)
    return sub


ASSIGNMENT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_ID = 2**31 - 1


def parse_id(raw: str) -> int | None:
    """A row id from a URL or form, or None: ASCII digits only ('³'.isdigit() is True,
    but int() cannot read it) and within the column's range."""
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) <= MAX_ID:
        return None
    return int(raw)


def query_text(name: str, limit: int) -> str:
    """A query parameter as text for a filter: without NUL, which PostgreSQL refuses even
    as a bound parameter, and at most ``limit`` characters."""
    return request.args.get(name, "").replace("\x00", "").strip()[:limit]


def get_assignment(assignment_id: str) -> Assignment | None:
    """Look up by id; ids that cannot be valid never reach the database."""
    if not ASSIGNMENT_ID.match(assignment_id or ""):
        return None
    return db.session.get(Assignment, assignment_id)


def visible_assignment(assignment_id: str) -> Assignment:
    assignment = get_assignment(assignment_id)
    if assignment is None or assignment.current_version is None:
        abort(404)
    if not assignment.visible and not current_user.is_instructor:
        abort(404)
    return assignment


def visible_report(report: dict[str, Any], instructor: bool) -> dict[str, Any]:
    """A report as its viewer may see it: a student sees the generalisation probe (its
    verdict and its flip/shift accuracies) only when it changed their grade (the spec's
    ``integrity.action: zero``)."""
    verdict = report.get("integrity")
    if instructor or (verdict or {}).get("action") == "zero":
        return report
    shown = {**report, "integrity": None}
    probes = report.get("probes")
    if probes:
        variants = {
            k: v for k, v in (probes.get("variants") or {}).items() if k not in GENERALISATION
        }
        shown["probes"] = {**probes, "variants": variants}
    return shown
