"""Instructor grading operations on the server's database: regrade submissions, export grades."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from grader.commands.shared import web_app


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

    from grader.service.db import db
    from grader.service.models import TERMINAL_STATES, Submission
    from grader.service.submissions import regrade
    from grader.settings import get_settings

    if not assignment_id and not submission_ids:
        raise click.UsageError("give --assignment or --submission")
    if mode == "auto":
        queued = os.environ.get("CELERY_BROKER_URL") or get_settings().executor == "celery"
        mode = "queue" if queued else "here"
    here = mode == "here"
    app = web_app({"GRADER_EXECUTOR": "sync" if here else "celery"})
    with app.app_context():
        query = select(Submission.id).order_by(Submission.id)
        if assignment_id:
            query = query.where(Submission.assignment_id == assignment_id)
        if submission_ids:
            query = query.where(Submission.id.in_(submission_ids))
        ids = list(db.session.scalars(query))
        if not ids:
            raise click.ClickException("Nothing to regrade.")
        label = f"Regrading {len(ids)}"
        if here:  # the sync executor grades inside regrade(): one at a time, for the bar
            with click.progressbar(ids, label=label, show_pos=True) as bar:
                for sid in bar:
                    regrade([db.session.get_one(Submission, sid)], None)
        else:
            regrade([db.session.get_one(Submission, sid) for sid in ids], None)
            click.echo(f"Queued {len(ids)} submissions.")
            if wait:
                _wait_for(ids, label, timeout, TERMINAL_STATES)
        db.session.expire_all()
        counts: dict[str, int] = {}
        subs = db.session.scalars(
            select(Submission).where(Submission.id.in_(ids)).order_by(Submission.id)
        ).all()
        for sub in subs:
            counts[sub.state] = counts.get(sub.state, 0) + 1
            if len(ids) <= 50:
                click.echo(f"#{sub.id} {sub.user.username}: {sub.state} {sub.final_score}")
        click.echo(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))


def _wait_for(ids: list[int], label: str, timeout: float, done_states: tuple[str, ...]) -> None:
    """A progress bar over ``ids`` reaching a final state (read from the database)."""
    from sqlalchemy import func, select

    from grader.service.db import db
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
    from grader.service.db import db
    from grader.service.models import Assignment
    from grader.web.gradebook import gradebook_csv

    app = web_app()
    with app.app_context():
        assignment = db.session.get(Assignment, assignment_id)
        if assignment is None or assignment.current_version is None:
            raise click.ClickException(f"No assignment '{assignment_id}'.")
        text = gradebook_csv(assignment)
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
