"""The JSON API: token authentication, ownership, and fuzzing from its own
OpenAPI document with schemathesis (no 500s, responses match the schema)."""

from __future__ import annotations

import io

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from webutil import add_submission, api_token


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_openapi_is_served(client: FlaskClient) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()
    assert (
        doc["openapi"].startswith("3.")
        and "/assignments/{assignment_id}/submissions" in doc["paths"]
    )


def test_api_needs_a_token(client: FlaskClient) -> None:
    for headers in ({}, auth("gr_wrong"), {"Authorization": "Basic abc"}):
        response = client.get("/api/v1/assignments", headers=headers)
        assert response.status_code == 401 and response.get_json()["status"] == 401
    # A session cookie is not enough for the API.
    from webutil import login

    login(client, "alice")
    assert client.get("/api/v1/me").status_code == 401


def test_submit_and_status(app: Flask, client: FlaskClient) -> None:
    token = api_token(app, "alice")
    listing = client.get("/api/v1/assignments", headers=auth(token)).get_json()
    assert {a["id"] for a in listing} == {
        "day096-conv2d", "day096-separable", "day096-strides-padding", "day097-cifar10",
    }  # fmt: skip
    response = client.post(
        "/api/v1/assignments/day096-conv2d/submissions",
        data={"model": (io.BytesIO(b"PK\x03\x04 model"), "m.keras")},
        headers=auth(token),
        content_type="multipart/form-data",
    )
    assert response.status_code == 201
    sub = response.get_json()
    assert sub["state"] == "queued" and not sub["finished"]
    got = client.get(f"/api/v1/submissions/{sub['id']}", headers=auth(token)).get_json()
    assert got["id"] == sub["id"]
    assert got["queue_position"] == 0 and got["phase"]  # first in its queue, nothing ran
    second = client.post(
        "/api/v1/assignments/day096-conv2d/submissions",
        data={"model": (io.BytesIO(b"PK\x03\x04 other model"), "m.keras")},
        headers=auth(token),
        content_type="multipart/form-data",
    ).get_json()
    assert second["queue_position"] == 1
    assert (
        client.get(f"/api/v1/submissions/{sub['id']}/report", headers=auth(token)).status_code
        == 404
    )
    bad = client.post(
        "/api/v1/assignments/day096-conv2d/submissions",
        data={"model": (io.BytesIO(b"x"), "m.txt")},
        headers=auth(token),
        content_type="multipart/form-data",
    )
    assert bad.status_code == 400


def test_api_ownership(app: Flask, client: FlaskClient) -> None:
    sid = add_submission(app, "alice")
    alice, bob, prof = (api_token(app, u) for u in ("alice", "bob", "prof"))
    assert client.get(f"/api/v1/submissions/{sid}", headers=auth(alice)).status_code == 200
    report = client.get(f"/api/v1/submissions/{sid}/report", headers=auth(alice)).get_json()
    assert report["status"] == "passed" and report["metrics"]["accuracy"] == 0.8
    assert client.get(f"/api/v1/submissions/{sid}", headers=auth(bob)).status_code == 404
    assert client.get(f"/api/v1/submissions/{sid}/report", headers=auth(bob)).status_code == 404
    assert client.get("/api/v1/submissions", headers=auth(bob)).get_json() == []
    assert client.get(f"/api/v1/submissions/{sid}", headers=auth(prof)).status_code == 200


@pytest.fixture
def alice_token(app: Flask) -> str:
    add_submission(app, "alice")
    return api_token(app, "alice")


@pytest.fixture
def api_schema(app: Flask, alice_token: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_api_fuzz(case: schemathesis.Case, alice_token: str) -> None:
    case.call_and_validate(headers=auth(alice_token))


def test_unicode_digits_in_an_id_are_a_404_not_a_500(app: Flask, client: FlaskClient) -> None:
    """'³'.isdigit() is True in Python, but it is not a number int() can read."""
    from webutil import api_token

    token = api_token(app, "alice")
    for path in ("/api/v1/submissions/%C2%B3/report", "/api/v1/submissions/%C2%B3"):
        response = client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 404, path


def test_not_found_says_what_was_not_found(app: Flask, client: FlaskClient) -> None:
    token = api_token(app, "alice")
    missing = client.get("/api/v1/assignments/nope", headers=auth(token))
    assert missing.status_code == 404
    assert missing.get_json()["message"] == "There is no open assignment 'nope'."
    sub = client.get("/api/v1/submissions/999999", headers=auth(token))
    assert sub.get_json()["message"] == "There is no submission '999999' that you can see."


def test_deadline_is_the_utc_instant_enforced(app: Flask, client: FlaskClient) -> None:
    from webutil import ASSIGNMENTS

    from grader.service.specs import import_spec

    text = (ASSIGNMENTS / "day096-conv2d.yaml").read_text().split("\npolicy:")[0]
    with app.app_context():
        import_spec(text + "\npolicy:\n  deadline: 2026-12-01T09:09+01:00\n", "day096-conv2d.yaml")
    token = api_token(app, "alice")
    got = client.get("/api/v1/assignments/day096-conv2d", headers=auth(token)).get_json()
    assert got["deadline"] == "2026-12-01T08:09:00+00:00"
