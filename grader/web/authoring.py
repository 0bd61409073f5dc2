"""Instructor authoring pages: an assignment from a reference model, edited as a form,
published as a new assignment or a new version after a what-if of the change.

Upload a reference -> its generated spec as a form (title, Markdown description with a
preview, the layer attributes checked, thresholds, rubric, policy) -> publish. The YAML
stays the source of truth: the form only writes a spec (downloadable at any step), and
publishing imports it like ``grader assignments import``. Publishing a new version of an
assignment that has submissions first shows the what-if (nothing is written until the
instructor confirms), then optionally regrades for real.

Nothing is written while a form is being filled in, except the reference model itself,
kept in the content-addressed store once it has been inspected (so the form can be
checked against it again at publish).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from grader.authoring import CHECKABLE, AuthoringError, Options, dump_spec, spec_data, verify
from grader.errors import ConfigurationError
from grader.formats import sniff_head
from grader.inspection.static import inspect_model
from grader.service.context import current
from grader.service.db import db
from grader.service.models import Assignment, Submission
from grader.service.specs import import_spec
from grader.service.storage import StorageError
from grader.service.submissions import SubmissionRefused, check_filename, regrade
from grader.service.whatif import what_if
from grader.spec import AssignmentSpec, parse_spec
from grader.web.access import get_assignment, instructor_required
from grader.web.forms import EmptyForm

bp = Blueprint("authoring", __name__, url_prefix="/instructor")

MAX_SPEC_BYTES = 1024 * 1024
#: Attributes ticked on a fresh form: all but activation (checked where the reference sets one).
DEFAULT_CHECKED = tuple(key for key in CHECKABLE if key != "activation")


def _get(name: str, default: str = "") -> str:
    """A form field as text, without NUL (PostgreSQL refuses it even as a query parameter)
    and at most a spec's size."""
    value = request.form.get(name, default)
    return value.replace("\x00", "")[:MAX_SPEC_BYTES]


def _number(text: str | None) -> Any:
    """A form value as a number where it is one; other text goes to the spec's validation
    as typed (so its error names the field); empty is None."""
    value = (text or "").strip()
    if not value:
        return None
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _float(name: str, errors: list[str]) -> float | None:
    value = _number(_get(name))
    if value is None or isinstance(value, int | float):
        return None if value is None else float(value)
    errors.append(f"{name.replace('_', ' ')}: {value!r} is not a number")
    return None


def _int(name: str, errors: list[str]) -> int | None:
    value = _number(_get(name))
    if value is None or isinstance(value, int):
        return value
    errors.append(f"{name.replace('_', ' ')}: {value!r} is not a whole number")
    return None


# --- step 1: the reference --------------------------------------------------------------


@bp.get("/authoring/new")
@instructor_required
def new() -> str:
    return render_template("instructor/authoring_new.html", form=EmptyForm(), values={})


@bp.post("/authoring/new")
@instructor_required
def upload() -> str | tuple[str, int]:
    """Inspect the uploaded reference; on success keep it and show its spec as a form."""
    values = {key: _get(key) for key in request.form}
    errors: list[str] = []
    if not EmptyForm().validate_on_submit():
        abort(400)
    upload = request.files.get("reference")
    try:
        name = check_filename(upload.filename if upload else "")
    except SubmissionRefused as exc:
        return _new_again(values, [exc.message])
    assert upload is not None
    limit = current().settings.max_upload_bytes
    content = upload.read(limit + 1)
    if len(content) > limit:
        return _new_again(values, ["The reference is larger than the upload limit."])
    options = _options(values.get("assignment_id", ""), errors)
    if errors:
        return _new_again(values, errors)
    with tempfile.TemporaryDirectory(prefix="reference-") as tmp:
        path = Path(tmp) / f"reference{Path(name).suffix.lower()}"
        path.write_bytes(content)
        try:
            data, _ = _generate(path, options)
        except AuthoringError as exc:
            return _new_again(values, [exc.reason])
    try:
        sha, _size = current().storage().put(content)
    except StorageError:
        return _new_again(values, ["The reference could not be stored; try again."])
    data = _with_reference(data, f"uploaded {name}, sha256 {sha}")
    return _form(data, sha=sha, name=name, checked=options.checked)


def _new_again(values: dict[str, str], errors: list[str]) -> tuple[str, int]:
    page = render_template(
        "instructor/authoring_new.html", form=EmptyForm(), values=values, errors=errors
    )
    return page, 400


def _options(assignment_id: str, errors: list[str], *, from_form: bool = False) -> Options:
    """The generator's options from the form: mode, attributes, thresholds, budget."""
    form = request.form
    mode = _get("mode", "exact")
    if mode not in ("exact", "budget"):
        errors.append("mode: choose exact or budget")
        mode = "exact"
    checked: tuple[str, ...] | None = None
    if from_form:
        checked = tuple(key for key in form.getlist("checked") if key in CHECKABLE)
    counted = tuple(t.strip() for t in _get("counted", "").split(",") if t.strip())
    return Options(
        assignment_id=assignment_id.strip(),
        title=_get("title") or None,
        description=_get("description") if from_form else None,
        mode=mode,  # type: ignore[arg-type]
        checked=checked,
        min_accuracy=_float("min_accuracy", errors),
        target_accuracy=_float("target_accuracy", errors),
        min_params=_int("min_params", errors),
        max_params=_int("max_params", errors),
        counted_types=counted or None,
    )


def _generate(path: Path, options: Options) -> tuple[dict[str, Any], Any]:
    """The spec data of the reference at ``path``; AuthoringError when it cannot be made."""
    from grader.errors import NotGradable

    try:
        inspection = inspect_model(path, current().settings)
    except NotGradable as exc:
        raise AuthoringError(
            f"The reference model is not gradable, so no spec was made from it: {exc.reason}"
        ) from None
    return spec_data(inspection.architecture, options), inspection


def _with_reference(data: dict[str, Any], reference: str | None) -> dict[str, Any]:
    """``data`` with its ``reference`` after the description, where the shipped specs have it."""
    out = {k: v for k, v in data.items() if k != "reference"}
    if not reference:
        return out
    keys = list(out)
    at = keys.index("description") + 1 if "description" in keys else len(keys)
    return {**dict(list(out.items())[:at]), "reference": reference, **dict(list(out.items())[at:])}


# --- step 2: the spec as a form ----------------------------------------------------------


def _form(
    data: dict[str, Any],
    *,
    sha: str,
    name: str,
    checked: tuple[str, ...] | None = None,
    errors: list[str] | None = None,
    preview: bool = False,
    status: int = 200,
) -> tuple[str, int] | str:
    existing = get_assignment(str(data.get("id", "")))
    version = (
        existing.current_version.version
        if existing is not None and existing.current_version is not None
        else None
    )
    if checked is None:  # a fresh form: what the generated layers check
        checked = tuple(k for k in CHECKABLE if any(k in x for x in data.get("layers") or []))
        checked = checked or DEFAULT_CHECKED
    page = render_template(
        "instructor/authoring_form.html",
        form=EmptyForm(),
        data=data,
        yaml_text=dump_spec(data),
        sha=sha,
        name=name,
        checkable=CHECKABLE,
        checked=checked,
        errors=errors or [],
        preview=preview,
        existing_version=version,
    )
    return (page, status) if status != 200 else page


def _reference_path(sha: str, tmp: str) -> Path:
    """The kept reference, named by its real format (an .h5 reference stays one)."""
    store = current().storage()
    try:
        fmt = sniff_head(store.head(sha)) or "keras"
        return store.fetch(sha, Path(tmp) / f"reference.{fmt}")
    except (StorageError, OSError):
        abort(400)


def _spec_from_form(sha: str) -> tuple[dict[str, Any], AssignmentSpec | None, list[str]]:
    """The form's spec: regenerated from the kept reference with the form's options, then
    the form's rubric and policy; validated as a spec file would be."""
    errors: list[str] = []
    options = _options(_get("assignment_id", ""), errors, from_form=True)
    rubric = {
        key: _number(_get(f"rubric_{key}"))
        for key in ("architecture", "parameters", "accuracy", "credit_at_min")
        if _number(_get(f"rubric_{key}")) is not None
    }
    policy = {
        "deadline": (_get("deadline") or "").strip() or None,
        "late_penalty_per_day": _number(_get("late_penalty_per_day")),
        "late_penalty_cap": _number(_get("late_penalty_cap")),
        "submissions_per_day": _number(_get("submissions_per_day")),
        "counts": _get("counts") or None,
    }
    data: dict[str, Any] = {
        "id": options.assignment_id,
        "title": options.title or "",
        "description": options.description or "",
    }
    with tempfile.TemporaryDirectory(prefix="reference-") as tmp:
        path = _reference_path(sha, tmp)
        try:
            data, _ = _generate(path, options)
        except AuthoringError as exc:
            errors.append(exc.reason)
    data = _with_reference(data, _get("reference") or data.get("reference"))
    data["rubric"] = rubric
    data["policy"] = {k: v for k, v in policy.items() if v is not None}
    if errors:
        return data, None, errors
    try:
        spec = parse_spec(dump_spec(data), "the form")
    except ConfigurationError as exc:
        return data, None, str(exc).splitlines()[1:] or [str(exc)]
    return data, spec, []


@bp.post("/authoring/draft")
@instructor_required
def draft() -> Any:
    """Preview, download or publish the form's spec."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    sha = _get("sha", "")
    name = _get("name", "")
    checked = tuple(k for k in request.form.getlist("checked") if k in CHECKABLE)
    data, spec, errors = _spec_from_form(sha)
    action = _get("action", "preview")
    if errors or spec is None:
        return _form(data, sha=sha, name=name, checked=checked, errors=errors, status=400)
    text = dump_spec(data)
    if action == "download":
        return Response(
            text,
            mimetype="application/yaml",
            headers={"Content-Disposition": f'attachment; filename="{spec.id}.yaml"'},
        )
    if action != "publish":
        return _form(data, sha=sha, name=name, checked=checked, preview=True)
    with tempfile.TemporaryDirectory(prefix="reference-") as tmp:
        try:
            result = verify(_reference_path(sha, tmp), spec, current().settings)
        except AuthoringError as exc:
            result = None
            errors = [exc.reason]
    if result is not None and not result.passed:
        errors = [result.reason()]
    if errors:
        return _form(data, sha=sha, name=name, checked=checked, errors=errors, status=400)
    return _publish_or_what_if(spec, text)


def _publish_or_what_if(spec: AssignmentSpec, text: str) -> Any:
    """A new assignment, or one nobody submitted to, is published at once; a new version
    of one with submissions shows the what-if first."""
    assignment = get_assignment(spec.id)
    if (
        assignment is not None
        and assignment.current_version is not None
        and _has_submissions(assignment)
    ):
        return _what_if_page(assignment, spec, text)
    return _publish(text, regrade_too=False)


def _has_submissions(assignment: Assignment) -> bool:
    found = db.session.scalar(
        select(Submission.id).where(Submission.assignment_id == assignment.id).limit(1)
    )
    return found is not None


def _publish(text: str, *, regrade_too: bool) -> Response:
    try:
        if "\\u0000" in parse_spec(text, "the draft").model_dump_json():
            raise ConfigurationError("The spec holds a NUL character (\\0); remove it.")
        item, outcome = import_spec(text, "the authoring form", current_user)
    except ConfigurationError as exc:
        flash(str(exc), "error")
        return redirect(url_for("authoring.new"))
    message = f"Assignment {item.id} {outcome} (spec version {item.current_version.version})."  # type: ignore[union-attr]
    if regrade_too:
        subs = db.session.scalars(
            select(Submission).where(Submission.assignment_id == item.id)
        ).all()
        message += f" {regrade(list(subs), current_user)} submissions queued for regrading."
    flash(message, "ok")
    return redirect(url_for("instructor.dashboard", assignment_id=item.id))


# --- what-if and publish ----------------------------------------------------------------


def _what_if_page(
    assignment: Assignment, spec: AssignmentSpec, text: str, status: int = 200
) -> tuple[str, int]:
    result = what_if(assignment, spec)
    page = render_template(
        "instructor/authoring_whatif.html",
        form=EmptyForm(),
        assignment=assignment,
        result=result,
        yaml_text=text,
        errors=[],
    )
    return page, status


@bp.route("/assignments/<assignment_id>/whatif", methods=["GET", "POST"])
@instructor_required
def whatif(assignment_id: str) -> Any:
    """Try a draft spec (uploaded or pasted) against every submission, writing nothing."""
    assignment = get_assignment(assignment_id)
    if assignment is None or assignment.current_version is None:
        abort(404)
    if request.method == "GET":
        return render_template(
            "instructor/authoring_whatif.html",
            form=EmptyForm(),
            assignment=assignment,
            result=None,
            yaml_text=assignment.current_version.yaml_text,
            errors=[],
        )
    if not EmptyForm().validate_on_submit():
        abort(400)
    upload = request.files.get("spec")
    raw = upload.read(MAX_SPEC_BYTES + 1) if upload and upload.filename else None
    try:
        text = raw.decode("utf-8") if raw is not None else _get("yaml_text", "")
        if len(text.encode()) > MAX_SPEC_BYTES:
            raise ConfigurationError("Spec files are limited to 1 MB.")
        spec = parse_spec(text, "the draft")
        return _what_if_page(assignment, spec, text)
    except UnicodeDecodeError:
        errors = ["The spec is not UTF-8 text."]
        text = ""
    except ConfigurationError as exc:
        errors = str(exc).splitlines()
    page = render_template(
        "instructor/authoring_whatif.html",
        form=EmptyForm(),
        assignment=assignment,
        result=None,
        yaml_text=text,
        errors=errors,
    )
    return page, 400


@bp.post("/assignments/<assignment_id>/publish")
@instructor_required
def publish(assignment_id: str) -> Any:
    """Publish the draft the what-if was shown for; optionally regrade for real."""
    assignment = get_assignment(assignment_id)
    if assignment is None or not EmptyForm().validate_on_submit():
        abort(404 if assignment is None else 400)
    text = _get("yaml_text", "")
    try:
        spec = parse_spec(text, "the draft")
    except ConfigurationError as exc:
        flash(str(exc), "error")
        return redirect(url_for("authoring.whatif", assignment_id=assignment_id))
    if spec.id != assignment_id:
        flash(f"The draft is for '{spec.id}', not '{assignment_id}'.", "error")
        return redirect(url_for("authoring.whatif", assignment_id=assignment_id))
    return _publish(text, regrade_too=_get("regrade") == "y")


@bp.get("/assignments/<assignment_id>/spec.yaml")
@instructor_required
def spec_yaml(assignment_id: str) -> Response:
    """The current version's YAML, as imported: the source of truth."""
    assignment = get_assignment(assignment_id)
    if assignment is None or assignment.current_version is None:
        abort(404)
    return Response(
        assignment.current_version.yaml_text,
        mimetype="application/yaml",
        headers={"Content-Disposition": f'attachment; filename="{assignment.id}.yaml"'},
    )
