"""The Celery executor: delivers submissions to the broker's queues.

Registered by name in :data:`grader.service.executors.EXECUTORS`, so the web app
uses it without importing the queue package. If the broker is unreachable the
upload still succeeds: the row is queued in the database, and a worker's
watchdog sends it once the broker is back.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery

from grader.queue.celery_app import broker_url as resolve_broker_url
from grader.queue.celery_app import dispatch, make_celery
from grader.service.context import Service
from grader.service.lifecycle import INSPECT

log = logging.getLogger(__name__)


class CeleryExecutor:
    """Sends each submission to a queue of the configured broker."""

    def __init__(self, service: Service, broker_url: str | None = None, **_options: Any) -> None:
        self.service = service
        self.configured_url = broker_url
        self._celery: Celery | None = None
        self.lock = threading.Lock()

    @property
    def broker_url(self) -> str:
        return resolve_broker_url(self.service.instance_path, self.configured_url)

    @property
    def celery(self) -> Celery:
        with self.lock:
            if self._celery is None:
                self._celery = make_celery(self.broker_url)
            return self._celery

    def submit(self, submission_id: int, queue: str = INSPECT) -> None:
        try:
            dispatch(self.celery, submission_id, queue)
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
            self._celery.close()
