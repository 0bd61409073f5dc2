"""The instructor CLI (init-db, create-user, import-roster, assignments import,
regrade, export-grades) and the student client (submit, status) against a live
server; and the Alembic migrations matching the models on both databases."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from flask import Flask
from webutil import ASSIGNMENTS, add_submission, api_token
from werkzeug.serving import make_server

from grader.cli import cli as grader_cli
from grader.service.db import db


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, app: Flask) -> click.Group:
    """The grader command group, whose apps use the test database."""
    from grader.web import app as app_module

    original = app_module.create_app

    def test_create_app(config: dict[str, Any] | None = None) -> Flask:
        merged = {k: v for k, v in app.config.items() if k in (
            "SQLALCHEMY_DATABASE_URI", "GRADER_SUBMISSIONS_DIR", "SECRET_KEY",
            "PASSWORD_HASH_METHOD")}  # fmt: skip
        merged["INSTANCE_PATH"] = app.instance_path
        merged.update(config or {})
        return original(merged)

    monkeypatch.setattr(app_module, "create_app", test_create_app)
    return grader_cli


def test_admin_commands(cli: click.Group, app: Flask, tmp_path: Path) -> None:
    from grader.service.models import Assignment, User

    runner = CliRunner()
    result = runner.invoke(
        cli, ["create-user", "ta1", "--role", "instructor", "--password", "pw12345678"]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["create-user", "stud", "--random"])
    assert "Password:" in result.output
    roster = tmp_path / "roster.csv"
    roster.write_text("username,name\nzoe,Zoe\n")
    result = runner.invoke(cli, ["import-roster", str(roster), "--base-url", "https://g.example"])
    assert result.exit_code == 0 and "https://g.example/welcome/" in result.output
    result = runner.invoke(cli, ["assignments", "import", str(ASSIGNMENTS)])
    assert result.exit_code == 0 and result.output.count("unchanged") == 4
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\ntitle: x\n")
    result = runner.invoke(cli, ["assignments", "import", str(bad)])
    assert result.exit_code != 0 and "input_shape" in result.output
    add_submission(app, "alice")
    result = runner.invoke(cli, ["export-grades", "day097-cifar10"])
    assert (
        result.exit_code == 0 and result.output.startswith("username,") and "alice" in result.output
    )
    with app.app_context():
        assert db.session.query(User).filter_by(username="ta1").one().is_instructor
        assert db.session.query(User).filter_by(username="zoe").one().setup_token_hash
        assert db.session.query(Assignment).count() == 4


def test_regrade_command(cli: click.Group, app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    from webutil import fake_pipeline, fake_report

    sid = add_submission(app, "alice", status="failed")
    fake_pipeline(monkeypatch, fake_report("day097-cifar10", "passed"))
    result = CliRunner().invoke(cli, ["regrade", "--submission", str(sid)])
    assert result.exit_code == 0 and "graded 85.0" in result.output, result.output


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    app.config["SERVER_NAME"] = f"127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_submit_and_status_commands(
    cli: click.Group, app: Flask, live_server: str, tmp_path: Path
) -> None:
    token = api_token(app, "alice")
    model = tmp_path / "my model.keras"
    model.write_bytes(b"PK\x03\x04 not really")
    runner = CliRunner(env={"GRADER_SERVER": live_server, "GRADER_TOKEN": token})
    result = runner.invoke(
        cli, ["submit", str(model), "--assignment", "day096-conv2d", "--no-wait"]
    )
    assert result.exit_code == 0 and ": queued" in result.output, result.output
    result = runner.invoke(cli, ["status"])
    assert "day096-conv2d: queued" in result.output
    result = runner.invoke(cli, ["status", "--token", "gr_bad"])
    assert result.exit_code != 0 and "401" in result.output
    result = runner.invoke(cli, ["submit", str(model), "--assignment", "nope"])
    assert result.exit_code != 0 and "404" in result.output


def test_migrations_match_models(app: Flask, tmp_path: Path) -> None:
    """``init-db`` on an empty database builds exactly the models' schema."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from grader.service.migrate import upgrade

    with app.app_context():
        db.drop_all()
    upgrade(app)
    upgrade(app)  # idempotent
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, db.metadata) == []
        conn.exec_driver_sql("DROP TABLE alembic_version")
        conn.commit()


def test_first_command_on_a_fresh_install_creates_the_database(tmp_path: Path) -> None:
    """`grader create-user` before any `grader init-db` (as the README suggests) works."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["GRADER_INSTANCE_DIR"] = str(tmp_path / "instance")
    done = subprocess.run(
        [sys.executable, "-m", "grader", "create-user", "prof", "--role", "instructor",
         "--password", "a long enough password"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Created instructor prof" in done.stdout and "Traceback" not in done.stderr
    assert (tmp_path / "instance" / "grader.db").exists()
