"""Running the service: ``grader serve`` (web + workers), ``grader worker``, ``grader queue``."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import click

from grader.commands.shared import web_app


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

    from grader.data import HOW_TO_PROVIDE, test_set_available
    from grader.queue.gpu import cores_available
    from grader.service.migrate import upgrade
    from grader.service.specs import import_spec_files
    from grader.service.submissions import recover_incomplete
    from grader.settings import get_settings

    workers = workers or cores_available()
    app = web_app({"GRADER_EXECUTOR": executor, "GRADER_WORKERS": min(workers, 2)})
    upgrade(app)
    with app.app_context():
        if not no_import:
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
        if not test_set_available(get_settings().cifar10):
            click.echo(
                "No CIFAR-10 test set here yet: uploads for evaluated assignments wait for it "
                f"(no attempt used) and are graded as soon as it is provided. {HOW_TO_PROVIDE}"
            )
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
@click.option(
    "--backend",
    type=click.Choice(["tensorflow", "jax", "torch"]),
    default=None,
    help="Keras backend of this machine's sandboxes (default: $GRADER_KERAS_BACKEND).",
)
def worker(
    queues: str, concurrency: int | None, gpus: str | None, name: str, loglevel: str,
    backend: str | None,
) -> None:  # fmt: skip
    """Run grading workers on this machine against the configured broker and database.

    Add machines by running this on each with the same DATABASE_URL, CELERY_BROKER_URL
    and storage (GRADER_S3_* or a shared GRADER_SUBMISSIONS_DIR).
    """
    from grader.queue.gpu import celery_argv, parse_gpus, parse_queues, plan_workers
    from grader.queue.supervisor import Supervisor
    from grader.settings import env_name

    try:
        plan = plan_workers(
            parse_queues(queues), gpus=parse_gpus(gpus), concurrency=concurrency, prefix=name
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    app = web_app()
    env = _worker_env(app)
    if backend is not None:  # every worker process reads it as its setting
        env[env_name("keras_backend")] = backend
    for spec in plan:
        gpu = f", GPU {spec.gpu}" if spec.gpu is not None else ""
        click.echo(f"worker {spec.name}: {','.join(spec.queues)} x{spec.concurrency}{gpu}")
    if backend is not None:
        click.echo(f"Keras backend in the sandbox: {backend}")
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

    from grader.service.db import db
    from grader.service.lifecycle import current_phase, queue_position
    from grader.service.models import ACTIVE_STATES, QUEUED, Submission

    app = web_app()
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
