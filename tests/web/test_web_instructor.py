"""Instructor pages: dashboard, gradebook, CSV, regrade, override + audit, imports."""

from __future__ import annotations

import csv
import io
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from webutil import ASSIGNMENTS, add_submission, login, user_id

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
    assert by_name["alice"]["counted"] == "85" and by_name["bob"]["status"] == "failed"
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
    row = page.split("<tbody>")[1].split("</tr>")[0]  # newest first
    assert "85 → 99 · reason: regraded by hand" in row and ">alice<" in row  # the student
    assert "&#34;old&#34;" not in page and '"old"' not in page  # no raw JSON
    page = client.get("/instructor/audit?student=bob").get_data(as_text=True)
    assert "regraded by hand" not in page and "Nothing matches" in page
    page = client.get("/instructor/audit?action=override&student=alice").get_data(as_text=True)
    assert "regraded by hand" in page
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


def test_figures_hold_during_a_regrade(app: Flask, client: FlaskClient) -> None:
    """A regrade keeps the previous result until the new one is in: the pass rate, the
    counted score and the status do not drop to nothing while the jobs wait."""
    from grader.service.policy import standing

    add_submission(app, "alice")
    add_submission(app, "bob", status="failed", content=b"bob")
    login(client, "prof")

    def figures() -> tuple[str, float | None, str]:
        page = client.get(f"/instructor/assignments/{A}").get_data(as_text=True)
        rate = re.search(r'class="n">([^<]*)</span><span>pass rate', page).group(1)
        with app.app_context():
            alice = db.session.query(User).filter_by(username="alice").one()
            st = standing(alice, db.session.get(Assignment, A))
            return rate, st.counted, st.label

    before = figures()
    assert before[0] == "50.0 %" and before[2] == "passed"
    client.post(f"/instructor/assignments/{A}/regrade", data={"confirm": "y"})
    with app.app_context():
        assert {s.state for s in db.session.query(Submission)} == {"queued"}
    assert figures() == before


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
    assert b"x.yaml: invalid assignment spec" in response.data  # names the file


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


def _set(app: Flask, sid: int, **values: object) -> None:
    """Change a stored submission (late penalty, override) as the policy code would."""
    with app.app_context():
        sub = db.session.get(Submission, sid)
        for key, value in values.items():
            if key == "score":
                sub.result.score = value
            else:
                setattr(sub, key, value)
        db.session.commit()


def test_per_student_page_lists_every_attempt_and_is_linked(
    app: Flask, client: FlaskClient
) -> None:
    first = add_submission(app, "alice", status="failed", content=b"first")
    late = add_submission(app, "alice", status="passed", content=b"late")
    fixed = add_submission(app, "alice", status="failed", content=b"fixed")
    refused = add_submission(app, "alice", status="not_gradable", content=b"refused")
    _set(app, late, late_days=2, penalty=0.2)  # 85 -> 68
    _set(app, fixed, override_score=95.0, override_reason="marked by hand", override_at=None)
    alice = user_id(app, "alice")
    login(client, "prof")
    page = client.get(f"/instructor/students/{alice}").get_data(as_text=True)
    for sid in (first, late, fixed, refused):
        assert f'href="/submissions/{sid}"' in page and f"/submissions/{sid}/download" in page
    assert "2 days late, −20.0 %" in page and "68 / 100" in page  # penalty and what is left
    assert "85 / 100" in page  # the raw score before the penalty
    assert "marked by hand" in page and "95 / 100" in page  # the override and its reason
    assert "not gradable" in page and "failed" in page and "passed" in page
    # best counts: the override (95) is the counted attempt
    counted = re.search(r'<tr class="counted-row">(.*?)</tr>', page, re.S)
    assert counted and f'href="/submissions/{fixed}"' in counted.group(1)
    # Reachable from the gradebook, the dashboard and each submission page.
    book = client.get(f"/instructor/assignments/{A}/gradebook").get_data(as_text=True)
    assert f'href="/instructor/students/{alice}#{A}"' in book
    board = client.get(f"/instructor/assignments/{A}").get_data(as_text=True)
    assert f'href="/instructor/students/{alice}#{A}"' in board
    sub_page = client.get(f"/submissions/{late}").get_data(as_text=True)
    back = re.search(r'<nav class="crumbs" id="back-links".*?</nav>', sub_page, re.S)
    assert back and f"/instructor/assignments/{A}/gradebook" in back.group(0)
    assert f"/instructor/students/{alice}#{A}" in back.group(0)
    for sid in (first, fixed, refused):
        assert f'href="/submissions/{sid}"' in back.group(0)
    assert client.get("/instructor/students/99999").status_code == 404
    client.post("/logout")
    login(client, "alice")  # students never see it, nor the back-links
    assert client.get(f"/instructor/students/{alice}").status_code == 404
    assert "back-links" not in client.get(f"/submissions/{late}").get_data(as_text=True)


def test_csv_export_is_enough_to_grade_from(app: Flask, client: FlaskClient) -> None:
    """Email, counted, raw, penalty, days late, override and its reason, attempts, and
    the status in the pages' words; scores rounded as on the pages."""
    with app.app_context():
        for name in ("carol", "dave"):
            db.session.add(User(username=name, role="student", name=name.title()))
        db.session.query(User).filter_by(username="alice").one().email = "alice@example.org"
        db.session.commit()
    good = add_submission(app, "alice", status="passed", content=b"a1")
    _set(app, good, score=90.48)
    late = add_submission(app, "bob", status="passed", content=b"b1")
    _set(app, late, late_days=2, penalty=0.2)
    fixed = add_submission(app, "bob", status="failed", content=b"b2")
    _set(app, fixed, override_score=70.0, override_reason="agreed by e-mail")
    add_submission(app, "carol", status="not_gradable", content=b"c1")
    login(client, "prof")
    text = client.get(f"/instructor/assignments/{A}/gradebook.csv").get_data(as_text=True)
    rows = {r["username"]: r for r in csv.DictReader(io.StringIO(text))}
    alice, bob, carol, dave = rows["alice"], rows["bob"], rows["carol"], rows["dave"]
    assert alice["email"] == "alice@example.org" and alice["status"] == "passed"
    assert alice["counted"] == "90.5" and alice["raw"] == "90.5" and alice["max_score"] == "100"
    assert alice["days_late"] == "0" and alice["penalty_percent"] == "0.0"
    assert alice["attempts"] == "1" and alice["override"] == ""
    # bob: the late pass counts 68 (85 - 20 %), below his override of 70, so 70 counts
    assert bob["counted"] == "70" and bob["override"] == "70"
    assert bob["override_reason"] == "agreed by e-mail" and bob["status"] == "failed"
    assert bob["attempts"] == "2" and bob["best"] == "70"
    _set(app, fixed, override_score=None, override_reason=None)
    text = client.get(f"/instructor/assignments/{A}/gradebook.csv").get_data(as_text=True)
    bob = {r["username"]: r for r in csv.DictReader(io.StringIO(text))}["bob"]
    assert bob["counted"] == "68" and bob["raw"] == "85" and bob["days_late"] == "2"
    assert bob["penalty_percent"] == "20.0" and bob["status"] == "passed"
    assert carol["status"] == "no valid submission" and carol["counted"] == ""
    assert dave["status"] == "not submitted" and dave["attempts"] == "0"
    # The page says the same words and numbers.
    book = client.get(f"/instructor/assignments/{A}/gradebook").get_data(as_text=True)
    assert "90.5 / 100" in book and "no valid submission" in book and "not submitted" in book
    assert "graded" not in re.sub(r"<[^>]+>", "", book.split("<tbody>")[1])


def test_sorting_puts_students_without_a_score_last(app: Flask, client: FlaskClient) -> None:
    add_submission(app, "bob", status="failed", content=b"bob")
    with app.app_context():
        db.session.add(User(username="aaron", role="student", name="Aaron"))
        db.session.commit()
    login(client, "prof")
    url = f"/instructor/assignments/{A}/gradebook"
    for direction in ("desc", "asc"):
        body = client.get(f"{url}?sort=best&dir={direction}").get_data(as_text=True)
        body = body.split("<tbody>")[1]
        assert body.index(">bob<") < body.index(">aaron<") and body.index(">bob<") < body.index(
            ">alice<"
        )
    page = client.get(f"{url}?status=passed").get_data(as_text=True)  # the pages' word
    assert ">bob<" not in page
    assert ">bob<" in client.get(f"{url}?status=failed").get_data(as_text=True)


def test_a_policy_change_offers_to_regrade_the_affected(app: Flask, client: FlaskClient) -> None:
    """Moving the deadline says how many penalties it would change and regrades them."""
    import datetime as dt

    from grader.service.specs import import_spec

    assignment = "day096-conv2d"
    on_time = add_submission(app, "alice", assignment, content=b"on time")
    _set(app, on_time, created_at=dt.datetime(2026, 1, 10, 12, 0))
    late = add_submission(app, "bob", assignment, content=b"late")
    _set(app, late, created_at=dt.datetime(2026, 1, 12, 12, 0))
    text = (ASSIGNMENTS / f"{assignment}.yaml").read_text().split("\npolicy:")[0]
    policy = "\npolicy:\n  deadline: {}\n  late_penalty_per_day: 0.1\n"
    with app.app_context():
        import_spec(text + policy.format("2026-01-11T00:00:00Z"), "v2")
    login(client, "prof")
    page = client.get(f"/instructor/assignments/{assignment}").get_data(as_text=True)
    assert 'id="policy-changed"' in page and "Regrade 1 submission<" in page  # bob only
    client.post(f"/instructor/assignments/{assignment}/regrade-stale")
    assert app.extensions["grader_executor"].submitted == [late]
    with app.app_context():
        assert db.session.get(Submission, late).late_days == 2  # set again from the spec
        import_spec(text + policy.format("2026-01-20T00:00:00Z"), "v3")  # moved later
    page = client.get(f"/instructor/assignments/{assignment}").get_data(as_text=True)
    assert "Regrade 1 submission<" in page
    client.post(f"/instructor/assignments/{assignment}/regrade-stale")
    with app.app_context():
        assert db.session.get(Submission, late).late_days == 0
    page = client.get(f"/instructor/assignments/{assignment}").get_data(as_text=True)
    assert 'id="policy-changed"' not in page


def test_course_csv_has_one_column_per_assignment(app: Flask, client: FlaskClient) -> None:
    """The LMS layout: a line per student, each assignment's counted score in a column."""
    sid = add_submission(app, "alice", "day097-cifar10", status="passed")
    _set(app, sid, score=90.48)
    add_submission(app, "bob", "day096-conv2d", status="failed", content=b"bob")
    login(client, "prof")
    assert 'id="course-csv"' in client.get("/instructor/").get_data(as_text=True)
    response = client.get("/instructor/grades.csv")
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    header = rows[0]
    assert header[:3] == ["username", "name", "email"] and "day097-cifar10 (/100)" in header
    by_user = {r[0]: dict(zip(header, r, strict=True)) for r in rows[1:]}
    assert by_user["alice"]["day097-cifar10 (/100)"] == "90.5"
    assert by_user["alice"]["day096-conv2d (/100)"] == ""
    assert by_user["bob"]["day096-conv2d (/100)"] == "40"


def test_odd_ids_and_nul_in_filters_are_clear_answers(app: Flask, client: FlaskClient) -> None:
    """Unicode digits ('²'.isdigit() is True) and NUL (refused by PostgreSQL) in a form or
    a filter are a 404 or an empty result, never a 500."""
    login(client, "prof")
    for raw in ("²", "٣", "0", str(2**40)):
        assert client.post("/instructor/students/links", data={"user": raw}).status_code == 404
    for name in ("action", "student", "assignment"):
        page = client.get("/instructor/audit", query_string={name: "a\x00b"})
        assert page.status_code == 200
    assert client.get("/api/v1/submissions/²").status_code in {401, 404}
