"""The Celery entry points of the two queues: ``inspect`` (fast, no TensorFlow) and
``evaluate`` (sandboxed model). Both run the service's one job body
(:mod:`grader.service.jobs`); Celery only delivers them.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from celery import Celery, shared_task

from grader.queue.celery_app import EVALUATE_TASK, INSPECT_TASK, dispatch
from grader.queue.runtime import evaluator, worker_service
from grader.service import jobs
from grader.service.lifecycle import EVALUATE, INSPECT

log = logging.getLogger(__name__)


def host(celery: Celery, node: str, queue: str) -> jobs.JobHost:
    """This worker process as a job host: its node name, its broker and, for
    evaluation, its evaluator (a warm sandbox when available)."""
    return jobs.JobHost(
        node=node,
        deliver=lambda submission_id, to: dispatch(celery, submission_id, to),
        evaluator=evaluator() if queue == EVALUATE else jobs.JobHost.evaluator,
    )


def _run(task: Any, submission_id: int, queue: str) -> str:
    node = task.request.hostname or f"{os.getpid()}@{socket.gethostname()}"
    with worker_service().activate():
        outcome = jobs.run(submission_id, queue, host(task.app, node, queue))
    log.info("%s %s: %s", queue, submission_id, outcome)
    return outcome


@shared_task(name=INSPECT_TASK, bind=True, ignore_result=True)
def inspect_task(self: Any, submission_id: int) -> str:
    """Celery entry point for the inspect queue."""
    return _run(self, submission_id, INSPECT)


@shared_task(name=EVALUATE_TASK, bind=True, ignore_result=True)
def evaluate_task(self: Any, submission_id: int) -> str:
    """Celery entry point for the evaluate queue."""
    return _run(self, submission_id, EVALUATE)
