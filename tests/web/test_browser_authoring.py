"""Authoring in the dashboard: a reference model uploaded, its spec edited as a form,
published, and a student's upload graded against it (in a real browser, screenshots in
docs/screenshots/ with GRADER_UPDATE_SCREENSHOTS=1); the what-if of a new version before
it goes live; and every bad input answered with a clear message and nothing changed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_web_browser import ARGS, CHROMIUM, live, log_in, shot  # noqa: F401 (live: fixture)
from webutil import login

from grader.service.db import db
from grader.service.models import Assignment, AuditLog, SpecVersion, Submission
from grader.spec import parse_spec

NEW = "strides-demo"


@pytest.fixture(scope="module")
def strides_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The day096-strides-padding sample solution, built as examples/ builds it."""
    import importlib.util

    from webutil import ROOT

    script = ROOT / "examples" / "day096_strides_padding.py"
    loaded = importlib.util.spec_from_file_location("example_strides", script)
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    path = tmp_path_factory.mktemp("authoring") / "strides.keras"
    module.build().save(path)
    return path


def _counts(app: Flask) -> dict[str, int]:
    with app.app_context():
        return {
            model.__name__: db.session.query(model).count()
            for model in (Assignment, SpecVersion, Submission, AuditLog)
        }


def _stored_files(app: Flask) -> list[str]:
    root = Path(app.config["GRADER_SUBMISSIONS_DIR"])
    return sorted(str(p) for p in root.rglob("*") if p.is_file())


def _upload(client: FlaskClient, path: Path, **fields: str) -> Any:
    data = {"assignment_id": NEW, "mode": "exact", **fields}
    with path.open("rb") as handle:
        data["reference"] = (handle, path.name)  # type: ignore[assignment]
        return client.post("/instructor/authoring/new", data=data,
                           content_type="multipart/form-data")  # fmt: skip


def _form_fields(page: str) -> dict[str, Any]:
    """The spec form's default values, as the browser would send them back."""
    import re

    fields: dict[str, Any] = {}
    for name, value in re.findall(
        r'<input type="(?:text|hidden)" name="(\w+)" value="([^"]*)"', page
    ):
        fields[name] = value.replace("&#39;", "'").replace("&amp;", "&")
    fields["checked"] = re.findall(r'name="checked" value="(\w+)" checked', page)
    fields["description"] = "Made in the **test**."
    fields["counts"] = "best"
    fields["mode"] = "exact"
    return fields


def test_reference_to_published_assignment(
    app: Flask, client: FlaskClient, strides_model: Path
) -> None:
    login(client, "prof")
    assert b"authoring-link" in client.get("/instructor/").data
    page = _upload(client, strides_model, title="Strides")
    assert page.status_code == 200, page.data[:2000]
    text = page.get_data(as_text=True)
    assert "3584" in text and "68096" in text and 'id="new-assignment"' in text
    fields = _form_fields(text)
    assert fields["title"] == "Strides" and "depth_multiplier" in fields["checked"]

    preview = client.post("/instructor/authoring/draft", data={**fields, "action": "preview"})
    assert preview.status_code == 200
    assert "<strong>test</strong>" in preview.get_data(as_text=True)
    download = client.post("/instructor/authoring/draft", data={**fields, "action": "download"})
    spec = parse_spec(download.get_data(as_text=True))
    assert spec.id == NEW and spec.layers is not None and spec.layers[1].depth_multiplier == 2
    assert spec.reference and spec.reference.startswith("uploaded strides.keras, sha256 ")
    assert _counts(app)["Assignment"] == 4  # nothing published by preview or download

    published = client.post("/instructor/authoring/draft", data={**fields, "action": "publish"})
    assert published.status_code == 302 and f"/assignments/{NEW}" in published.location
    with app.app_context():
        item = db.session.get(Assignment, NEW)
        assert item is not None and item.current_version is not None
        assert parse_spec(item.current_version.yaml_text) == spec
    served = client.get(f"/instructor/assignments/{NEW}/spec.yaml")
    assert yaml.safe_load(served.data)["id"] == NEW


def test_an_h5_reference_goes_through_preview_and_publish(
    app: Flask, client: FlaskClient, strides_model: Path, tmp_path: Path
) -> None:
    """The kept reference is read back in its own format: an .h5 was fetched as
    'reference.keras' and refused at every later step."""
    import keras

    h5 = tmp_path / "strides.h5"
    keras.saving.load_model(strides_model, compile=False).save(h5)
    login(client, "prof")
    page = _upload(client, h5, title="Strides from h5")
    assert page.status_code == 200, page.data[:2000]
    fields = _form_fields(page.get_data(as_text=True))
    preview = client.post("/instructor/authoring/draft", data={**fields, "action": "preview"})
    assert preview.status_code == 200, preview.data[:2000]
    published = client.post("/instructor/authoring/draft", data={**fields, "action": "publish"})
    assert published.status_code == 302, published.data[:2000]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"rubric_accuracy": "-5"},
            r"rubric\.accuracy \(line \d+\): Input should be greater than or equal to 0",
        ),
        ({"target_accuracy": "0.8"}, "needs a minimum accuracy"),
        ({"mode": "budget", "max_params": "100"}, "it would fail its own spec"),
        ({"deadline": "next friday"}, "policy.deadline"),
    ],
)
def test_an_invalid_form_shows_the_error_and_publishes_nothing(
    app: Flask, client: FlaskClient, strides_model: Path, change: dict[str, str], message: str
) -> None:
    login(client, "prof")
    fields = _form_fields(_upload(client, strides_model).get_data(as_text=True))
    before = _counts(app)
    answer = client.post("/instructor/authoring/draft",
                         data={**fields, **change, "action": "publish"})  # fmt: skip
    assert answer.status_code == 400
    page = answer.get_data(as_text=True)
    assert "field-error" in page and re.search(message, page.replace("&#39;", "'"))
    assert _counts(app) == before


def test_a_reference_failing_the_edited_spec_is_not_published(
    app: Flask, client: FlaskClient, tiny_model: Path
) -> None:
    """Unticking nothing can make a reference fail; a required layer type it lacks can."""
    login(client, "prof")
    fields = _form_fields(_upload(client, tiny_model).get_data(as_text=True))
    before = _counts(app)
    answer = client.post("/instructor/authoring/draft", data={
        **fields, "mode": "budget", "counted": "Conv2D, SeparableConv2D", "action": "publish",
    })  # fmt: skip
    assert answer.status_code == 400 and "has no SeparableConv2D" in answer.get_data(as_text=True)
    assert _counts(app) == before


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"just some notes\n" * 20, "notes.keras", "not gradable"),
        (b"id,name\n", "roster.csv", "Only .keras, .h5"),
    ],
    ids=["notes", "csv"],
)
def test_a_non_model_upload_is_refused_and_nothing_is_stored(
    app: Flask, client: FlaskClient, tmp_path: Path, content: bytes, name: str, message: str
) -> None:
    login(client, "prof")
    path = tmp_path / name
    path.write_bytes(content)
    before = (_counts(app), _stored_files(app))
    answer = _upload(client, path)
    assert answer.status_code == 400 and message in answer.get_data(as_text=True)
    assert (_counts(app), _stored_files(app)) == before


def _graded(app: Flask, model: Path, username: str = "alice") -> int:
    """A day096-conv2d submission of ``model``, graded by the grader's own checks."""
    from webutil import ASSIGNMENTS

    from grader.inspection.static import inspect_model
    from grader.pipeline import build_report
    from grader.service.context import storage
    from grader.service.lifecycle import store_report
    from grader.service.models import User
    from grader.service.submissions import record_upload
    from grader.service.whatif import _static
    from grader.settings import Settings
    from grader.spec import find_spec

    with app.app_context():
        user = db.session.query(User).filter_by(username=username).one()
        assignment = db.session.get(Assignment, "day096-conv2d")
        sha, size = storage().put(model.read_bytes())
        sub = record_upload(user, assignment, sha, size, model.name, "keras")
        inspection = inspect_model(model, Settings())
        spec = find_spec("day096-conv2d", ASSIGNMENTS)
        store_report(sub, build_report(spec, inspection, _static(inspection), file_sha256=sha))
        return sub.id


def test_what_if_then_publish_a_new_version(
    app: Flask, client: FlaskClient, tiny_model: Path
) -> None:
    sid = _graded(app, tiny_model)
    login(client, "prof")
    page = client.get("/instructor/assignments/day096-conv2d/whatif").get_data(as_text=True)
    assert "reference: examples/day096_conv2d.py" in page
    with app.app_context():
        current = db.session.get(Assignment, "day096-conv2d").current_version.yaml_text
    draft = current.replace("filters: 64", "filters: 48")
    before = (_counts(app), _stored_files(app))
    shown = client.post("/instructor/assignments/day096-conv2d/whatif", data={"yaml_text": draft})
    text = shown.get_data(as_text=True)
    assert shown.status_code == 200, text[:3000]
    assert "1 of 1 students&#39; grades would change (0 up, 1 down)" in text
    assert "Alice" in text and 'id="whatif-students"' in text
    assert (_counts(app), _stored_files(app)) == before  # nothing written by the what-if

    bad = client.post("/instructor/assignments/day096-conv2d/whatif",
                      data={"yaml_text": draft.replace("filters: 48", "filters: -1")})  # fmt: skip
    assert bad.status_code == 400 and "layers.1.filters" in bad.get_data(as_text=True)

    published = client.post("/instructor/assignments/day096-conv2d/publish",
                            data={"yaml_text": draft, "regrade": "y"})  # fmt: skip
    assert published.status_code == 302
    with app.app_context():
        item = db.session.get(Assignment, "day096-conv2d")
        assert item.current_version.version == 2 and "filters: 48" in item.current_version.yaml_text
        sub = db.session.get(Submission, sid)
        assert sub.state == "queued" and sub.spec_version_id == item.current_version.id


def test_what_if_on_an_assignment_without_submissions(app: Flask, client: FlaskClient) -> None:
    login(client, "prof")
    with app.app_context():
        current = db.session.get(Assignment, "day096-separable").current_version.yaml_text
    before = _counts(app)
    draft = current.replace("counts: best", "counts: last")
    shown = client.post(
        "/instructor/assignments/day096-separable/whatif", data={"yaml_text": draft}
    )
    assert shown.status_code == 200
    assert "has no submissions yet: publishing this draft changes no grade" in shown.get_data(
        as_text=True
    )
    assert _counts(app) == before


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")
def test_browser_create_publish_and_grade(
    live: tuple[str, Flask],  # noqa: F811 (the fixture imported above)
    strides_model: Path,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, live_app = live
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        log_in(page, base, "prof")
        page.goto(f"{base}/instructor/")
        page.click("#authoring-link")
        page.fill("input[name=assignment_id]", NEW)
        page.fill("input[name=title]", "Day 96: strides and padding (from the reference)")
        page.set_input_files("#reference-input", str(strides_model))
        shot(page, "instructor-authoring-upload")
        page.click("#authoring-new button[type=submit]")
        expect(page.locator("#spec-yaml")).to_contain_text("depth_multiplier: 2")
        page.fill("textarea[name=description]", 'Use **strides=2** and `padding="same"`.')
        page.click("button[value=preview]")
        expect(page.locator("#description-preview strong")).to_have_text("strides=2")
        shot(page, "instructor-authoring-form")
        page.click("#publish")
        expect(page.locator(".flash.ok")).to_contain_text(f"Assignment {NEW} created")
        page.click("button.link:has-text('Log out')")

        # A student uploads the sample solution to the new assignment: graded, passed.
        log_in(page, base, "alice")
        page.goto(f"{base}/assignments/{NEW}")
        page.set_input_files("#model-input", str(strides_model))
        page.click("form.upload button[type=submit]")
        expect(page.locator("#score-value, p.big")).to_be_visible(timeout=180_000)
        expect(page.locator("table.checks")).to_contain_text("SeparableConv2D")
        shot(page, "student-feedback-authored")
        with live_app.app_context():
            sub = db.session.query(Submission).filter_by(assignment_id=NEW).one()
            assert sub.state == "graded", sub.log
        page.click("button.link:has-text('Log out')")

        # The instructor tries a change: the what-if shows alice's grade going down.
        log_in(page, base, "prof")
        page.goto(f"{base}/instructor/assignments/{NEW}")
        page.click("#whatif-link")
        draft = page.input_value("#draft-yaml").replace("filters: 256", "filters: 128")
        page.fill("#draft-yaml", draft)
        page.click("#whatif-form button[type=submit]")
        expect(page.locator("#whatif-summary")).to_contain_text("(0 up, 1 down)")
        expect(page.locator("#whatif-students")).to_contain_text("alice")
        shot(page, "instructor-authoring-whatif")
        browser.close()
    assert not [e for e in errors if "Content Security Policy" in e or "Uncaught" in e], errors


_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40
) | st.sampled_from(["\x00", "-1", "1e999", "nan", "0.5", "10", "", "x" * 5000, "‮best"])
_FORMS: dict[str, dict[str, Any]] = {}  # the spec form's fields, per app (its reference)
_FIELDS = ("assignment_id", "title", "description", "mode", "min_accuracy", "target_accuracy",
           "min_params", "max_params", "counted", "rubric_accuracy", "rubric_credit_at_min",
           "deadline", "late_penalty_per_day", "submissions_per_day", "counts", "sha",
           "action")  # fmt: skip


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes=st.dictionaries(st.sampled_from(_FIELDS), _TEXT, max_size=6))
def test_hostile_form_values_never_give_a_500(
    app: Flask, client: FlaskClient, tiny_model: Path, changes: dict[str, str]
) -> None:
    """Any text in any field of the spec form and the what-if: a page or a clear 400,
    never a server error (NUL and huge values included, on both databases)."""
    login(client, "prof")
    if app.instance_path not in _FORMS:  # one upload per app: every example edits the same form
        _FORMS[app.instance_path] = _form_fields(_upload(client, tiny_model).get_data(as_text=True))
    fields = {**_FORMS[app.instance_path], **changes}
    answer = client.post("/instructor/authoring/draft", data=fields)
    assert answer.status_code in (200, 302, 400), answer.status_code
    draft = "\n".join(f"{k}: {v!r}" for k, v in changes.items())
    answer = client.post("/instructor/assignments/day096-conv2d/whatif", data={"yaml_text": draft})
    assert answer.status_code in (200, 400), answer.status_code
