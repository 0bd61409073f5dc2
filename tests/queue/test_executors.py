"""One job body for every executor: a job that meets an infrastructure failure is
retried, given up after the same number of tries and charged no student attempt,
and a regrade starts a fresh round, whether it arrives through Celery (a real
worker on the embedded SQLite broker) or through the in-process thread executor."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from queueutil import Stack

from grader.settings import Settings

A = "day096-conv2d"
MAX_TRIES = 2


@pytest.fixture(params=["thread", "celery"])
def stack(request: pytest.FixtureRequest, sqlite_stack: Stack) -> Stack:
    sqlite_stack.setup_db()
    if request.param == "celery":
        sqlite_stack.worker(GRADER_MAX_TRIES=str(MAX_TRIES)).wait_ready()
    else:
        sqlite_stack.app = sqlite_stack.create_app(
            GRADER_EXECUTOR="thread", GRADER_SETTINGS=Settings(max_tries=MAX_TRIES)
        )
    return sqlite_stack


def _queue_without_file(stack: Stack, content: bytes) -> int:
    """A queued submission whose stored file has gone missing: a storage failure,
    which is not the student's fault."""
    from grader.service.db import db
    from grader.service.models import Assignment, User
    from grader.service.submissions import record_upload, submit_for_grading

    sha = hashlib.sha256(content).hexdigest()
    with stack.app.app_context():
        user = db.session.query(User).filter_by(username="s0").one()
        sub = record_upload(
            user, db.session.get(Assignment, A), sha, len(content), "m.keras", "keras"
        )
        submit_for_grading(sub.id)
        return sub.id


def _wait(stack: Stack, sid: int) -> dict:
    executor = stack.app.extensions["grader_executor"]
    executor.wait(timeout=300)
    return stack.wait_final([sid], timeout=300)[sid]


def test_retry_limit_and_give_up_are_the_same_for_every_executor(
    stack: Stack, models: dict[str, Path]
) -> None:
    from grader.service.context import storage
    from grader.service.db import db
    from grader.service.models import FREE_STATES, Submission
    from grader.service.submissions import regrade

    content = models["good"].read_bytes()
    sid = _queue_without_file(stack, content)
    row = _wait(stack, sid)
    assert row["state"] == "error" and row["state"] in FREE_STATES, row
    assert row["error"].startswith(f"infrastructure error after {MAX_TRIES} tries"), row
    assert row["log"].count("requeued for inspect") == MAX_TRIES - 1, row["log"]
    assert row["tries_total"] == MAX_TRIES

    # The file is back: a regrade is a new round with its own tries, and it is graded once.
    with stack.app.app_context():
        storage().put(content)
        regrade([db.session.get(Submission, sid)], None)
    row = _wait(stack, sid)
    assert row["state"] == "graded" and row["result"] == "passed", row
    assert row["log"].count("finished:") == 1
    with stack.app.app_context():
        sub = db.session.get(Submission, sid)
        assert sub.tries == 1 and sub.tries_total == MAX_TRIES + 1
    assert stack.result_count() == 1
