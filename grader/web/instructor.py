"""Instructor (and TA) pages: dashboards, gradebook, regrade, overrides, imports."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import func, select

from grader.data import test_set_available
from grader.errors import ConfigurationError
from grader.service import copies
from grader.service.context import settings
from grader.service.db import db
from grader.service.models import Assignment, AuditLog, Submission, User
from grader.service.policy import STANDING_LABELS, late_penalty, standing_from
from grader.service.specs import current_spec, import_spec
from grader.service.submissions import clear_override, override, queue_counts, regrade
from grader.web import charts
from grader.web.access import (
    MAX_ID,
    get_assignment,
    instructor_required,
    parse_id,
    query_text,
    visible_submission,
)
from grader.web.forms import (
    ConfirmForm,
    EmptyForm,
    OverrideForm,
    RosterForm,
    SpecUploadForm,
)
from grader.web.gradebook import (
    RosterError,
    course_csv,
    gradebook,
    gradebook_csv,
    import_roster,
    links_csv,
    reissue_links,
)

bp = Blueprint("instructor", __name__, url_prefix="/instructor")


def _assignment(assignment_id: str) -> Assignment:
    item = get_assignment(assignment_id)
    if item is None or item.current_version is None:
        abort(404)
    return item


@bp.get("/")
@instructor_required
def index() -> str:
    assignments = db.session.scalars(select(Assignment).order_by(Assignment.id)).all()
    return render_template(
        "instructor/index.html",
        assignments=assignments,
        queue=queue_counts(),
        spec_form=SpecUploadForm(),
        roster_form=RosterForm(),
        students=db.session.query(User).filter(User.role == "student").count(),
    )


@bp.get("/assignments/<assignment_id>")
@instructor_required
def dashboard(assignment_id: str) -> str:
    item = _assignment(assignment_id)
    spec = current_spec(item)
    rows = gradebook(item)
    submitted = [r for r in rows if r.standing.latest_submission is not None]
    # One definition everywhere: each student's counted submission (best or last, per
    # the spec); students whose uploads were all refused have no valid submission.
    valid = [r for r in submitted if r.standing.counted_submission is not None]
    counted = [r.standing.counted for r in valid if r.standing.counted is not None]
    max_score = next((r.standing.max_score for r in submitted if r.standing.max_score), None)
    passed = sum(1 for r in valid if r.standing.status == "graded")
    accuracies: list[float] = []
    per_class_sum: dict[str, float] = {}
    per_class_n = 0
    for row in valid:
        sub = row.standing.counted_submission
        if sub is not None and sub.result is not None:
            metrics = sub.result.report.get("metrics")
            if metrics:
                accuracies.append(metrics["accuracy"])
                per_class_n += 1
                for cls, acc in metrics["per_class_accuracy"].items():
                    per_class_sum[cls] = per_class_sum.get(cls, 0.0) + acc
    diagnoses: dict[str, int] = {}  # students whose latest graded upload got each code
    for row in submitted:
        sub = row.standing.latest_submission
        for code in set(sub.diagnosis_codes if sub is not None else []):
            diagnoses[code] = diagnoses.get(code, 0) + 1
    hardest = sorted(
        ((cls, total / per_class_n) for cls, total in per_class_sum.items()),
        key=lambda item: item[1],
    )
    chart_data: dict[str, Any] = {
        "scores": charts.histogram(counted, 0, max_score or 100),
        "accuracies": charts.histogram(accuracies, 0, 1) if accuracies else None,
    }
    return render_template(
        "instructor/dashboard.html",
        assignment=item,
        spec=spec,
        submitted=len(submitted),
        students=len(rows),
        pass_rate=(passed / len(valid)) if valid else None,
        hardest=hardest[:5],
        flagged=sum(1 for r in rows if r.standing.flagged),
        copy_pairs=len(copies.pairs(item.id)),
        test_set_missing=spec.evaluation is not None and not test_set_available(settings().cifar10),
        diagnoses=sorted(diagnoses.items(), key=lambda kv: -kv[1]),
        queue=queue_counts(),
        chart_data=chart_data,
        stale=len(_stale_penalties(item)),
        empty_form=EmptyForm(),
        recent=db.session.scalars(
            select(Submission)
            .where(Submission.assignment_id == item.id)
            .order_by(Submission.id.desc())
            .limit(20)
        ).all(),
    )


@bp.get("/students/<int:user_id>")
@instructor_required
def student_page(user_id: int) -> str:
    """One student's every attempt, per assignment: state, raw score, late penalty,
    override and the score that counts, with links to each feedback page."""
    user = db.session.get(User, user_id) if 0 < user_id <= MAX_ID else None
    if user is None:
        abort(404)
    subs = db.session.scalars(
        select(Submission)
        .where(Submission.user_id == user.id)
        .order_by(Submission.created_at.desc(), Submission.id.desc())
    ).all()
    assignments = db.session.scalars(
        select(Assignment).where(Assignment.current_version_id.is_not(None)).order_by(Assignment.id)
    ).all()
    sections = []
    for item in assignments:
        mine = [s for s in subs if s.assignment_id == item.id]
        spec = current_spec(item)
        sections.append(
            {"assignment": item, "spec": spec, "subs": mine, "standing": standing_from(mine, spec)}
        )
    return render_template("instructor/student.html", student=user, sections=sections)


def _stale_penalties(item: Assignment) -> list[Submission]:
    """Submissions whose stored late penalty is not what the current spec's deadline and
    policy give (the spec changed after they were uploaded)."""
    spec = current_spec(item)
    subs = db.session.scalars(
        select(Submission).where(Submission.assignment_id == item.id).order_by(Submission.id)
    ).all()
    return [s for s in subs if late_penalty(spec, s.created_at) != (s.late_days, s.penalty)]


@bp.post("/assignments/<assignment_id>/regrade-stale")
@instructor_required
def regrade_stale(assignment_id: str) -> Response:
    """Regrade the submissions whose penalty the current policy would set otherwise."""
    item = _assignment(assignment_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    count = regrade(_stale_penalties(item), current_user)
    flash(f"{count} submissions queued for regrading under the current deadline and policy.", "ok")
    return redirect(url_for("instructor.dashboard", assignment_id=item.id))


@bp.get("/assignments/<assignment_id>/copies")
@instructor_required
def copies_page(assignment_id: str) -> str:
    """Different students' submissions with the same or nearly the same weights."""
    item = _assignment(assignment_id)
    return render_template("instructor/copies.html", assignment=item, pairs=copies.pairs(item.id))


@bp.get("/assignments/<assignment_id>/gradebook")
@instructor_required
def gradebook_page(assignment_id: str) -> str:
    item = _assignment(assignment_id)
    sort = request.args.get("sort", "student")
    descending = request.args.get("dir") == "desc"
    rows = gradebook(
        item,
        sort=sort,
        descending=descending,
        query=request.args.get("q", "")[:100],
        status=request.args.get("status", "")[:20],
    )
    return render_template(
        "instructor/gradebook.html",
        assignment=item,
        rows=rows,
        sort=sort,
        descending=descending,
        q=request.args.get("q", ""),
        status=request.args.get("status", ""),
        status_labels=STANDING_LABELS,
    )


@bp.get("/assignments/<assignment_id>/gradebook.csv")
@instructor_required
def gradebook_export(assignment_id: str) -> Response:
    item = _assignment(assignment_id)
    return Response(
        gradebook_csv(item),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{item.id}-grades.csv"'},
    )


@bp.get("/grades.csv")
@instructor_required
def course_export() -> Response:
    """Every assignment's counted score, one column each: the layout an LMS imports."""
    items = db.session.scalars(
        select(Assignment).where(Assignment.current_version_id.is_not(None)).order_by(Assignment.id)
    ).all()
    return Response(
        course_csv(list(items)),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="course-grades.csv"'},
    )


@bp.route("/assignments/<assignment_id>/regrade", methods=["GET", "POST"])
@instructor_required
def regrade_all(assignment_id: str) -> str | Response:
    item = _assignment(assignment_id)
    subs = db.session.scalars(
        select(Submission).where(Submission.assignment_id == item.id).order_by(Submission.id)
    ).all()
    form = ConfirmForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            flash("Tick the confirmation box to regrade every submission.", "error")
            return render_template("instructor/regrade.html", assignment=item, subs=subs, form=form)
        count = regrade(list(subs), current_user)
        flash(f"{count} submissions queued for regrading.", "ok")
        return redirect(url_for("instructor.dashboard", assignment_id=item.id))
    return render_template("instructor/regrade.html", assignment=item, subs=subs, form=form)


@bp.post("/submissions/<int:submission_id>/regrade")
@instructor_required
def regrade_one(submission_id: int) -> Response:
    sub = visible_submission(submission_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    regrade([sub], current_user)
    flash("Queued for regrading.", "ok")
    return redirect(url_for("student.submission", submission_id=sub.id))


@bp.post("/submissions/<int:submission_id>/override")
@instructor_required
def override_score(submission_id: int) -> Response:
    sub = visible_submission(submission_id)
    form = OverrideForm()
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for error in errors:
                flash(f"Override not saved: {error}", "error")
        return redirect(url_for("student.submission", submission_id=sub.id))
    try:
        if form.clear.data:
            clear_override(sub, form.reason.data or "", current_user)  # type: ignore[arg-type]
            flash("Override removed: the automatic score counts again.", "ok")
        else:
            override(sub, float(form.score.data or 0), form.reason.data or "", current_user)  # type: ignore[arg-type]
            flash("Score overridden.", "ok")
    except ValueError as exc:
        flash(f"Override not saved: {exc}", "error")
    return redirect(url_for("student.submission", submission_id=sub.id))


@bp.get("/audit")
@instructor_required
def audit_log() -> str:
    """The last 500 audited actions, newest first; filtered by action, student and
    assignment, with the student each submission belongs to."""
    action = query_text("action", 50)
    student = query_text("student", 80)
    assignment = query_text("assignment", 64)
    query = select(AuditLog).order_by(AuditLog.id.desc())
    if action:
        query = query.where(AuditLog.action == action)
    if assignment:
        query = query.where(AuditLog.assignment_id == assignment)
    if student:
        query = (
            query.join(Submission, Submission.id == AuditLog.submission_id)
            .join(User, User.id == Submission.user_id)
            .where(User.username == student)
        )
    entries = db.session.scalars(query.limit(500)).all()
    ids = {e.submission_id for e in entries if e.submission_id}
    owners = dict(
        db.session.execute(
            select(Submission.id, User.username)
            .join(User, User.id == Submission.user_id)
            .where(Submission.id.in_(ids))
        ).all()
    ) if ids else {}  # fmt: skip
    actions = db.session.scalars(select(AuditLog.action).distinct().order_by(AuditLog.action))
    return render_template(
        "instructor/audit.html",
        entries=entries,
        owners=owners,
        actions=list(actions),
        action=action,
        student=student,
        assignment=assignment,
    )


@bp.post("/import-spec")
@instructor_required
def import_assignment() -> Response:
    form = SpecUploadForm()
    if not form.validate_on_submit():
        flash("Choose a spec file.", "error")
        return redirect(url_for("instructor.index"))
    data = form.spec.data.read(1024 * 1024 + 1)
    if len(data) > 1024 * 1024:
        flash("Spec files are limited to 1 MB.", "error")
        return redirect(url_for("instructor.index"))
    try:
        text = data.decode("utf-8")
        # The file's name, for messages only ("hw1.yaml: ..."): printable, short.
        name = "".join(c for c in form.spec.data.filename or "" if c.isprintable())[-100:]
        item, outcome = import_spec(text, name or "uploaded spec", current_user)
    except UnicodeDecodeError:
        flash("The spec is not UTF-8 text.", "error")
        return redirect(url_for("instructor.index"))
    except ConfigurationError as exc:
        flash(str(exc), "error")
        return redirect(url_for("instructor.index"))
    flash(f"Assignment {item.id} {outcome}.", "ok")
    return redirect(url_for("instructor.dashboard", assignment_id=item.id))


@bp.post("/roster")
@instructor_required
def roster() -> str | Response:
    form = RosterForm()
    if not form.validate_on_submit():
        flash("Choose a roster CSV file.", "error")
        return redirect(url_for("instructor.index"))
    try:
        text = form.roster.data.read(2 * 1024 * 1024).decode("utf-8-sig")
        results = import_roster(text, current_user)
    except (UnicodeDecodeError, RosterError) as exc:
        db.session.rollback()
        flash(f"Roster not imported: {exc}", "error")
        return redirect(url_for("instructor.index"))
    return _show_links(results)


def _show_links(results: list[dict[str, str]]) -> str:
    """The one-time links, shown once: as a table and as a CSV to download."""
    for result in results:
        if "token" in result:
            result["link"] = url_for("auth.welcome", token=result["token"], _external=True)
    return render_template("instructor/roster_result.html", results=results,
                           links_csv=links_csv(results))  # fmt: skip


@bp.get("/students")
@instructor_required
def students() -> str:
    """The roster: who has activated their account, who has submitted, and new links
    for those who have not activated."""
    users = db.session.scalars(
        select(User).where(User.role == "student").order_by(User.username)
    ).all()
    counts = dict(
        db.session.execute(
            select(Submission.user_id, func.count(Submission.id)).group_by(Submission.user_id)
        ).all()
    )
    return render_template("instructor/students.html", users=users, counts=counts, form=EmptyForm())


@bp.post("/students/links")
@instructor_required
def reissue() -> str:
    """New one-time links: for one student (``user``) or for everyone not yet active."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    query = select(User).where(User.role == "student", User.password_hash.is_(None))
    one = request.form.get("user", "")
    if one:
        uid = parse_id(one)
        if uid is None:
            abort(404)
        query = query.where(User.id == uid)
    results = reissue_links(list(db.session.scalars(query.order_by(User.username))), current_user)
    if not results:
        flash("Every student has activated their account: no link to send.", "ok")
    return _show_links(results)
