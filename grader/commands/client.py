"""``grader submit`` and ``grader status``: a student's HTTP client of a server's JSON API."""

from __future__ import annotations

import json
import mimetypes
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import click

from grader import units

#: The defaults and variables of Settings.server / Settings.token (grader/settings.py),
#: repeated here so that the client does not load pydantic for ``grader --help``.
SERVER_ENV, TOKEN_ENV, DEFAULT_SERVER = "GRADER_SERVER", "GRADER_TOKEN", "http://127.0.0.1:5000"


def _client_options(f: Any) -> Any:
    f = click.option("--token", envvar=TOKEN_ENV, help=f"API token (or {TOKEN_ENV}).")(f)
    f = click.option(
        "--server", envvar=SERVER_ENV, default=DEFAULT_SERVER,
        show_default=True, help=f"Server URL (or {SERVER_ENV}).",
    )(f)  # fmt: skip
    return f


def _request(
    server: str, token: str | None, path: str, *, body: bytes | None = None,
    content_type: str | None = None, not_found: str | None = None,
) -> Any:  # fmt: skip
    """The API's JSON answer; an HTTP error ends the command with the server's JSON
    message, or on 404 with ``not_found`` (what was not there, in words)."""
    if not token:
        raise click.ClickException(f"No token: pass --token or set {TOKEN_ENV}.")
    url = server.rstrip("/") + "/api/v1" + path
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Accept", "application/json")
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("message") or exc.reason
        except (ValueError, AttributeError):
            message = exc.reason
        if exc.code == 404 and not_found:
            message = not_found
        raise click.ClickException(f"{exc.code}: {message}") from None
    except urllib.error.URLError as exc:
        raise click.ClickException(f"Cannot reach {server}: {exc.reason}") from None


def _multipart(field: str, path: Path) -> tuple[bytes, str]:
    boundary = "----grader" + secrets.token_hex(12)
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
        f'filename="{path.name.replace(chr(34), "")}"\r\nContent-Type: {mime}\r\n\r\n'
    ).encode()
    body = head + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _show(sub: dict[str, Any]) -> None:
    score = sub.get("score")
    line = f"#{sub['id']} {sub['assignment_id']}: {sub['state']}"
    if sub.get("phase") and not sub.get("finished"):
        line += f" ({sub['phase']})"
    if sub.get("queue_position") is not None:
        line += f", position {sub['queue_position']} in the queue"
    if score is not None:
        line += f", score {units.score_of(score, sub.get('max_score'))}"
    if sub.get("reason"):
        line += f" ({sub['reason']})"
    click.echo(line)


@click.command("submit")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--assignment", "assignment_id", required=True)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the grade.")
@_client_options
def submit(model: Path, assignment_id: str, wait: bool, server: str, token: str | None) -> None:
    """Upload a model file to a grading server."""
    body, ctype = _multipart("model", model)
    sub = _request(server, token, f"/assignments/{assignment_id}/submissions", body=body,
                   content_type=ctype,
                   not_found=f"no assignment {assignment_id!r} open on {server}")  # fmt: skip
    _show(sub)
    deadline = time.monotonic() + 900
    while wait and not sub.get("finished") and time.monotonic() < deadline:
        time.sleep(2)
        sub = _request(server, token, f"/submissions/{sub['id']}")
        _show(sub)
    if sub.get("finished"):
        click.echo(f"Feedback: {sub['url']}")
        click.get_current_context().exit(
            {"graded": 0, "failed": 1, "not_gradable": 2}.get(sub["state"], 3)
        )


@click.command("status")
@click.argument("submission_id", required=False, type=int)
@click.option("--assignment", "assignment_id")
@_client_options
def status(submission_id: int | None, assignment_id: str | None, server: str,
           token: str | None) -> None:  # fmt: skip
    """Show your submissions (or one) on a grading server."""
    if submission_id is not None:
        missing = f"no submission #{submission_id} of yours on {server}"
        _show(_request(server, token, f"/submissions/{submission_id}", not_found=missing))
        return
    path = "/submissions"
    if assignment_id:
        path += "?" + urllib.parse.urlencode({"assignment": assignment_id})
    subs = _request(server, token, path)
    if not subs:
        click.echo("No submissions.")
    for sub in subs:
        _show(sub)
