"""Submission state transitions as compare-and-set UPDATEs: the database decides.

Every transition is one ``UPDATE ... WHERE`` on the submission row that names the
state it expects, so two workers (a redelivered message, a watchdog requeue, a
duplicate send) can race and exactly one wins:

* ``claim``: queued -> inspecting/evaluating, only from ``queued`` in that queue;
  it writes a fresh ``job_id`` token that every later write must present.
* ``mark`` (phase timestamps), ``handoff`` (inspect -> evaluate queue),
  ``finish`` (final state + the one result row) and ``release`` (requeue or fail)
  all require ``state`` running *and* ``job_id`` = the caller's token, so a job
  whose claim was taken away (the watchdog decided it was stuck) cannot write.

``results.submission_id`` is unique too, so even a bug elsewhere cannot record
two results for one submission.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from grader.report import Report
from grader.service.db import db
from grader.service.models import (
    ERROR,
    EVALUATING,
    FAILED,
    GRADED,
    INSPECTING,
    NOT_GRADABLE,
    QUEUED,
    Result,
    Submission,
    utcnow,
)

INSPECT, EVALUATE = "inspect", "evaluate"
RUNNING = (INSPECTING, EVALUATING)
#: Rows queued before the queues existed (thread executor) are inspect jobs.
QUEUE_ALIASES = {INSPECT: (INSPECT, "default"), EVALUATE: (EVALUATE,)}
FINAL_STATE = {"passed": GRADED, "failed": FAILED, "not_gradable": NOT_GRADABLE}
INFRASTRUCTURE_ERROR = "infrastructure error"


def _log(line: str) -> Any:
    stamp = utcnow().isoformat(timespec="seconds")
    return func.coalesce(Submission.log, "") + f"{stamp} {line}\n"


def _cas(where: list[Any], values: dict[str, Any], *, commit: bool = True) -> bool:
    result = db.session.execute(
        update(Submission)
        .where(*where)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    won = result.rowcount == 1
    if commit:
        db.session.commit()
    return won


def claim(submission_id: int, queue: str, node: str) -> str | None:
    """Take a queued submission for this worker; the token, or None if not ours."""
    token = uuid.uuid4().hex
    state = INSPECTING if queue == INSPECT else EVALUATING
    values: dict[str, Any] = {
        "state": state,
        "queue": queue,
        "job_id": token,
        "started_at": utcnow(),
        "heartbeat_at": utcnow(),
        "worker_host": node[:200],
        "log": _log(f"{queue} started on {node}"),
    }
    if queue == INSPECT:  # a try begins with inspection; evaluation continues it
        values["tries"] = Submission.tries + 1
        values["tries_total"] = Submission.tries_total + 1
    won = _cas(
        [
            Submission.id == submission_id,
            Submission.state == QUEUED,
            Submission.queue.in_(QUEUE_ALIASES[queue]),
        ],
        values,
    )
    return token if won else None


def _mine(submission_id: int, token: str) -> list[Any]:
    return [
        Submission.id == submission_id,
        Submission.job_id == token,
        Submission.state.in_(RUNNING),
    ]


def mark(submission_id: int, token: str, line: str | None = None, **values: Any) -> bool:
    """Record a phase (timestamps, state) if the job still holds its claim."""
    if line:
        values["log"] = _log(line)
    return _cas(_mine(submission_id, token), values)


def beat(submission_id: int, token: str) -> bool:
    """A running job's sign of life; False once its claim was taken away."""
    return _cas(_mine(submission_id, token), {"heartbeat_at": utcnow()})


def handoff(submission_id: int, token: str, inspection: dict[str, Any] | None = None) -> bool:
    """Inspection passed: queue for evaluation with what the inspection found (the
    caller then sends the message)."""
    return _cas(
        [*_mine(submission_id, token)[:2], Submission.state == INSPECTING],
        {
            "state": QUEUED,
            "queue": EVALUATE,
            "job_id": None,
            "inspected_at": utcnow(),
            "inspection": inspection,
            "log": _log("inspected: queued for evaluation"),
        },
    )


def finish(submission_id: int, token: str, report: Report) -> bool:
    """Store the verdict and the one result row, atomically, if the claim still holds."""
    now = utcnow()
    won = _cas(
        _mine(submission_id, token),
        {
            "state": FINAL_STATE[report.status],
            "finished_at": now,
            "inspected_at": func.coalesce(Submission.inspected_at, now),
            "evaluated_at": func.coalesce(Submission.evaluated_at, now),
            "error_message": None,
            "log": _log(f"finished: {report.status}, score {report.score}/{report.max_score}"),
        },
        commit=False,
    )
    if not won:
        db.session.rollback()
        return False
    _write_result(submission_id, report, now)
    try:
        db.session.commit()
    except IntegrityError:  # another writer's result row: keep theirs
        db.session.rollback()
        return False
    return True


def _write_result(submission_id: int, report: Report, now: Any) -> None:
    """The one result row of a submission, created or replaced (the caller commits)."""
    spec_version_id = db.session.scalar(
        select(Submission.spec_version_id).where(Submission.id == submission_id)
    )
    result = db.session.scalar(select(Result).where(Result.submission_id == submission_id))
    if result is None:
        result = Result(submission_id=submission_id)
    result.status = report.status
    result.score = report.score
    result.max_score = report.max_score
    result.accuracy = report.metrics.accuracy if report.metrics else None
    result.reason = report.reason
    result.report = report.model_dump(mode="json")
    result.grader_version = report.grader_version[:40]
    result.spec_version_id = spec_version_id
    result.created_at = now
    db.session.add(result)


def store_report(sub: Submission, report: Report) -> None:
    """Record a verdict outside any job: demo fixtures and tests that need a graded row."""
    now = utcnow()
    _write_result(sub.id, report, now)
    sub.state = FINAL_STATE[report.status]
    sub.inspected_at = sub.inspected_at or now
    sub.evaluated_at = sub.evaluated_at or now
    sub.finished_at = now
    sub.add_log(f"finished: {report.status}, score {report.score}/{report.max_score}")
    db.session.commit()


WAITING = "waiting for the CIFAR-10 test set"


def wait_for_data(submission_id: int, token: str, reason: str) -> bool:
    """No test set on this worker yet: back to the evaluate queue, marked waiting, with
    no try counted (it is nobody's failure); :func:`waiting` finds it again."""
    return _cas(
        _mine(submission_id, token),
        {
            "state": QUEUED,
            "queue": EVALUATE,
            "job_id": None,
            "error_message": f"{WAITING}: {reason}"[:2000],
            "log": _log(f"{WAITING}; it will be graded when the data is provided"),
        },
    )


def waiting() -> list[int]:
    """Submissions waiting for the test set."""
    return list(
        db.session.scalars(
            select(Submission.id).where(
                Submission.state == QUEUED, Submission.error_message.startswith(WAITING)
            )
        )
    )


def stop_waiting(submission_id: int) -> bool:
    """The data is here: the submission is an ordinary queued evaluation again."""
    return _cas(
        [Submission.id == submission_id, Submission.state == QUEUED],
        {"error_message": None, "log": _log("test set found: queued for evaluation")},
    )


REQUEUED = "requeued for"


def release(
    submission_id: int, token: str | None, reason: str, max_tries: int
) -> tuple[str, str | None]:
    """A job could not finish for a reason that is not the file's fault.

    Requeue it where it stopped (inspection or evaluation), or after ``max_tries``
    tries set state ``error`` ("infrastructure error", which uses no student attempt).
    Returns (outcome, queue to send to) with outcome "requeued", "error" or "lost"
    (someone else holds the submission now).
    """
    row = db.session.execute(
        select(Submission.state, Submission.tries, Submission.job_id).where(
            Submission.id == submission_id
        )
    ).first()
    db.session.rollback()
    if row is None or row.state not in RUNNING or (token is not None and row.job_id != token):
        return "lost", None
    where = [
        Submission.id == submission_id,
        Submission.state == row.state,
        Submission.job_id == row.job_id,
    ]
    tries = row.tries
    if tries >= max_tries:
        message = f"{INFRASTRUCTURE_ERROR} after {tries} tries: {reason}"[:2000]
        won = _cas(
            where,
            {
                "state": ERROR,
                "error_message": message,
                "finished_at": utcnow(),
                "job_id": None,
                "log": _log(f"error: {message}"),
            },
        )
        return ("error" if won else "lost"), None
    queue = INSPECT if row.state == INSPECTING else EVALUATE
    values: dict[str, Any] = {
        "state": QUEUED,
        "queue": queue,
        "job_id": None,
        "log": _log(f"{REQUEUED} {queue} (try {tries} ended: {reason})"[:1000]),
    }
    if queue == EVALUATE:  # the next try starts at evaluation, without a new inspect claim
        values["tries"] = Submission.tries + 1
        values["tries_total"] = Submission.tries_total + 1
    won = _cas(where, values)
    return ("requeued" if won else "lost"), (queue if won else None)


def queue_position(sub: Submission) -> int | None:
    """Submissions ahead of ``sub`` in its queue (0 = next), None unless queued."""
    if sub.state != QUEUED:
        return None
    names = QUEUE_ALIASES.get(sub.queue, (sub.queue,))
    if sub.queue == "default":
        names = QUEUE_ALIASES[INSPECT]
    return (
        db.session.scalar(
            select(func.count(Submission.id)).where(
                Submission.state == QUEUED,
                Submission.queue.in_(names),
                Submission.id < sub.id,
            )
        )
        or 0
    )


def current_phase(sub: Submission) -> str:
    """A short human phase: where the submission is now."""
    if sub.state == QUEUED:
        if (sub.error_message or "").startswith(WAITING):
            return WAITING
        return "waiting for evaluation" if sub.queue == EVALUATE else "waiting for inspection"
    if sub.state == INSPECTING:
        return "inspecting the file"
    if sub.state == EVALUATING:
        if sub.evaluated_at:
            return "scoring"
        # The sandbox loads and predicts in one run and reports both when it ends, so
        # the phase names both rather than claim "loading" through the predictions.
        return "loading the model and predicting in the sandbox"
    return "finished"
