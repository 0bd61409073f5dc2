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
