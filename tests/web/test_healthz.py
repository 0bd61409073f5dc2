"""The health endpoint that compose and load balancers poll."""

from __future__ import annotations

from pathlib import Path

from webutil import make_config

from grader.web import create_app


def test_healthz_answers_ok_when_the_database_does(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_healthz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    # A real connection attempt to a closed port on this machine.
    unreachable = "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2"
    app = create_app(make_config(tmp_path, unreachable))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "database unavailable"}


def test_healthz_is_503_when_the_database_takes_no_writes(tmp_path: Path) -> None:
    """A read-only SQLite file answers SELECT 1, but the service could store nothing."""
    import sqlite3

    path = tmp_path / "grader.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, active BOOLEAN)")
    app = create_app(make_config(tmp_path, f"sqlite:///file:{path}?mode=ro&uri=true"))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "database unavailable"}


def test_a_database_outage_is_a_503_with_retry_after(tmp_path: Path) -> None:
    """Every request that needs the database while it is down: 503 + Retry-After, no 500."""
    unreachable = "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2"
    client = create_app(make_config(tmp_path, unreachable)).test_client()
    api = client.get("/api/v1/assignments", headers={"Authorization": "Bearer gr_x"})
    page = client.post("/login", data={"username": "alice", "password": "x"})
    for response in (api, page):
        assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0
    assert api.get_json()["status"] == 503 and "unavailable" in api.get_json()["message"]
    assert b"Back in a moment" in page.data
