"""The two jobs: ``inspect`` (fast, no TensorFlow) and ``evaluate`` (sandboxed model).

inspect: claim the submission, fetch the file (verified against its sha256), run
the static inspection. A refused file is finished here with its reason, in a
second, whatever the evaluation queue holds; a file that passes is handed to the
evaluate queue.

evaluate: claim, run the whole pipeline (``grade_file``: re-inspection costs
milliseconds and keeps the report identical to the CLI's) with this process's
evaluator, record phases and store the one result. Anything that is not the
file's fault (storage, sandbox missing, a crash) releases the job: requeued, or
``error`` after ``GRADER_MAX_TRIES`` tries.

Test hook: ``GRADER_QUEUE_TEST_DELAY`` (seconds) sleeps inside the evaluation, so
a test can kill a worker mid-evaluation deterministically. It is read only from
the worker's environment and does nothing when unset.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from celery import Celery, shared_task

from grader.errors import NotGradable
from grader.queue import lifecycle
from grader.queue.celery_app import EVALUATE_TASK, INSPECT_TASK, dispatch
from grader.queue.lifecycle import EVALUATE, INSPECT
from grader.queue.runtime import env_float, evaluator, flask_app, max_tries
from grader.web.models import EVALUATING, Submission, utcnow

log = logging.getLogger(__name__)


class Superseded(Exception):
    """The job's claim was taken away (requeued as stuck); stop without writing."""


def _load(submission_id: int) -> tuple[Any, str, str]:
    from grader.web.extensions import db
    from grader.web.grading import spec_of

    sub = db.session.get(Submission, submission_id)
    assert sub is not None
    return spec_of(sub.spec_version), sub.file_sha256, sub.file_format or "keras"


def _release(celery: Celery, submission_id: int, token: str | None, exc: BaseException) -> str:
    from grader.web.extensions import db

    db.session.rollback()
    reason = f"{type(exc).__name__}: {exc}"[:500]
    log.warning("submission %s: %s", submission_id, reason)
    outcome, queue = lifecycle.release(submission_id, token, reason, max_tries())
    if queue is not None:
        _send(celery, submission_id, queue)
    return outcome


def _send(celery: Celery, submission_id: int, queue: str) -> None:
    try:
        dispatch(celery, submission_id, queue)
    except Exception:  # the watchdog resends what is queued in the database only
        log.exception("could not send submission %s to %s; the watchdog will", submission_id, queue)


def run_inspect(submission_id: int, celery: Celery, node: str) -> str:
    """The inspect job body (inside an app context). Returns what happened."""
    from grader.pipeline import inspect_file, refusal_report
    from grader.web.grading import settings, storage

    token = lifecycle.claim(submission_id, INSPECT, node)
    if token is None:
        return "skipped"
    try:
        spec, sha, fmt = _load(submission_id)
        with tempfile.TemporaryDirectory(prefix="inspect-") as tmp:
            model = storage().fetch(sha, Path(tmp) / f"model.{fmt}")
            started = time.perf_counter()
            try:
                inspect_file(model, spec, settings())
            except NotGradable as exc:  # the report comes from this one inspection
                spent = round(time.perf_counter() - started, 4)
                report = refusal_report(spec, exc.reason, file_sha256=sha,
                                        timings={"inspect": spent, "total": spent})  # fmt: skip
                return report.status if lifecycle.finish(submission_id, token, report) else "lost"
        if not lifecycle.handoff(submission_id, token):
            return "lost"
    except Exception as exc:
        return _release(celery, submission_id, token, exc)
    _send(celery, submission_id, EVALUATE)
    return "handed off"


def run_evaluate(submission_id: int, celery: Celery, node: str) -> str:
    """The evaluate job body (inside an app context). Returns what happened."""
    from grader.pipeline import grade_file
    from grader.web.grading import settings, storage

    token = lifecycle.claim(submission_id, EVALUATE, node)
    if token is None:
        return "skipped"
    evaluate = evaluator()
    delay = env_float("GRADER_QUEUE_TEST_DELAY", 0.0)

    def on_phase(phase: str) -> None:
        ok = True
        if phase == "evaluating":
            ok = lifecycle.mark(
                submission_id, token, "phase: evaluating", state=EVALUATING,
                inspected_at=utcnow(),
            )  # fmt: skip
        elif phase == "scoring":
            ok = lifecycle.mark(submission_id, token, "phase: scoring")
        if not ok:
            raise Superseded

    def timed(*args: Any, **kwargs: Any) -> Any:
        if delay > 0:
            time.sleep(delay)
        started = time.time()
        result = evaluate(*args, **kwargs)
        t = result.timings
        load_done = started + sum(t.get(k, 0.0) for k in ("sandbox_start", "import", "load"))
        from datetime import UTC, datetime

        loaded = datetime.fromtimestamp(min(load_done, time.time()), UTC).replace(tzinfo=None)
        if not lifecycle.mark(
            submission_id, token, f"loaded and evaluated on {result.device}",
            loaded_at=loaded, evaluated_at=utcnow(),
        ):  # fmt: skip
            raise Superseded
        return result

    try:
        spec, sha, fmt = _load(submission_id)
        with tempfile.TemporaryDirectory(prefix="evaluate-") as tmp:
            model = storage().fetch(sha, Path(tmp) / f"model.{fmt}")
            report = grade_file(
                model, spec, settings=settings(), on_phase=on_phase, evaluator=timed
            )
        return report.status if lifecycle.finish(submission_id, token, report) else "lost"
    except Superseded:
        return "lost"
    except Exception as exc:
        return _release(celery, submission_id, token, exc)


@shared_task(name=INSPECT_TASK, bind=True, ignore_result=True)
def inspect_task(self: Any, submission_id: int) -> str:
    """Celery entry point for the inspect queue."""
    with flask_app().app_context():
        outcome = run_inspect(submission_id, self.app, self.request.hostname or _node())
    log.info("inspect %s: %s", submission_id, outcome)
    return outcome


@shared_task(name=EVALUATE_TASK, bind=True, ignore_result=True)
def evaluate_task(self: Any, submission_id: int) -> str:
    """Celery entry point for the evaluate queue."""
    with flask_app().app_context():
        outcome = run_evaluate(submission_id, self.app, self.request.hostname or _node())
    log.info("evaluate %s: %s", submission_id, outcome)
    return outcome


def _node() -> str:
    import socket

    return f"{os.getpid()}@{socket.gethostname()}"
