"""Log-in, CSRF, rate limiting, one-time links, tokens."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from webutil import PASSWORD, add_submission, login

from grader.service.db import db
from grader.web import create_app


def test_wrong_password_is_refused(client: FlaskClient) -> None:
    response = client.post("/login", data={"username": "alice", "password": "nope"})
    assert response.status_code == 200 and b"Wrong username or password" in response.data
    response = client.post("/login", data={"username": "ghost", "password": "nope"})
    assert b"Wrong username or password" in response.data


def test_open_redirect_is_ignored(client: FlaskClient) -> None:
    response = client.post(
        "/login?next=//evil.example/", data={"username": "alice", "password": PASSWORD}
    )
    assert response.headers["Location"] == "/"


def test_passwords_are_hashed(app: Flask) -> None:
    from grader.service.models import User

    with app.app_context():
        user = db.session.query(User).filter_by(username="alice").one()
        assert PASSWORD not in (user.password_hash or "")
        assert user.check_password(PASSWORD)


def test_logout(client: FlaskClient) -> None:
    login(client, "alice")
    assert client.post("/logout").status_code == 302
    assert client.get("/").status_code == 302


def _csrf_app(app_config: dict[str, Any]) -> Flask:
    config = dict(app_config, WTF_CSRF_ENABLED=True)
    return create_app(config)


def test_csrf_rejects_forms_without_token(app: Flask, app_config: dict[str, Any]) -> None:
    sid = add_submission(app, "alice")
    client = _csrf_app(app_config).test_client()
    # Log-in itself needs the token.
    response = client.post("/login", data={"username": "prof", "password": PASSWORD})
    assert response.status_code == 400
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post(
        "/login", data={"username": "prof", "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302
    for url, data in (
        (f"/instructor/submissions/{sid}/override", {"score": "1", "reason": "because"}),
        (f"/instructor/submissions/{sid}/regrade", {}),
        ("/instructor/assignments/day097-cifar10/regrade", {"confirm": "y"}),
        ("/account/tokens", {"name": "x"}),
        ("/logout", {}),
    ):
        assert client.post(url, data=data).status_code == 400, url
    from grader.service.models import Submission

    with app.app_context():
        assert db.session.get(Submission, sid).override_score is None
    # With the token the same override goes through.
    page = client.get(f"/submissions/{sid}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post(
        f"/instructor/submissions/{sid}/override",
        data={"score": "1", "reason": "because", "csrf_token": token},
    )
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(Submission, sid).override_score == 1.0


def test_login_is_rate_limited(app: Flask, app_config: dict[str, Any]) -> None:
    limited = create_app(dict(app_config, RATELIMIT_ENABLED=True, LOGIN_RATE_LIMIT="3 per minute"))
    client = limited.test_client()
    codes = [
        client.post("/login", data={"username": "alice", "password": "x"}).status_code
        for _ in range(5)
    ]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
    assert client.get("/login").status_code == 200  # only POSTs are limited


def test_one_time_link(app: Flask, client: FlaskClient) -> None:
    from grader.service.models import User

    with app.app_context():
        user = User(username="carol", role="student")
        token = user.new_setup_token()
        db.session.add(user)
        db.session.commit()
    assert client.get(f"/welcome/{token}").status_code == 200
    assert client.get("/welcome/wrong").status_code == 404
    response = client.post(
        f"/welcome/{token}", data={"password": "a new password", "confirm": "a new password"}
    )
    assert response.status_code == 302
    assert client.get("/").status_code == 200  # logged in
    assert client.get(f"/welcome/{token}").status_code == 404  # used up


def test_api_token_lifecycle(app: Flask, client: FlaskClient) -> None:
    login(client, "alice")
    page = client.post("/account/tokens", data={"name": "laptop"}).get_data(as_text=True)
    raw = re.search(r'id="new-token">([^<]+)<', page).group(1)
    api = app.test_client()
    headers = {"Authorization": f"Bearer {raw}"}
    assert api.get("/api/v1/me", headers=headers).get_json()["username"] == "alice"
    from grader.service.models import ApiToken

    with app.app_context():
        token = db.session.query(ApiToken).one()
        assert token.token_hash != raw and raw not in token.token_hash
        tid = token.id
    assert client.post(f"/account/tokens/{tid}/revoke").status_code == 302
    assert api.get("/api/v1/me", headers=headers).status_code == 401


def test_change_password(client: FlaskClient) -> None:
    login(client, "alice")
    client.post("/account/password", data={"password": "brand new pw", "confirm": "brand new pw"})
    client.post("/logout")
    response = client.post("/login", data={"username": "alice", "password": "brand new pw"})
    assert response.status_code == 302


def test_secret_key_is_generated_and_kept(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    config = {"INSTANCE_PATH": str(tmp_path), "SQLALCHEMY_DATABASE_URI": "sqlite://"}
    first = create_app(dict(config)).config["SECRET_KEY"]
    assert first == create_app(dict(config)).config["SECRET_KEY"] and len(first) >= 32


def test_a_password_flood_on_one_account_locks_out_no_one_else(
    app: Flask, app_config: dict[str, Any]
) -> None:
    limited = create_app(dict(app_config, RATELIMIT_ENABLED=True, LOGIN_RATE_LIMIT="3 per minute"))
    client = limited.test_client()
    for _ in range(3):
        client.post("/login", data={"username": "alice", "password": "x"})
    refused = client.post("/login", data={"username": "alice", "password": "x"})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    # Bob, behind the same address (a classroom's NAT), still logs in.
    response = client.post("/login", data={"username": "bob", "password": PASSWORD})
    assert response.status_code == 302
