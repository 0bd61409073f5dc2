"""The grading executor behind one small interface: ``submit_for_grading(id)``.

This is a thread pool (one or two concurrent jobs, the machine has two cores)
until the queue issue swaps in Celery; only this module should change then.
The job body itself, ``grading.run_grading``, is idempotent per submission.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from flask import Flask, current_app

log = logging.getLogger(__name__)


class ThreadExecutor:
    """Runs grading jobs in background threads inside the web process."""

    def __init__(self, app: Flask, workers: int = 1) -> None:
        self.app = app
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grader")
        self.futures: dict[int, Future[None]] = {}
        self.lock = threading.Lock()

    def submit(self, submission_id: int) -> None:
        with self.lock:
            running = self.futures.get(submission_id)
            if running is not None and not running.done():
                return  # already queued: idempotent
            self.futures[submission_id] = self.pool.submit(self._run, submission_id)

    def _run(self, submission_id: int) -> None:
        from grader.web.grading import run_grading

        with self.app.app_context():
            try:
                run_grading(submission_id)
            except Exception:  # the job records its own errors; this is a last resort
                log.exception("grading job %s crashed", submission_id)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for all submitted jobs (tests and shutdown)."""
        with self.lock:
            futures = list(self.futures.values())
        for future in futures:
            future.result(timeout=timeout)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class SyncExecutor:
    """Grades inline, in the request; for tests and the CLI ``regrade``."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def submit(self, submission_id: int) -> None:
        from grader.web.grading import run_grading

        run_grading(submission_id)

    def wait(self, timeout: float | None = None) -> None:
        return None


class NullExecutor:
    """Leaves submissions queued (tests that should not run TensorFlow)."""

    def __init__(self, app: Flask) -> None:
        self.submitted: list[int] = []

    def submit(self, submission_id: int) -> None:
        self.submitted.append(submission_id)

    def wait(self, timeout: float | None = None) -> None:
        return None


def init_executor(app: Flask) -> None:
    mode = app.config.get("GRADER_EXECUTOR", "thread")
    if mode == "sync":
        executor: object = SyncExecutor(app)
    elif mode == "none":
        executor = NullExecutor(app)
    else:
        executor = ThreadExecutor(app, workers=int(app.config.get("GRADER_WORKERS", 1)))
    app.extensions["grader_executor"] = executor


def get_executor() -> ThreadExecutor | SyncExecutor | NullExecutor:
    return current_app.extensions["grader_executor"]


def submit_for_grading(submission_id: int) -> None:
    """Hand a submission to the executor; the one call the web makes to grade."""
    get_executor().submit(submission_id)
