"""The embedded SQL broker (grader/queue/sqlbroker.py) on a real SQLite file: many
publishers at once exhaust nothing, a message is picked up within a poll, and the
configured URL wins over the environment's."""

from __future__ import annotations

import gc
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import QueuePool

from grader.queue import sqlbroker
from grader.queue.celery_app import broker_depth, dispatch, make_celery


@pytest.fixture
def celery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    # Another broker in the environment must not be used instead of the one given.
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    app = make_celery(f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}")
    yield app
    app.close()


def test_no_connection_is_held_between_operations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watchdog asks the broker's depth every sweep. kombu's stock channel left each
    ask's pooled connection checked out until garbage collection, so a worker's pool
    ran dry ("QueuePool limit of size 5 overflow 10 reached") and the next hand-off to
    the evaluate queue failed. Here, on the stock transport's own pool (QueuePool, 5 +
    10) with the garbage collector off, nothing stays checked out."""
    engines: list[Any] = []

    def pooled(url: str) -> Any:
        engines.append(create_engine(url, poolclass=QueuePool, pool_timeout=2))
        return engines[-1]

    monkeypatch.setattr(sqlbroker, "make_engine", pooled)
    app = make_celery(f"sqla+sqlite:///{tmp_path / 'pooled.sqlite'}")
    gc.disable()
    try:
        for _ in range(40):
            assert broker_depth(app, "evaluate") == 0
        with ThreadPoolExecutor(max_workers=40) as pool:
            list(pool.map(lambda i: dispatch(app, i, "inspect"), range(200)))
        assert broker_depth(app, "inspect") == 200
    finally:
        gc.enable()
        app.close()
    assert len(engines) == 1 and engines[0].pool.checkedout() == 0


def test_many_publishers_at_once_lose_nothing(celery) -> None:  # type: ignore[no-untyped-def]
    with ThreadPoolExecutor(max_workers=60) as pool:
        list(pool.map(lambda i: dispatch(celery, i, "inspect"), range(300)))
    assert broker_depth(celery, "inspect") == 300
    assert broker_depth(celery, "evaluate") == 0
    with celery.connection_for_write() as conn:
        assert isinstance(conn.transport, sqlbroker.Transport)
        assert conn.transport.polling_interval == sqlbroker.POLL_SECONDS <= 0.1


def test_a_message_is_picked_up_within_a_poll(celery) -> None:  # type: ignore[no-untyped-def]
    got: list[float] = []
    with celery.connection_for_read() as conn:
        queue = conn.SimpleQueue("evaluate")
        delays = []
        for i in range(5):
            sent = threading.Timer(0.2, lambda i=i: dispatch(celery, i, "evaluate"))
            sent.start()
            t0 = time.monotonic()
            message = queue.get(timeout=10)
            got.append(time.monotonic())
            delays.append(got[-1] - t0 - 0.2)
            message.ack()
            assert message.headers["task"] == "grader.evaluate"
        queue.close()
    # kombu's stock transport sleeps a whole second between empty polls.
    assert sorted(delays)[2] < 0.2, delays
