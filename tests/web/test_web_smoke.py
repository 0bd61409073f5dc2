"""Every page renders for the people allowed to see it."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from webutil import add_submission, login


def test_login_page_and_redirect(client: FlaskClient) -> None:
    assert client.get("/login").status_code == 200
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_student_pages(app: Flask, client: FlaskClient) -> None:
    sid = add_submission(app, "alice")
    login(client, "alice")
    page = client.get("/").get_data(as_text=True)
    assert "Day 97" in page and "Attempts left today" in page
    page = client.get("/assignments/day096-conv2d").get_data(as_text=True)
    assert "<strong>224×224 RGB image</strong>" in page
    page = client.get(f"/submissions/{sid}").get_data(as_text=True)
    assert "per-class-chart" in page and "heat-" in page and "85" in page
    assert client.get("/submissions").status_code == 200
    assert client.get("/account").status_code == 200


def test_instructor_pages(app: Flask, client: FlaskClient) -> None:
    sid = add_submission(app, "alice")
    login(client, "prof")
    assert client.get("/").status_code == 302
    for url in ("/instructor/", "/instructor/assignments/day097-cifar10",
                "/instructor/assignments/day097-cifar10/gradebook",
                "/instructor/assignments/day097-cifar10/regrade", "/instructor/audit",
                f"/submissions/{sid}"):  # fmt: skip
        response = client.get(url)
        assert response.status_code == 200, (url, response.data[-2000:])
