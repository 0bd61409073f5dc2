"""How a submission reaches the job body: the executor interface, the in-process
executors, and the registry the hosts choose from by name.

``thread`` runs jobs in background threads of this process (the default for a
bare web app and the tests); ``sync`` runs them inline (``regrade --sync``, the
demo); ``none`` leaves them queued (tests without TensorFlow); ``celery`` sends
them to a broker (:mod:`grader.queue.executor`, loaded by name so that this
layer never imports the queue).
"""

from __future__ import annotations

import importlib
import logging
import socket
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from grader.service import jobs
from grader.service.context import Service
from grader.service.lifecycle import INSPECT

log = logging.getLogger(__name__)


class Executor(Protocol):
    """What the service asks of an executor."""

    def submit(self, submission_id: int, queue: str = INSPECT) -> None:
        """Deliver a queued submission to ``queue``; idempotent, never raises for a
        broker that is down (the row stays queued in the database)."""

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the jobs this executor runs itself (tests, shutdown)."""

    def shutdown(self) -> None: ...


class SyncExecutor:
    """Runs each job inline, the evaluation right after the inspection."""

    def __init__(self, service: Service, **_options: Any) -> None:
        self.service = service
        self.host = jobs.JobHost(node=f"sync@{socket.gethostname()}", deliver=self.submit)

    def submit(self, submission_id: int, queue: str = INSPECT) -> None:
        with self.service.activate():
            jobs.run(submission_id, queue, self.host)

    def wait(self, timeout: float | None = None) -> None:
        return None

    def shutdown(self) -> None:
        return None


class ThreadExecutor(SyncExecutor):
    """Runs jobs in background threads of this process."""

    def __init__(self, service: Service, workers: int = 1, **_options: Any) -> None:
        super().__init__(service)
        self.host = jobs.JobHost(node=f"thread@{socket.gethostname()}", deliver=self.submit)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grader")
        self.futures: dict[tuple[int, str], Future[None]] = {}
        self.lock = threading.Lock()

    def submit(self, submission_id: int, queue: str = INSPECT) -> None:
        key = (submission_id, queue)
        with self.lock:
            waiting = self.futures.get(key)
            if waiting is not None and not waiting.running() and not waiting.done():
                return  # already waiting to run: idempotent (a running one may requeue itself)
            self.futures[key] = self.pool.submit(self._run, submission_id, queue)

    def _run(self, submission_id: int, queue: str) -> None:
        try:
            super().submit(submission_id, queue)
        except Exception:  # the job records its own errors; this is a last resort
            log.exception("grading job %s (%s) crashed", submission_id, queue)

    def wait(self, timeout: float | None = None) -> None:
        """Wait until no job is left, including those queued by the jobs themselves."""
        while True:
            with self.lock:
                pending = [f for f in self.futures.values() if not f.done()]
            if not pending:
                return
            for future in pending:
                future.result(timeout=timeout)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class NullExecutor:
    """Leaves submissions queued (tests that should not run TensorFlow)."""

    def __init__(self, service: Service, **_options: Any) -> None:
        self.submitted: list[int] = []

    def submit(self, submission_id: int, queue: str = INSPECT) -> None:
        self.submitted.append(submission_id)

    def wait(self, timeout: float | None = None) -> None:
        return None

    def shutdown(self) -> None:
        return None


EXECUTORS: dict[str, str] = {
    "thread": "grader.service.executors:ThreadExecutor",
    "sync": "grader.service.executors:SyncExecutor",
    "none": "grader.service.executors:NullExecutor",
    "celery": "grader.queue.executor:CeleryExecutor",
}


def make_executor(mode: str, service: Service, **options: Any) -> Executor:
    """The executor registered as ``mode``, bound to ``service``."""
    if mode not in EXECUTORS:
        raise ValueError(f"unknown executor {mode!r}; choose one of {', '.join(EXECUTORS)}")
    module, _, name = EXECUTORS[mode].partition(":")
    executor: Executor = getattr(importlib.import_module(module), name)(service, **options)
    return executor


def grade_inline(submission_id: int) -> None:
    """Grade one queued submission now, in this thread, on the active service."""
    from grader.service.context import current

    SyncExecutor(current()).submit(submission_id)
