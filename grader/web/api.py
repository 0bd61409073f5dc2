"""The JSON API for ``grader submit`` / ``grader status``: bearer tokens, no cookies,
exempt from CSRF (a token in a header cannot be forged cross-site)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, abort, g, jsonify, request, url_for
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response

from grader.service.db import db
from grader.service.lifecycle import current_phase, queue_position
from grader.service.models import (
    TERMINAL_STATES,
    ApiToken,
    Assignment,
    Submission,
    User,
    hash_token,
    utcnow,
)
from grader.service.policy import attempts_left_today, deadline_utc, standing
from grader.service.specs import current_spec
from grader.service.submissions import SubmissionRefused, create_submission
from grader.web.access import get_assignment, parse_id, query_text, visible_report
from grader.web.openapi import OPENAPI

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _error(status: int, message: str) -> Response:
    names = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 413: "Payload Too Large",
             429: "Too Many Requests"}  # fmt: skip
    response = jsonify(error=names.get(status, "Error"), message=message, status=status)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="grader"'
    return response


# Query parameters each endpoint understands; anything else is a client mistake.
QUERY_PARAMS = {"api.submissions": {"assignment"}}


@bp.before_request
def authenticate() -> Response | None:
    if request.endpoint == "api.openapi":
        return None
    unknown = set(request.args) - QUERY_PARAMS.get(request.endpoint or "", set())
    if unknown:
        return _error(400, f"Unknown query parameter(s): {', '.join(sorted(unknown))[:200]}")
    header = request.headers.get("Authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        return _error(
            401, "Send 'Authorization: Bearer <token>'; create a token on your account page."
        )
    token = db.session.scalar(
        select(ApiToken).where(ApiToken.token_hash == hash_token(raw.strip()))
    )
    if token is None or not token.user.active:
        return _error(401, "Unknown or revoked token.")
    now = utcnow()
    # Not a write per request: reads keep working while the database takes no writes.
    if token.last_used_at is None or now - token.last_used_at > TOKEN_TOUCH:
        token.last_used_at = now
        try:
            db.session.commit()
        except SQLAlchemyError:
            db.session.rollback()
    g.api_user = token.user
    return None


#: How stale ``ApiToken.last_used_at`` may get (shown on the account page, to the minute).
TOKEN_TOUCH = dt.timedelta(minutes=5)


def _user() -> User:
    return g.api_user


def _assignment_json(item: Assignment, user: User) -> dict[str, Any]:
    spec = current_spec(item)
    st = standing(user, item, spec)
    deadline = deadline_utc(spec)
    return {
        "id": item.id,
        "title": item.title,
        "description": spec.description,
        "deadline": deadline.isoformat() if deadline else None,  # the instant enforced, UTC
        "submissions_per_day": spec.policy.submissions_per_day,
        "attempts_left_today": attempts_left_today(user, item),
        "counts": spec.policy.counts,
        "best_score": st.best,
        "latest_score": st.latest,
        "latest_state": st.latest_submission.state if st.latest_submission else None,
    }


def _submission_json(sub: Submission) -> dict[str, Any]:
    def iso(value: Any) -> str | None:
        return value.isoformat() + "Z" if value else None

    result = sub.result if sub.state in TERMINAL_STATES else None
    return {
        "id": sub.id,
        "assignment_id": sub.assignment_id,
        "state": sub.state,
        "finished": sub.state in TERMINAL_STATES,
        "file_sha256": sub.file_sha256,
        "file_size": sub.file_size,
        "created_at": iso(sub.created_at),
        "finished_at": iso(sub.finished_at),
        "status": result.status if result else None,
        "score": sub.final_score,
        "raw_score": sub.raw_score,
        "max_score": result.max_score if result else None,
        "accuracy": result.accuracy if result else None,
        "reason": (result.reason if result else None) or None,
        "late_days": sub.late_days,
        "penalty": sub.penalty,
        "uses_attempt": sub.uses_attempt,
        "queue_position": queue_position(sub),
        "phase": current_phase(sub),
        "url": url_for("student.submission", submission_id=sub.id, _external=True),
    }


def _own_submission(raw_id: str) -> Submission:
    missing = f"There is no submission {raw_id[:40]!r} that you can see."
    sid = parse_id(raw_id)
    if sid is None:
        abort(404, description=missing)
    sub = db.session.get(Submission, sid)
    if sub is None or (sub.user_id != _user().id and not _user().is_instructor):
        abort(404, description=missing)
    return sub


@bp.get("/openapi.json")
def openapi() -> Response:
    doc = dict(OPENAPI)
    doc["servers"] = [{"url": request.host_url.rstrip("/") + "/api/v1"}]
    return jsonify(doc)


@bp.get("/me")
def me() -> Response:
    user = _user()
    return jsonify(username=user.username, name=user.name, role=user.role)


@bp.get("/assignments")
def assignments() -> Response:
    items = db.session.scalars(
        select(Assignment)
        .where(Assignment.visible.is_(True), Assignment.current_version_id.is_not(None))
        .order_by(Assignment.id)
    ).all()
    return jsonify([_assignment_json(item, _user()) for item in items])


def _visible(assignment_id: str) -> Assignment:
    item = get_assignment(assignment_id)
    if item is None or item.current_version is None or not item.visible:
        abort(404, description=f"There is no open assignment {assignment_id[:80]!r}.")
    return item


@bp.get("/assignments/<assignment_id>")
def assignment(assignment_id: str) -> Response:
    return jsonify(_assignment_json(_visible(assignment_id), _user()))


@bp.post("/assignments/<assignment_id>/submissions")
def submit(assignment_id: str) -> Response:
    item = _visible(assignment_id)
    upload = request.files.get("model")
    if upload is None:
        return _error(400, "Send the model file as multipart form field 'model'.")
    try:
        sub = create_submission(_user(), item, upload.stream, upload.filename or "")
    except SubmissionRefused as exc:
        return _error(exc.status, exc.message)
    response = jsonify(_submission_json(sub))
    response.status_code = 201
    response.headers["Location"] = url_for("api.submission", submission_id=str(sub.id))
    return response


@bp.get("/submissions")
def submissions() -> Response:
    query = select(Submission).where(Submission.user_id == _user().id)
    if "assignment" in request.args:
        query = query.where(Submission.assignment_id == query_text("assignment", 64))
    subs = db.session.scalars(query.order_by(Submission.id.desc()).limit(200)).all()
    return jsonify([_submission_json(sub) for sub in subs])


@bp.get("/submissions/<submission_id>")
def submission(submission_id: str) -> Response:
    return jsonify(_submission_json(_own_submission(submission_id)))


@bp.get("/submissions/<submission_id>/report")
def report(submission_id: str) -> Response:
    sub = _own_submission(submission_id)
    if sub.result is None or sub.state not in TERMINAL_STATES:
        return _error(404, "Not graded yet.")
    return jsonify(visible_report(sub.result.report, _user().is_instructor))
