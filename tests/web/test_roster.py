"""The roster: who has activated their account, one-time links downloadable as CSV and
re-issued for students who have not; import-roster prints the configured public URL."""

from __future__ import annotations

import csv
import io
import re
import urllib.parse
from pathlib import Path

import pytest
import test_web_cli
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from webutil import login

from grader.service.db import db
from grader.service.models import AuditLog, User

cli = test_web_cli.cli  # the grader command group on the test database


def _import(client: FlaskClient, text: str) -> str:
    response = client.post(
        "/instructor/roster",
        data={"roster": (io.BytesIO(text.encode()), "roster.csv")},
        content_type="multipart/form-data",
    )
    return response.get_data(as_text=True)


def _links(page: str) -> dict[str, str]:
    match = re.search(r'id="links-csv" download="roster-links.csv" href="data:text/csv;'
                      r'charset=utf-8,([^"]+)"', page)  # fmt: skip
    assert match, "no CSV of the links on the page"
    text = urllib.parse.unquote(match.group(1).replace("&amp;", "&"))
    return {r["username"]: r["link"] for r in csv.DictReader(io.StringIO(text))}


def test_roster_page_links_as_csv_and_reissued(app: Flask, client: FlaskClient) -> None:
    login(client, "prof")
    page = _import(client, "username,name,email\ncarol,Carol C,c@example.org\ndave,Dave,\n")
    first = _links(page)
    assert set(first) == {"carol", "dave"} and first["carol"].startswith(
        "http://localhost/welcome/"
    )
    # Re-importing a student who never set a password gives a new link (the old one dies).
    again = _links(_import(client, "username\ndave\n"))
    assert set(again) == {"dave"} and again["dave"] != first["dave"]
    # carol activates her account with her link
    other = app.test_client()
    assert other.get(first["carol"]).status_code == 200
    other.post(first["carol"], data={"password": "carols password", "confirm": "carols password"})
    # The roster page: who is active (alice, bob were seeded with passwords; carol now).
    roster = client.get("/instructor/students").get_data(as_text=True)
    assert 'id="active-count">3<' in roster and "not activated" in roster
    rows = roster.split("<tbody>")[1]
    dave_row = rows[rows.index(">dave<") :].split("</tr>")[0]
    carol_row = rows[rows.index(">carol<") :].split("</tr>")[0]
    assert "not activated" in dave_row and "new link" in dave_row and "active" in carol_row
    assert "new link" not in carol_row
    # One at a time, then everyone not yet active: only dave.
    with app.app_context():
        dave = db.session.query(User).filter_by(username="dave").one().id
    one = _links(client.post("/instructor/students/links", data={"user": str(dave)}).get_data(
        as_text=True))  # fmt: skip
    assert set(one) == {"dave"} and one["dave"] != again["dave"]
    everyone = _links(client.post("/instructor/students/links").get_data(as_text=True))
    assert set(everyone) == {"dave"}
    assert app.test_client().get(one["dave"]).status_code != 200  # replaced, so dead
    with app.app_context():
        assert db.session.query(AuditLog).filter_by(action="roster_links").count() == 2
    client.post("/logout")
    login(client, "alice")
    assert client.get("/instructor/students").status_code == 404
    assert client.post("/instructor/students/links").status_code == 404


def test_import_roster_prints_the_public_url(
    cli: object, app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRADER_PUBLIC_URL", "https://grader.example.org:8443")
    roster = tmp_path / "roster.csv"
    roster.write_text("username\nzoe\n")
    result = CliRunner().invoke(cli, ["import-roster", str(roster)])  # type: ignore[arg-type]
    assert result.exit_code == 0, result.output
    assert "https://grader.example.org:8443/welcome/" in result.output
    monkeypatch.delenv("GRADER_PUBLIC_URL")
    monkeypatch.setenv("GRADER_SERVER", "http://10.0.0.5:8000")
    roster.write_text("username\nyan\n")
    result = CliRunner().invoke(cli, ["import-roster", str(roster)])  # type: ignore[arg-type]
    assert "http://10.0.0.5:8000/welcome/" in result.output
