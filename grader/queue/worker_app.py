"""The Celery app a worker runs: ``celery -A grader.queue.worker_app worker -Q inspect``.

``grader worker`` and ``grader serve`` start it for you. Configuration comes from
the environment, as for the web app: ``DATABASE_URL``, ``CELERY_BROKER_URL``,
``GRADER_INSTANCE_DIR``, ``GRADER_SUBMISSIONS_DIR`` or ``GRADER_S3_*``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery.signals import (
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from grader.queue.celery_app import broker_url, make_celery
from grader.queue.runtime import close_evaluator, prewarm, worker_service
from grader.queue.watchdog import Watchdog
from grader.service.models import utcnow
from grader.settings import get_settings

log = logging.getLogger(__name__)

app = make_celery(broker_url(worker_service().instance_path))
app.set_default()
import grader.queue.tasks  # noqa: E402,F401  (registers the tasks on this app)

_watchdog: Watchdog | None = None
#: When this worker started: jobs its node claimed before then were its predecessor's.
BOOTED = utcnow()


@worker_ready.connect
def _on_ready(sender: Any = None, **_kwargs: Any) -> None:
    """Reclaim this node's orphaned jobs, then start the watchdog thread."""
    global _watchdog
    node = getattr(sender, "hostname", None) or ""
    watchdog = Watchdog(app)
    try:
        with worker_service().activate():
            if node:
                watchdog.reclaim(node, BOOTED)
            watchdog.sweep()
    except Exception:
        log.exception("start-up sweep failed; the watchdog will retry")
    if watchdog.interval > 0:
        _watchdog = watchdog.start()


@worker_shutdown.connect
def _on_shutdown(**_kwargs: Any) -> None:
    if _watchdog is not None:
        _watchdog.stop()
    close_evaluator()


@worker_process_init.connect
def _on_child_start(**_kwargs: Any) -> None:
    """Evaluate workers start their warm sandbox at once, in the background (Celery
    kills a child whose start-up takes more than a few seconds)."""
    if get_settings().prewarm:
        threading.Thread(target=prewarm, name="prewarm", daemon=True).start()


@worker_process_shutdown.connect
def _on_child_shutdown(**_kwargs: Any) -> None:
    close_evaluator()
