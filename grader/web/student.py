"""Student pages: assignments, upload, live status, feedback, history, download."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    send_file,
    send_from_directory,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.wrappers import Response

from grader.service.context import storage
from grader.service.db import db
from grader.service.models import TERMINAL_STATES, Assignment, AuditLog, Submission
from grader.service.policy import attempts_left_today, cap_reopens_at, standing
from grader.service.specs import current_spec
from grader.service.submissions import SubmissionRefused, create_submission
from grader.web import charts
from grader.web.access import visible_assignment, visible_report, visible_submission
from grader.web.forms import ConfirmForm, EmptyForm, OverrideForm, UploadForm

bp = Blueprint("student", __name__)


@bp.get("/favicon.ico")
def favicon() -> Response:
    """Browsers ask for /favicon.ico whatever the page says: the same icon, never a 404."""
    return send_from_directory(
        current_app.static_folder or "", "favicon.svg", mimetype="image/svg+xml", max_age=86400
    )


@bp.get("/")
@login_required
def index() -> str | Response:
    if current_user.is_instructor:
        return redirect(url_for("instructor.index"))
    assignments = db.session.scalars(
        select(Assignment)
        .where(Assignment.visible.is_(True), Assignment.current_version_id.is_not(None))
        .order_by(Assignment.id)
    ).all()
    rows = []
    for assignment in assignments:
        spec = current_spec(assignment)
        rows.append(
            {
                "assignment": assignment,
                "spec": spec,
                "standing": standing(current_user, assignment, spec),
                "left": attempts_left_today(current_user, assignment),
            }
        )
    return render_template("student/index.html", rows=rows)


@bp.get("/assignments/<assignment_id>")
@login_required
def assignment(assignment_id: str) -> str:
    item = visible_assignment(assignment_id)
    spec = current_spec(item)
    history = db.session.scalars(
        select(Submission)
        .where(Submission.user_id == current_user.id, Submission.assignment_id == item.id)
        .order_by(Submission.id.desc())
    ).all()
    return render_template(
        "student/assignment.html",
        assignment=item,
        spec=spec,
        form=UploadForm(),
        history=history,
        standing=standing(current_user, item, spec),
        left=attempts_left_today(current_user, item),
        reopens=cap_reopens_at(),
    )


@bp.post("/assignments/<assignment_id>/submit")
@login_required
def submit(assignment_id: str) -> str | Response:
    item = visible_assignment(assignment_id)
    form = UploadForm()
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for error in errors:
                flash(str(error), "error")
        return redirect(url_for("student.assignment", assignment_id=item.id))
    upload = form.model.data
    try:
        sub = create_submission(current_user, item, upload.stream, upload.filename or "")
    except SubmissionRefused as exc:
        if exc.status == 413:
            return render_template("error.html", code=413, error=None), 413
        flash(exc.message, "error")
        return redirect(url_for("student.assignment", assignment_id=item.id))
    return redirect(url_for("student.submission", submission_id=sub.id))


@bp.get("/submissions")
@login_required
def history() -> str:
    subs = db.session.scalars(
        select(Submission)
        .where(Submission.user_id == current_user.id)
        .order_by(Submission.id.desc())
    ).all()
    return render_template("student/history.html", subs=subs)


@bp.get("/submissions/<int:submission_id>")
@login_required
def submission(submission_id: int) -> str:
    sub = visible_submission(submission_id)
    report = visible_report(sub.result.report, current_user.is_instructor) if sub.result else None
    metrics = (report or {}).get("metrics") if sub.state not in ("queued",) else None
    audit_entries: list[AuditLog] = []
    attempts: list[Submission] = []
    if current_user.is_instructor:
        audit_entries = list(db.session.scalars(
            select(AuditLog).where(AuditLog.submission_id == sub.id).order_by(AuditLog.id)
        ))  # fmt: skip
        # The student's attempts at this assignment, for the links back to the others.
        attempts = list(db.session.scalars(
            select(Submission)
            .where(Submission.user_id == sub.user_id, Submission.assignment_id == sub.assignment_id)
            .order_by(Submission.id)
        ))  # fmt: skip
    return render_template(
        "student/submission.html",
        sub=sub,
        report=report if sub.state in TERMINAL_STATES else None,
        metrics=metrics if sub.state in TERMINAL_STATES else None,
        confusion=charts.confusion_rows(metrics["confusion_matrix"]) if metrics else None,
        classes=charts.class_labels(),
        audit_entries=audit_entries,
        attempts=attempts,
        override_form=OverrideForm(),
        empty_form=EmptyForm(),
        confirm_form=ConfirmForm(),
    )


@bp.app_template_global("queue_info")
def queue_info(sub: Submission) -> dict[str, object]:
    """Queue position (0 = next) and the current phase, for the live status fragment."""
    from grader.service.lifecycle import current_phase, queue_position

    return {
        "position": queue_position(sub),
        "phase": current_phase(sub),
        "queue": "inspect" if sub.queue == "default" else sub.queue,
    }


@bp.get("/submissions/<int:submission_id>/status")
@login_required
def status(submission_id: int) -> Response:
    """The htmx poll: a small fragment; once finished the page reloads itself."""
    sub = visible_submission(submission_id)
    response = make_response(render_template("student/_status.html", sub=sub))
    if sub.state in TERMINAL_STATES:
        response.headers["HX-Refresh"] = "true"
    return response


@bp.get("/submissions/<int:submission_id>/download")
@login_required
def download(submission_id: int) -> Response:
    sub = visible_submission(submission_id)
    try:
        fh = storage().open(sub.file_sha256)
    except Exception:
        abort(404)
    ext = sub.file_format or "keras"
    return send_file(
        fh,
        mimetype="application/octet-stream",
        as_attachment=True,
        download_name=f"submission-{sub.id}.{ext}",
    )
