"""Authorisation matrix: anonymous, student A, student B and an instructor over
every URL that shows or changes data. Students get 404 (never 403) for what is
not theirs, so ids cannot be enumerated."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from webutil import add_submission, login

A = "day097-cifar10"

# (method, url template, expected for anonymous, alice (owner), bob, prof)
# "login" = redirect to the log-in page; codes otherwise.
MATRIX = [
    ("GET", "/", "login", 200, 200, 302),
    ("GET", "/submissions", "login", 200, 200, 200),
    ("GET", "/account", "login", 200, 200, 200),
    ("GET", f"/assignments/{A}", "login", 200, 200, 200),
    ("GET", "/submissions/{sid}", "login", 200, 404, 200),
    ("GET", "/submissions/{sid}/status", "login", 200, 404, 200),
    ("GET", "/submissions/{sid}/download", "login", 200, 404, 200),
    ("GET", "/submissions/999999", "login", 404, 404, 404),
    ("GET", "/instructor/", "login", 404, 404, 200),
    ("GET", f"/instructor/assignments/{A}", "login", 404, 404, 200),
    ("GET", f"/instructor/assignments/{A}/gradebook", "login", 404, 404, 200),
    ("GET", f"/instructor/assignments/{A}/gradebook.csv", "login", 404, 404, 200),
    ("GET", f"/instructor/assignments/{A}/regrade", "login", 404, 404, 200),
    ("GET", "/instructor/audit", "login", 404, 404, 200),
    ("POST", f"/instructor/assignments/{A}/regrade", "login", 404, 404, 200),
    ("POST", "/instructor/submissions/{sid}/regrade", "login", 404, 404, 302),
    ("POST", "/instructor/submissions/{sid}/override", "login", 404, 404, 302),
    ("POST", "/instructor/import-spec", "login", 404, 404, 302),
    ("POST", "/instructor/roster", "login", 404, 404, 302),
    ("POST", f"/assignments/{A}/submit", "login", 302, 302, 302),
    ("POST", "/account/tokens", "login", 200, 200, 200),
    ("POST", "/account/tokens/{tid}/revoke", "login", 302, 404, 404),
]
WHO = ["anonymous", "alice", "bob", "prof"]


@pytest.mark.parametrize("who", range(4), ids=WHO)
def test_authorisation_matrix(app: Flask, client: FlaskClient, who: int) -> None:
    from grader.service.db import db
    from grader.service.models import ApiToken, User

    sid = add_submission(app, "alice")
    with app.app_context():
        alice = db.session.query(User).filter_by(username="alice").one()
        token = ApiToken(user_id=alice.id, name="t", token_hash="x" * 64)
        db.session.add(token)
        db.session.commit()
        tid = token.id
    if WHO[who] != "anonymous":
        login(client, WHO[who])
    failures = []
    for method, template, *expected in MATRIX:
        url = template.format(sid=sid, tid=tid)
        want = expected[who]
        response = client.open(url, method=method)
        if want == "login":
            ok = response.status_code == 302 and "/login" in response.headers["Location"]
        else:
            ok = response.status_code == want
        if not ok:
            failures.append((method, url, want, response.status_code))
    assert not failures


def test_student_cannot_see_other_in_lists(app: Flask, client: FlaskClient) -> None:
    sid = add_submission(app, "alice")
    login(client, "bob")
    assert f"/submissions/{sid}" not in client.get("/submissions").get_data(as_text=True)
    assert f"/submissions/{sid}" not in client.get(f"/assignments/{A}").get_data(as_text=True)


def test_data_changing_urls_refuse_get(app: Flask, client: FlaskClient) -> None:
    sid = add_submission(app, "alice")
    login(client, "prof")
    for url in (f"/instructor/submissions/{sid}/regrade", f"/instructor/submissions/{sid}/override",
                "/logout", "/instructor/roster", "/instructor/import-spec",
                f"/assignments/{A}/submit"):  # fmt: skip
        assert client.get(url).status_code == 405, url
