"""Fuzz every HTML form with hypothesis, on SQLite and PostgreSQL, with CSRF on: no
input gives a 500.

The forms: login, the welcome link's password, the account's password and token
forms, token revoke and logout, the upload, the instructor's score override,
regrade (one and all), spec import and roster import. Each example sends a valid,
a missing or a wrong CSRF token, and text, numbers, file names and file contents
drawn from everything a browser or a hostile client can send: NUL and other control
characters, lone combining marks, right-to-left text, very long values, non-UTF-8
bytes. The API has its own fuzz (schemathesis, tests/web/test_web_api.py).

Examples are bounded (``MAX_EXAMPLES`` per form and database) and CI draws them from
a fixed seed (tests/conftest.py's "ci" profile). Grading is off (the ``none``
executor): this is about the web layer, not TensorFlow.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from webutil import PASSWORD, make_config, seed

from grader.service.db import db
from grader.service.models import Submission, User
from grader.web import create_app

MAX_EXAMPLES = 12
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')

# Text as a client may send it: any code point but surrogates (which no encoding
# carries), with the awkward ones made likely.
AWKWARD = st.sampled_from(
    ["\x00", "\x01\x1f\x7f", "\u202e", "\u0301", "\ufeff", "'; DROP TABLE users; --",
     "<script>alert(1)</script>", "%00", "../../etc/passwd", "x" * 5000, "", " "]
)  # fmt: skip
TEXT = st.one_of(
    AWKWARD,
    st.text(st.characters(exclude_categories=["Cs"]), max_size=300),
    st.lists(AWKWARD, max_size=4).map("".join),
)
NUMBER = st.one_of(
    TEXT,
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["nan", "-inf", "1e309", "１２", "٣", "³", "0x10", "1_000", "-0"]),
)
# File names reach the server in a multipart header: no CR or LF (the client library
# refuses them), anything else goes.
FILENAME = TEXT.map(lambda s: s.replace("\r", "").replace("\n", "")).filter(bool)
CONTENT = st.one_of(
    st.binary(max_size=4096),
    st.sampled_from([b"", b"\x00" * 64, b"PK\x03\x04", b"\x89HDF\r\n\x1a\n" + b"\x00" * 100]),
    TEXT.map(lambda s: s.encode("utf-8")),
)
CSRF = st.sampled_from(["valid", "valid", "missing", "wrong"])
# Ids in a URL: Flask's int converter takes any size; PostgreSQL's integer does not.
ID = st.one_of(st.integers(0, 50), st.integers(2**31 - 2, 2**63), st.just(2**31))


@dataclass
class Course:
    app: Flask
    submission_id: int
    clients: dict[str, FlaskClient]
    tokens: dict[str, str]

    def post(self, who: str, url: str, data: dict[str, Any], csrf: str, **kw: Any) -> Any:
        """POST a form as ``who`` with a valid, missing or wrong CSRF token."""
        data = dict(data)
        if csrf == "valid":
            data["csrf_token"] = self.tokens[who]
        elif csrf == "wrong":
            data["csrf_token"] = "forged." + self.tokens[who][::-1]
        response = self.clients[who].post(url, data=data, **kw)
        assert response.status_code < 500, (url, data, response.get_data(as_text=True)[:2000])
        if csrf != "valid":  # refused, with a page of ours, never acted upon
            assert response.status_code == 400, (url, response.status_code)
        return response


def _token(client: FlaskClient, url: str) -> str:
    page = client.get(url).get_data(as_text=True)
    match = _TOKEN.search(page)
    assert match, page[:500]
    return match.group(1)


@pytest.fixture(scope="module")
def course(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Course]:
    """One course per database for the whole module: CSRF on, grading off."""
    tmp = tmp_path_factory.mktemp("form-fuzz")
    app = create_app(make_config(tmp, db_url, WTF_CSRF_ENABLED=True))
    with app.app_context():
        db.drop_all()
        db.create_all()
        seed()
        carol = User(username="carol", role="student", name="Carol")
        carol.set_password(PASSWORD)
        db.session.add(carol)
        db.session.commit()
    clients, tokens = {}, {}
    for who in ("anonymous", "alice", "carol", "prof"):
        client = app.test_client()
        tokens[who] = _token(client, "/login")
        if who != "anonymous":
            r = client.post(
                "/login",
                data={"username": who, "password": PASSWORD, "csrf_token": tokens[who]},
            )
            assert r.status_code == 302, r.get_data(as_text=True)[:500]
        clients[who] = client
    up = clients["alice"].post(
        "/assignments/day096-conv2d/submit",
        data={"model": (io.BytesIO(b"PK\x03\x04 not a model"), "m.keras"),
              "csrf_token": tokens["alice"]},
        content_type="multipart/form-data",
    )  # fmt: skip
    assert up.status_code == 302, up.get_data(as_text=True)[:500]
    with app.app_context():
        sid = db.session.query(Submission.id).order_by(Submission.id.desc()).limit(1).scalar()
    yield Course(app, int(sid), clients, tokens)
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


@FUZZ
@given(username=TEXT, password=TEXT, csrf=CSRF)
def test_login_form(course: Course, username: str, password: str, csrf: str) -> None:
    r = course.post("anonymous", "/login", {"username": username, "password": password}, csrf)
    assert r.status_code in (200, 400), r.status_code  # never logged in by a guess


@FUZZ
@given(token=TEXT.filter(lambda t: "/" not in t and t.strip()), pw=TEXT, confirm=TEXT, csrf=CSRF)
def test_welcome_link_form(course: Course, token: str, pw: str, confirm: str, csrf: str) -> None:
    from urllib.parse import quote

    url = "/welcome/" + quote(token, safe="")
    data = {"password": pw, "confirm": confirm}
    response = course.clients["anonymous"].post(
        url, data={**data, "csrf_token": course.tokens["anonymous"]} if csrf == "valid" else data
    )
    assert response.status_code in (400, 404), response.status_code  # no such invitation


@FUZZ
@given(pw=TEXT, confirm=TEXT, name=TEXT, token_id=ID, csrf=CSRF)
def test_account_forms(
    course: Course, pw: str, confirm: str, name: str, token_id: int, csrf: str
) -> None:
    course.post("carol", "/account/tokens", {"name": name}, csrf)
    # A password only changes when both fields agree and are long enough: keep carol's.
    if pw == confirm:
        confirm += "!"
    course.post("carol", "/account/password", {"password": pw, "confirm": confirm}, csrf)
    course.post("carol", f"/account/tokens/{token_id}/revoke", {}, csrf)


@FUZZ
@given(content=CONTENT, filename=FILENAME, assignment=st.sampled_from(
    ["day096-conv2d", "day097-cifar10", "no-such-assignment"]), csrf=CSRF)  # fmt: skip
def test_upload_form(
    course: Course, content: bytes, filename: str, assignment: str, csrf: str
) -> None:
    course.post(
        "alice", f"/assignments/{assignment}/submit",
        {"model": (io.BytesIO(content), filename)}, csrf, content_type="multipart/form-data",
    )  # fmt: skip


@FUZZ
@given(score=NUMBER, reason=TEXT, clear=st.booleans(), csrf=CSRF, other=ID)
def test_override_form(
    course: Course, score: str, reason: str, clear: bool, csrf: str, other: int
) -> None:
    data = {"score": score, "reason": reason, **({"clear": "y"} if clear else {})}
    course.post("prof", f"/instructor/submissions/{course.submission_id}/override", data, csrf)
    course.post("prof", f"/instructor/submissions/{other}/override", data, csrf)
    with course.app.app_context():  # whatever was sent, a stored override is a real score
        sub = db.session.get(Submission, course.submission_id)
        assert sub is not None
        if sub.override_score is not None:
            assert 0 <= sub.override_score <= 100
        db.session.remove()


@FUZZ
@given(confirm=st.one_of(st.none(), TEXT), csrf=CSRF, one=st.booleans(), other=ID)
def test_regrade_forms(
    course: Course, confirm: str | None, csrf: str, one: bool, other: int
) -> None:
    if one:
        course.post("prof", f"/instructor/submissions/{course.submission_id}/regrade", {}, csrf)
        course.post("prof", f"/instructor/submissions/{other}/regrade", {}, csrf)
    else:
        data = {} if confirm is None else {"confirm": confirm}
        course.post("prof", "/instructor/assignments/day096-conv2d/regrade", data, csrf)
    # A student is never let in.
    r = course.clients["alice"].post(
        f"/instructor/submissions/{course.submission_id}/regrade",
        data={"csrf_token": course.tokens["alice"]},
    )
    assert r.status_code in (302, 403, 404)


@FUZZ
@given(content=CONTENT, filename=FILENAME, csrf=CSRF, kind=st.sampled_from(["spec", "roster"]))
def test_spec_and_roster_import_forms(
    course: Course, content: bytes, filename: str, csrf: str, kind: str
) -> None:
    url = "/instructor/import-spec" if kind == "spec" else "/instructor/roster"
    course.post(
        "prof", url, {kind: (io.BytesIO(content), filename)}, csrf,
        content_type="multipart/form-data",
    )  # fmt: skip


USERNAME = st.one_of(TEXT, st.from_regex(r"[a-z][a-z0-9_.-]{0,20}", fullmatch=True))
ROSTER_ROW = st.lists(st.one_of(USERNAME, TEXT), min_size=0, max_size=6)


@FUZZ
@given(rows=st.lists(ROSTER_ROW, max_size=5), header=st.booleans())
def test_roster_import_with_csv_shaped_rows(
    course: Course, rows: list[list[str]], header: bool
) -> None:
    """Well-formed CSV with hostile cells (and rows longer or shorter than the header)
    reaches the importer's own checks."""
    import csv

    out = io.StringIO()
    writer = csv.writer(out)
    if header:
        writer.writerow(["username", "name", "email", "password"])
    writer.writerows(rows)
    course.post(
        "prof", "/instructor/roster",
        {"roster": (io.BytesIO(out.getvalue().encode("utf-8")), "roster.csv")}, "valid",
        content_type="multipart/form-data",
    )  # fmt: skip


def test_logout_form_needs_its_token(course: Course) -> None:
    client = course.app.test_client()
    token = _token(client, "/login")
    client.post("/login", data={"username": "bob", "password": PASSWORD, "csrf_token": token})
    assert client.post("/logout").status_code == 400  # no token: refused, still logged in
    assert client.get("/account").status_code == 200
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/account").status_code == 302
