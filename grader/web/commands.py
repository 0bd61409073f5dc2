"""``grader`` sub-commands for the web service: database, users, roster, grades,
``serve`` (web + workers), ``worker``, ``queue``, ``regrade``, and
``submit``/``status`` that talk to a server's JSON API."""

from __future__ import annotations

import json
import mimetypes
import os
import secrets
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import click

from grader.errors import ConfigurationError


def _app() -> Any:
    from grader.web import create_app

    return create_app()


def register_commands(cli: click.Group) -> None:
    """Add the web service's commands to the ``grader`` group (called by grader.cli)."""
    cli.add_command(submit)
    cli.add_command(status)
    try:  # the server commands need the web extras (pip install keras-grader[web])
        import flask  # noqa: F401
    except ImportError:
        return
    for command in (init_db, upgrade_db, create_user, import_roster_cmd, regrade_cmd,
                    export_grades, serve, worker, queue_cmd):  # fmt: skip
        cli.add_command(command)
    group = cli.commands.get("assignments")
    if isinstance(group, click.Group):
        group.add_command(import_assignments)
    else:
        assignments = click.Group("assignments", help="List, show and import assignment specs.")
        assignments.add_command(import_assignments)
        cli.add_command(assignments)


@click.command("init-db")
def init_db() -> None:
    """Create the database (or bring it up to date) with Alembic migrations."""
    from grader.service.migrate import upgrade

    app = _app()
    upgrade(app)
    click.echo(f"Database ready: {_safe_url(app.config['SQLALCHEMY_DATABASE_URI'])}")


@click.command("upgrade")
def upgrade_db() -> None:
    """Apply pending database migrations."""
    from grader.service.migrate import upgrade

    upgrade(_app())
    click.echo("Database upgraded.")


def _safe_url(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


@click.command("create-user")
@click.argument("username")
@click.option("--role", type=click.Choice(["student", "instructor"]), default="student")
@click.option("--name", default="")
@click.option("--password", help="Prompted for if omitted (use --random for a generated one).")
@click.option("--random", "random_password", is_flag=True, help="Generate and print a password.")
def create_user(
    username: str, role: str, name: str, password: str | None, random_password: bool
) -> None:
    """Create a user or reset an existing user's password and role."""
    from sqlalchemy import select

    from grader.service.database import db
    from grader.service.models import User

    if random_password:
        password = secrets.token_urlsafe(12)
    elif password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    app = _app()
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        created = user is None
        if user is None:
            user = User(username=username)
            db.session.add(user)
        user.role = role
        user.name = name or user.name or ""
        user.set_password(password or "")
        db.session.commit()
    click.echo(f"{'Created' if created else 'Updated'} {role} {username}.")
    if random_password:
        click.echo(f"Password: {password}")


@click.command("import-roster")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--base-url", default="http://127.0.0.1:5000", help="For the one-time links.")
def import_roster_cmd(csv_file: Path, base_url: str) -> None:
    """Create student accounts from a CSV (username[,name,email,password])."""
    from grader.web.gradebook import RosterError, import_roster

    app = _app()
    with app.app_context():
        try:
            results = import_roster(csv_file.read_text(encoding="utf-8-sig"))
        except RosterError as exc:
            raise click.ClickException(str(exc)) from None
    for r in results:
        extra = ""
        if "token" in r:
            extra = f"  {base_url.rstrip('/')}/welcome/{r['token']}"
        elif "password" in r:
            extra = "  (password from roster)"
        click.echo(f"{r['action']:8} {r['username']}{extra}")


@click.command("import")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
def import_assignments(paths: tuple[Path, ...]) -> None:
    """Add or update assignments from spec files (default: the assignments folder)."""
    from grader.service.specs import import_spec_files
    from grader.settings import get_settings

    files: list[Path] = []
    for path in paths or (get_settings().assignments_dir,):
        files.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    app = _app()
    with app.app_context():
        try:
            for assignment_id, outcome in import_spec_files(files):
                click.echo(f"{outcome:9} {assignment_id}")
        except ConfigurationError as exc:
            raise click.ClickException(str(exc)) from None


@click.command("regrade")
@click.option("--assignment", "assignment_id", help="Regrade every submission of it.")
@click.option("--submission", "submission_ids", type=int, multiple=True)
@click.option(
    "--mode",
    type=click.Choice(["auto", "queue", "here"]),
    default="auto",
    show_default=True,
    help="queue: on the workers; here: in this process; auto: queue when "
    "CELERY_BROKER_URL or GRADER_EXECUTOR=celery is set.",
)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Show progress.")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to wait at most.")
def regrade_cmd(
    assignment_id: str | None,
    submission_ids: tuple[int, ...],
    mode: str,
    wait: bool,
    timeout: float,
) -> None:
    """Regrade submissions against the current spec, with a progress bar over the batch.

    ``--mode queue`` sends the jobs to the workers (``grader worker``/``grader serve``)
    and follows them; ``--mode here`` grades in this process, one after the other.
    """
    from sqlalchemy import select

    from grader.service.database import db
    from grader.service.models import TERMINAL_STATES, Submission
    from grader.service.submissions import requeue, submit_for_grading

    if not assignment_id and not submission_ids:
        raise click.UsageError("give --assignment or --submission")
    from grader.web import create_app

    if mode == "auto":
        queued = (
            os.environ.get("CELERY_BROKER_URL") or os.environ.get("GRADER_EXECUTOR") == "celery"
        )
        mode = "queue" if queued else "here"
    sync = mode == "here"
    app = create_app({"GRADER_EXECUTOR": "sync" if sync else "celery"})
    with app.app_context():
        query = select(Submission)
        if assignment_id:
            query = query.where(Submission.assignment_id == assignment_id)
        if submission_ids:
            query = query.where(Submission.id.in_(submission_ids))
        subs = list(db.session.scalars(query.order_by(Submission.id)).all())
        if not subs:
            raise click.ClickException("Nothing to regrade.")
        ids = [sub.id for sub in subs]
        for sub in subs:
            requeue(sub, None)
        db.session.commit()
        label = f"Regrading {len(ids)}"
        if sync:
            with click.progressbar(ids, label=label, show_pos=True) as bar:
                for sid in bar:
                    submit_for_grading(sid)
        else:
            for sid in ids:
                submit_for_grading(sid)
            click.echo(f"Queued {len(ids)} submissions.")
            if wait:
                _wait_for(ids, label, timeout, TERMINAL_STATES)
        db.session.expire_all()
        counts: dict[str, int] = {}
        for sub in db.session.scalars(select(Submission).where(Submission.id.in_(ids))).all():
            counts[sub.state] = counts.get(sub.state, 0) + 1
            if len(ids) <= 50:
                click.echo(f"#{sub.id} {sub.user.username}: {sub.state} {sub.final_score}")
        click.echo(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))


def _wait_for(ids: list[int], label: str, timeout: float, done_states: tuple[str, ...]) -> None:
    """A progress bar over ``ids`` reaching a final state (read from the database)."""
    from sqlalchemy import func, select

    from grader.service.database import db
    from grader.service.models import Submission

    deadline = time.monotonic() + timeout
    finished = 0
    with click.progressbar(length=len(ids), label=label, show_pos=True) as bar:
        while finished < len(ids) and time.monotonic() < deadline:
            now = db.session.scalar(
                select(func.count(Submission.id)).where(
                    Submission.id.in_(ids), Submission.state.in_(done_states)
                )
            )
            db.session.rollback()
            if now and now > finished:
                bar.update(now - finished)
                finished = now
            if finished < len(ids):
                time.sleep(1.0)
    if finished < len(ids):
        click.echo(f"{len(ids) - finished} still running after {timeout:.0f} s; see grader queue")


@click.command("export-grades")
@click.argument("assignment_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path))
def export_grades(assignment_id: str, output: Path | None) -> None:
    """Write an assignment's gradebook as CSV (stdout by default)."""
    from grader.service.database import db
    from grader.service.models import Assignment
    from grader.web.gradebook import gradebook_csv

    app = _app()
    with app.app_context():
        assignment = db.session.get(Assignment, assignment_id)
        if assignment is None or assignment.current_version is None:
            raise click.ClickException(f"No assignment '{assignment_id}'.")
        text = gradebook_csv(assignment)
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


def _worker_env(app: Any) -> dict[str, str]:
    """What a worker needs to reach the same database, files and broker as ``app``."""
    from grader.queue.celery_app import broker_url

    env = {
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "GRADER_INSTANCE_DIR": app.instance_path,
        "GRADER_SUBMISSIONS_DIR": str(app.config["GRADER_SUBMISSIONS_DIR"]),
        "CELERY_BROKER_URL": broker_url(app.instance_path, app.config.get("CELERY_BROKER_URL")),
    }
    return env


def _stop_on_sigterm() -> None:
    def handler(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _seed_demo(app: Any, url: str) -> str:
    """``--demo``: seed the demo course; returns the banner (logins, what to try first)."""
    from grader.web.demo import seed_demo

    return seed_demo(app).banner(url)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Concurrent evaluations (default: one per core).",
)
@click.option(
    "--executor",
    type=click.Choice(["celery", "thread"]),
    default="celery",
    show_default=True,
    help="celery: queue + worker processes; thread: grade inside the web process.",
)
@click.option("--no-import", is_flag=True, help="Do not import the assignments folder on start.")
@click.option("--demo", is_flag=True, help="Seed demo users and submissions, print logins.")
def serve(
    host: str, port: int, workers: int | None, executor: str, no_import: bool, demo: bool
) -> None:
    """Run the web app and a grading worker together (SQLite + SQLite broker by default).

    Ctrl-C (or SIGTERM) stops both: the worker finishes or hands back its job first.
    """
    from werkzeug.serving import run_simple

    from grader.queue.gpu import cores_available
    from grader.service.migrate import upgrade
    from grader.service.specs import import_spec_files
    from grader.service.submissions import recover_incomplete
    from grader.web import create_app

    workers = workers or cores_available()
    app = create_app({"GRADER_EXECUTOR": executor, "GRADER_WORKERS": min(workers, 2)})
    upgrade(app)
    with app.app_context():
        if not no_import:
            from grader.settings import get_settings

            folder = get_settings().assignments_dir
            if folder.is_dir():
                for assignment_id, outcome in import_spec_files(sorted(folder.glob("*.yaml"))):
                    click.echo(f"assignment {assignment_id}: {outcome}")
        if executor == "thread":
            requeued = recover_incomplete()
            if requeued:
                click.echo(f"re-queued {requeued} unfinished submissions")
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
    banner = _seed_demo(app, url) if demo else ""
    supervisor = None
    _stop_on_sigterm()
    try:
        if executor == "celery":
            from grader.queue.gpu import plan_workers
            from grader.queue.supervisor import Supervisor

            plan = plan_workers(prefix="serve", concurrency=workers)
            supervisor = Supervisor(plan, _worker_env(app)).start()
            click.echo("Workers: " + ", ".join(spec.name for spec in plan))
        if banner:
            click.echo(banner)
        click.echo(f"Serving on {url} (Ctrl-C stops everything)")
        run_simple(host, port, app, threaded=True, use_reloader=False)
    except KeyboardInterrupt:
        pass
    finally:
        if supervisor is not None:
            click.echo("Stopping workers...")
            supervisor.stop()
        click.echo("Stopped.")


@click.command("worker")
@click.option(
    "--queues", default="inspect,evaluate", show_default=True, help="inspect, evaluate or both."
)
@click.option(
    "--concurrency", type=int, help="CPU evaluations at a time (default: the cores given)."
)
@click.option(
    "--gpus", default=None, help='GPUs to use, one evaluation each: "0,1", "all" or none.'
)
@click.option("--name", default="grader", show_default=True, help="Node name prefix.")
@click.option("--loglevel", default="INFO", show_default=True)
def worker(
    queues: str, concurrency: int | None, gpus: str | None, name: str, loglevel: str
) -> None:
    """Run grading workers on this machine against the configured broker and database.

    Add machines by running this on each with the same DATABASE_URL, CELERY_BROKER_URL
    and storage (GRADER_S3_* or a shared GRADER_SUBMISSIONS_DIR).
    """
    from grader.queue.gpu import celery_argv, parse_gpus, parse_queues, plan_workers
    from grader.queue.supervisor import Supervisor

    try:
        plan = plan_workers(
            parse_queues(queues), gpus=parse_gpus(gpus), concurrency=concurrency, prefix=name
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    app = _app()
    env = _worker_env(app)
    for spec in plan:
        gpu = f", GPU {spec.gpu}" if spec.gpu is not None else ""
        click.echo(f"worker {spec.name}: {','.join(spec.queues)} x{spec.concurrency}{gpu}")
    if len(plan) == 1:  # become the worker: signals and exit codes are Celery's own
        spec = plan[0]
        sys.stdout.flush()
        os.execvpe(
            sys.executable, celery_argv(spec, sys.executable, loglevel),
            {**os.environ, **env, **spec.env},
        )  # fmt: skip
    supervisor = Supervisor(plan, env, loglevel=loglevel).start()
    _stop_on_sigterm()
    try:
        supervisor.wait()
    except KeyboardInterrupt:
        pass
    finally:
        click.echo("Stopping workers...")
        supervisor.stop()


@click.command("queue")
@click.option("--all", "show_all", is_flag=True, help="Also list queued submissions one by one.")
def queue_cmd(show_all: bool) -> None:
    """Show the grading queues: waiting and running jobs, phase, position, worker."""
    from sqlalchemy import select

    from grader.service.database import db
    from grader.service.lifecycle import current_phase, queue_position
    from grader.service.models import ACTIVE_STATES, QUEUED, Submission

    app = _app()
    with app.app_context():
        subs = db.session.scalars(
            select(Submission).where(Submission.state.in_(ACTIVE_STATES)).order_by(Submission.id)
        ).all()
        waiting: dict[str, int] = {}
        for sub in subs:
            if sub.state == QUEUED:
                name = "inspect" if sub.queue == "default" else sub.queue
                waiting[name] = waiting.get(name, 0) + 1
        running = [s for s in subs if s.state != QUEUED]
        click.echo(
            f"waiting: inspect {waiting.get('inspect', 0)}, evaluate {waiting.get('evaluate', 0)}"
            f"; running: {len(running)}"
        )
        for sub in subs:
            if sub.state == QUEUED and not show_all:
                continue
            where = (
                f"position {queue_position(sub)}"
                if sub.state == QUEUED
                else f"on {sub.worker_host}, try {sub.tries}"
            )
            click.echo(
                f"#{sub.id} {sub.user.username} {sub.assignment_id}: {current_phase(sub)} ({where})"
            )


# --- Client commands ---------------------------------------------------------


def _client_options(f: Any) -> Any:
    f = click.option("--token", envvar="GRADER_TOKEN", help="API token (or GRADER_TOKEN).")(f)
    f = click.option(
        "--server", envvar="GRADER_SERVER", default="http://127.0.0.1:5000",
        show_default=True, help="Server URL (or GRADER_SERVER).",
    )(f)  # fmt: skip
    return f


def _request(
    server: str, token: str | None, path: str, *, body: bytes | None = None,
    content_type: str | None = None,
) -> Any:  # fmt: skip
    if not token:
        raise click.ClickException("No token: pass --token or set GRADER_TOKEN.")
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
        line += f", score {score}/{sub.get('max_score')}"
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
                   content_type=ctype)  # fmt: skip
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
        _show(_request(server, token, f"/submissions/{submission_id}"))
        return
    path = "/submissions"
    if assignment_id:
        path += "?" + urllib.parse.urlencode({"assignment": assignment_id})
    subs = _request(server, token, path)
    if not subs:
        click.echo("No submissions.")
    for sub in subs:
        _show(sub)
