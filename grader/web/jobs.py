"""The grading executor behind one small interface: ``submit_for_grading(id)``.

``celery`` (``grader serve`` and production): the submission row is committed as
queued, then a message goes to the ``inspect`` queue; workers anywhere do the rest
(:mod:`grader.queue`). ``thread``/``sync``/``none`` grade in this process or not
at all (tests, ``regrade --sync``). The mode is the app config ``GRADER_EXECUTOR``;
when that is left at the factory default ("thread"), the ``GRADER_EXECUTOR``
environment variable may choose another.
"""

from __future__ import annotations

import logging
import os
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


class CeleryExecutor:
    """Sends each submission to the ``inspect`` queue of the configured broker.

    If the broker is unreachable the upload still succeeds: the row is queued in the
    database, and a worker's watchdog sends it once the broker is back.
    """

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._celery: object | None = None
        self.lock = threading.Lock()

    @property
    def broker_url(self) -> str:
        from grader.queue.celery_app import broker_url

        return broker_url(self.app.instance_path, self.app.config.get("CELERY_BROKER_URL"))

    @property
    def celery(self) -> object:
        with self.lock:
            if self._celery is None:
                from grader.queue.celery_app import make_celery

                self._celery = make_celery(self.broker_url)
            return self._celery

    def submit(self, submission_id: int) -> None:
        from grader.queue.celery_app import dispatch
        from grader.queue.lifecycle import INSPECT

        try:
            dispatch(self.celery, submission_id, INSPECT)  # type: ignore[arg-type]
        except Exception as exc:
            log.warning(
                "broker unreachable (%s): submission %s stays queued until a watchdog sends it",
                exc,
                submission_id,
            )

    def wait(self, timeout: float | None = None) -> None:
        return None

    def shutdown(self) -> None:
        if self._celery is not None:
            self._celery.close()  # type: ignore[attr-defined]


def executor_mode(app: Flask) -> str:
    """The configured mode; the environment may override the factory default."""
    mode = app.config.get("GRADER_EXECUTOR", "thread")
    env = os.environ.get("GRADER_EXECUTOR")
    if mode == "thread" and env in ("celery", "thread", "sync", "none"):
        return env
    return mode


def init_executor(app: Flask) -> None:
    mode = executor_mode(app)
    if mode == "celery":
        executor: object = CeleryExecutor(app)
    elif mode == "sync":
        executor = SyncExecutor(app)
    elif mode == "none":
        executor = NullExecutor(app)
    else:
        executor = ThreadExecutor(app, workers=int(app.config.get("GRADER_WORKERS", 1)))
    app.extensions["grader_executor"] = executor


def get_executor() -> ThreadExecutor | SyncExecutor | NullExecutor | CeleryExecutor:
    return current_app.extensions["grader_executor"]


def submit_for_grading(submission_id: int) -> None:
    """Hand a submission to the executor; the one call the web makes to grade."""
    get_executor().submit(submission_id)
