"""What ``grader submit`` and ``grader status`` print when the server says no: what was
not found, in words (not Werkzeug's generic page text), and scores as the pages write them."""

from __future__ import annotations

from pathlib import Path

import test_web_cli
from click.testing import CliRunner
from flask import Flask
from webutil import add_submission, api_token

cli = test_web_cli.cli
live_server = test_web_cli.live_server


def test_http_errors_say_what_was_not_found(
    cli: object, app: Flask, live_server: str, tmp_path: Path
) -> None:
    token = api_token(app, "alice")
    model = tmp_path / "m.keras"
    model.write_bytes(b"PK\x03\x04 not really")
    runner = CliRunner(env={"GRADER_SERVER": live_server, "GRADER_TOKEN": token})
    result = runner.invoke(cli, ["submit", str(model), "--assignment", "nope"])  # type: ignore[arg-type]
    assert result.exit_code != 0
    assert f"404: no assignment 'nope' open on {live_server}" in result.output
    assert "requested URL" not in result.output
    result = runner.invoke(cli, ["status", "4242"])  # type: ignore[arg-type]
    assert f"404: no submission #4242 of yours on {live_server}" in result.output
    sid = add_submission(app, "alice", status="passed")
    result = runner.invoke(cli, ["status", str(sid)])  # type: ignore[arg-type]
    assert "score 85 / 100" in result.output, result.output
