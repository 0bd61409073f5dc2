"""The Celery application: broker choice, reliability settings and the two queues.

No result backend: the database is the record of truth, so a job's outcome is
always read from the ``submissions``/``results`` tables, never from Celery.

Reliability settings, and why:

* ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged
  only after its job body returned, so a worker that dies mid-job does not take
  the job with it (Redis hands the message out again after the visibility
  timeout; the SQL broker does not, which is what the watchdog is for).
* ``worker_prefetch_multiplier=1``: a worker never holds messages it is not
  working on, so a busy worker does not hide queued jobs from idle ones.
* Duplicates are harmless by design: every job starts with a compare-and-set
  claim on the submission row (see :mod:`grader.service.lifecycle`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from celery import Celery
from kombu import Queue

from grader.queue.gpu import EVALUATE, INSPECT
from grader.queue.sqlbroker import TRANSPORT as SQL_TRANSPORT
from grader.queue.sqlbroker import database_part, is_sql_broker
from grader.settings import get_settings

INSPECT_TASK = "grader.inspect"
EVALUATE_TASK = "grader.evaluate"
TASK_FOR_QUEUE = {INSPECT: INSPECT_TASK, EVALUATE: EVALUATE_TASK}


def default_broker_url(instance_path: str | Path) -> str:
    """The embedded broker: a SQLite file beside the SQLite database."""
    return f"sqla+sqlite:///{Path(instance_path).resolve() / 'broker.sqlite'}"


def broker_url(instance_path: str | Path | None = None, configured: str | None = None) -> str:
    """``configured`` (app config), else ``CELERY_BROKER_URL``, else the embedded SQLite broker."""
    url = configured or os.environ.get("CELERY_BROKER_URL")
    if url:
        return url
    if instance_path is None:
        raise ValueError("no CELERY_BROKER_URL and no instance folder for the SQLite broker")
    return default_broker_url(instance_path)


def transport_options(url: str) -> dict[str, Any]:
    """Per-transport options (the SQL broker chooses its engine's from the URL itself:
    :mod:`grader.queue.sqlbroker`)."""
    if is_sql_broker(url):
        return {}
    visibility = get_settings().visibility_timeout
    options: dict[str, Any] = {
        "visibility_timeout": visibility,
        "socket_connect_timeout": 5,
        "socket_timeout": 30,
        "retry_on_timeout": True,
        "health_check_interval": 10,
    }
    prefix = os.environ.get("CELERY_BROKER_KEYPREFIX")
    if prefix:  # several courses (or test runs) sharing one Redis
        options["global_keyprefix"] = prefix
    return options


def make_celery(url: str) -> Celery:
    """A Celery app on broker ``url`` with the grader's queues and settings.

    A SQL broker (``sqla+...``) runs on :mod:`grader.queue.sqlbroker`'s transport. The
    read and write URLs are set explicitly because Celery otherwise prefers the
    ``CELERY_BROKER_URL`` of the environment to the URL it was given."""
    sql_broker = is_sql_broker(url)
    target = database_part(url) if sql_broker else url
    app = Celery("grader", broker=target, set_as_current=False)
    app.conf.update(
        broker_read_url=target,
        broker_write_url=target,
        broker_transport=SQL_TRANSPORT if sql_broker else None,
        broker_transport_options=transport_options(url),
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits for the broker to come back
        broker_channel_error_retry=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        task_queues=(Queue(INSPECT), Queue(EVALUATE)),
        task_default_queue=INSPECT,
        task_routes={INSPECT_TASK: {"queue": INSPECT}, EVALUATE_TASK: {"queue": EVALUATE}},
        # The web request must not hang when the broker is down: the row is committed
        # first and the watchdog sends what could not be sent.
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0.2,
            "interval_step": 0.5,
            "interval_max": 1.0,
        },
        # Remote control uses broadcast exchanges, which the SQL transport lacks.
        worker_enable_remote_control=not sql_broker,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        enable_utc=True,
    )
    return app


def dispatch(celery: Celery, submission_id: int, queue: str) -> None:
    """Send one job message. Sending twice is harmless: only one claim can win."""
    celery.send_task(TASK_FOR_QUEUE[queue], args=[int(submission_id)], queue=queue)


def broker_depth(celery: Celery, queue: str) -> int | None:
    """Messages waiting in ``queue`` on the broker; None when the broker is unreachable."""
    try:
        with celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=5)
            channel = conn.default_channel
            try:
                return int(channel.queue_declare(queue=queue, passive=True).message_count)
            except Exception:  # a Redis list that was never created does not exist: empty
                return 0
    except Exception:
        return None
