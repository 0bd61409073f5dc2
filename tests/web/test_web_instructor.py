"""Instructor pages: dashboard, gradebook, CSV, regrade, override + audit, imports."""

from __future__ import annotations

import csv
import io
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from webutil import ASSIGNMENTS, add_submission, login

from grader.service.db import db
from grader.service.models import Assignment, AuditLog, Submission, User

A = "day097-cifar10"


def test_dashboard_numbers_and_charts(app: Flask, client: FlaskClient) -> None:
    add_submission(app, "alice")
    add_submission(app, "bob", status="failed", content=b"bob")
    add_submission(app, "bob", status=None, content=b"bob2")  # waiting
    login(client, "prof")
    page = client.get(f"/instructor/assignments/{A}").get_data(as_text=True)
    assert 'id="submitted">2<' in page and "50.0 %" in page  # pass rate
    assert "scores-chart" in page and "accuracies-chart" in page and "dashboard-data" in page
    assert "airplane" in page  # hardest classes: lowest mean per-class accuracy first
    assert re.search(r'class="n">1</span><span>waiting', page)


def test_gradebook_sort_filter_and_csv(app: Flask, client: FlaskClient) -> None:
    add_submission(app, "alice")
    add_submission(app, "bob", status="failed", content=b"bob")
    with app.app_context():
        db.session.add(User(username="=cmd", role="student", name="@evil"))
        db.session.commit()
    login(client, "prof")
    url = f"/instructor/assignments/{A}/gradebook"
    page = client.get(url + "?sort=best&dir=desc").get_data(as_text=True)
    assert page.index("alice") < page.index("bob")
    page = client.get(url + "?sort=best&dir=asc").get_data(as_text=True)
    assert page.index("bob") < page.index("alice")
    page = client.get(url + "?q=ali").get_data(as_text=True)
    assert "alice" in page and "bob" not in page
    page = client.get(url + "?status=failed").get_data(as_text=True)
    assert "bob" in page and "alice" not in page
    response = client.get(url + ".csv")
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    by_name = {r["username"]: r for r in rows}
    assert by_name["alice"]["counted"] == "85.0" and by_name["bob"]["status"] == "failed"
    assert "'=cmd" in by_name and by_name["'=cmd"]["name"] == "'@evil"  # no CSV injection


def test_override_needs_a_reason_and_is_audited(app: Flask, client: FlaskClient) -> None:
    sid = add_submission(app, "alice")
    login(client, "prof")
    client.post(f"/instructor/submissions/{sid}/override", data={"score": "99", "reason": ""})
    with app.app_context():
        assert db.session.get(Submission, sid).override_score is None
    client.post(
        f"/instructor/submissions/{sid}/override",
        data={"score": "99", "reason": "regraded by hand"},
    )
    with app.app_context():
        assert db.session.get(Submission, sid).final_score == 99.0
        entry = db.session.query(AuditLog).filter_by(action="override").one()
        assert entry.actor.username == "prof" and entry.submission_id == sid
        assert entry.detail == {"old": 85.0, "new": 99.0, "reason": "regraded by hand"}
    page = client.get("/instructor/audit").get_data(as_text=True)
    assert "override" in page and "regraded by hand" in page and "prof" in page
    client.post("/logout")
    login(client, "alice")
    page = client.get(f"/submissions/{sid}").get_data(as_text=True)
    assert "99 / 100" in page and "regraded by hand" in page and "Grading log" not in page


def test_regrade_one_and_all_with_confirmation(app: Flask, client: FlaskClient) -> None:
    sid = add_submission(app, "alice")
    other = add_submission(app, "bob", content=b"bob")
    login(client, "prof")
    client.post(f"/instructor/submissions/{sid}/regrade")
    executor = app.extensions["grader_executor"]
    assert executor.submitted == [sid]
    with app.app_context():
        assert db.session.get(Submission, sid).state == "queued"
    # Without the confirmation box nothing happens.
    page = client.post(f"/instructor/assignments/{A}/regrade", data={}).get_data(as_text=True)
    assert "Tick the confirmation box" in page and executor.submitted == [sid]
    response = client.post(f"/instructor/assignments/{A}/regrade", data={"confirm": "y"})
    assert response.status_code == 302
    assert sorted(executor.submitted[1:]) == sorted([sid, other])
    with app.app_context():
        assert db.session.query(AuditLog).filter_by(action="regrade").count() == 3


def test_instructor_sees_log_and_any_feedback(app: Flask, client: FlaskClient) -> None:
    sid = add_submission(app, "bob")
    login(client, "prof")
    page = client.get(f"/submissions/{sid}").get_data(as_text=True)
    assert "Grading log" in page and "finished: passed" in page and 'id="override"' in page


def test_spec_upload(app: Flask, client: FlaskClient) -> None:
    login(client, "prof")
    text = (ASSIGNMENTS / "day096-conv2d.yaml").read_text().replace("Day 96:", "Day 96 (fixed):")
    response = client.post(
        "/instructor/import-spec",
        data={"spec": (io.BytesIO(text.encode()), "day096-conv2d.yaml")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    with app.app_context():
        item = db.session.get(Assignment, "day096-conv2d")
        assert item.title.startswith("Day 96 (fixed)") and item.current_version.version == 2
    response = client.post(
        "/instructor/import-spec",
        data={"spec": (io.BytesIO(b"id: Bad Id\n"), "x.yaml")},
        content_type="multipart/form-data",
        follow_redirects=True,
    )
    assert b"invalid assignment spec" in response.data


def test_roster_import_gives_one_time_links(app: Flask, client: FlaskClient) -> None:
    login(client, "prof")
    roster = "username,name,email\ncarol,Carol C,c@example.org\ndave,Dave,\nalice,Alice A,\n"
    response = client.post(
        "/instructor/roster",
        data={"roster": (io.BytesIO(roster.encode()), "roster.csv")},
        content_type="multipart/form-data",
    )
    page = response.get_data(as_text=True)
    links = re.findall(r"http://localhost/welcome/[\w-]+", page)
    assert len(links) == 2 and "updated" in page
    client.post("/logout")
    response = client.post(
        links[0], data={"password": "carols password", "confirm": "carols password"}
    )
    assert response.status_code == 302
    with app.app_context():
        assert db.session.query(User).filter_by(username="carol").one().role == "student"
    bad = client.application.test_client()
    login(bad, "prof")
    response = bad.post(
        "/instructor/roster",
        data={"roster": (io.BytesIO(b"name\nx\n"), "r.csv")},
        content_type="multipart/form-data",
        follow_redirects=True,
    )
    assert b"needs a &#39;username&#39; column" in response.data


def test_override_stays_in_range_and_can_be_removed(app: Flask, client: FlaskClient) -> None:
    sid = add_submission(app, "alice")  # 85 / 100 before any override
    login(client, "prof")
    url = f"/instructor/submissions/{sid}/override"
    page = client.post(url, data={"score": "150", "reason": "bonus"}, follow_redirects=True)
    assert "between 0 and 100" in page.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Submission, sid).override_score is None
    client.post(url, data={"score": "100", "reason": "fixed by hand"})
    client.post(url, data={"clear": "y", "reason": "the regrade was right after all"})
    with app.app_context():
        sub = db.session.get(Submission, sid)
        assert sub.override_score is None and sub.final_score == 85.0
        entry = db.session.query(AuditLog).filter_by(action="override_cleared").one()
        assert entry.detail == {
            "old": 100.0,
            "new": 85.0,
            "reason": "the regrade was right after all",
        }


def test_deadlines_are_shown_as_the_instant_they_enforce(app: Flask) -> None:
    """A deadline written with +01:00 is displayed in UTC, labelled UTC."""
    import datetime as dt

    with app.test_request_context():
        show = app.jinja_env.filters["dt"]
        deadline = dt.datetime(2026, 12, 1, 9, 9, tzinfo=dt.timezone(dt.timedelta(hours=1)))
        assert show(deadline) == "2026-12-01 08:09 UTC"
        assert show(dt.datetime(2026, 12, 1, 8, 9)) == "2026-12-01 08:09 UTC"  # stored naive UTC


@pytest.mark.parametrize("score", ["sNaN", "NaN", "Infinity"])
def test_override_refuses_what_is_not_a_number(app: Flask, client: FlaskClient, score: str) -> None:
    sid = add_submission(app, "alice")
    login(client, "prof")
    url = f"/instructor/submissions/{sid}/override"
    response = client.post(url, data={"score": score, "reason": "typo"}, follow_redirects=True)
    assert response.status_code == 200 and "must be a number" in response.get_data(as_text=True)


def test_statistics_follow_the_counted_submission(app: Flask, client: FlaskClient) -> None:
    """Best counts on day097: a passing upload followed by a failing one is 'passed'
    everywhere, and a student with only refused files is not in the pass rate."""
    assignment = "day097-cifar10"
    add_submission(app, "alice", assignment, status="passed", content=b"good")
    add_submission(app, "alice", assignment, status="failed", content=b"worse later")
    add_submission(app, "bob", assignment, status="not_gradable", content=b"refused")
    login(client, "prof")
    book = client.get(f"/instructor/assignments/{assignment}/gradebook?status=graded")
    assert "alice" in book.get_data(as_text=True)
    page = client.get(f"/instructor/assignments/{assignment}").get_data(as_text=True)
    # alice passed; bob has no valid submission, so he is not in the pass rate
    assert "100.0 %</span><span>pass rate" in page
