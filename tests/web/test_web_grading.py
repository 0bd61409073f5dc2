"""Grading end to end through the thread executor and the real pipeline, with a
real (tiny) Keras model file; and a hostile file that must not break anything."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from webutil import login

from grader.service.db import db
from grader.service.models import Result, Submission
from grader.web import create_app

A = "day096-conv2d"


@pytest.fixture
def thread_app(app: Flask, app_config: dict[str, Any]) -> Flask:
    return create_app(dict(app_config, GRADER_EXECUTOR="thread"))


def _wait(app: Flask, sid: int, timeout: float = 240) -> Submission:
    app.extensions["grader_executor"].wait(timeout=timeout)
    end = time.monotonic() + 5
    while True:
        with app.app_context():
            sub = db.session.get(Submission, sid)
            if not sub.is_active or time.monotonic() > end:
                db.session.expunge(sub)
                return sub
        time.sleep(0.1)


def test_real_model_is_graded_in_the_background(thread_app: Flask, tiny_model: Path) -> None:
    client = thread_app.test_client()
    login(client, "alice")
    response = client.post(
        f"/assignments/{A}/submit",
        data={"model": (io.BytesIO(tiny_model.read_bytes()), "mine.keras")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    sid = int(response.headers["Location"].rsplit("/", 1)[1])
    sub = _wait(thread_app, sid)
    assert sub.state == "graded", sub.log
    assert sub.started_at and sub.inspected_at and sub.finished_at and sub.worker_host
    assert sub.tries_total == 1 and "inspect started" in sub.log
    page = client.get(f"/submissions/{sid}").get_data(as_text=True)
    assert "100 / 100" in page and "Conv2D" in page and "18,496" in page
    assert "Time per phase" in page
    # Idempotent: running the job again for a finished submission changes nothing,
    # and a regrade replaces the one result row.
    from grader.service.executors import grade_inline as run_grading
    from grader.service.submissions import regrade

    with thread_app.app_context():
        run_grading(sid)
        assert db.session.query(Result).count() == 1
        regrade([db.session.get(Submission, sid)], None)
    sub = _wait(thread_app, sid)
    assert sub.state == "graded" and sub.tries_total == 2
    with thread_app.app_context():
        assert db.session.query(Result).count() == 1


def test_hostile_file_is_not_gradable_and_free(thread_app: Flask) -> None:
    client = thread_app.test_client()
    login(client, "alice")
    response = client.post(
        f"/assignments/{A}/submit",
        data={"model": (io.BytesIO(b"\x89HDF\r\n\x1a\n" + b"\xff" * 4000), "evil.h5")},
        content_type="multipart/form-data",
    )
    sid = int(response.headers["Location"].rsplit("/", 1)[1])
    sub = _wait(thread_app, sid)
    assert sub.state == "not_gradable" and not sub.uses_attempt
    page = client.get(f"/submissions/{sid}")
    assert page.status_code == 200 and b"Not gradable" in page.data


def test_infrastructure_failure_is_recorded(app: Flask, client: FlaskClient, monkeypatch) -> None:
    from grader.service import jobs

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("sandbox unavailable")

    monkeypatch.setattr(jobs, "inspect_file", boom)
    sync = create_app(dict(app.config, GRADER_EXECUTOR="sync", INSTANCE_PATH=app.instance_path))
    c = sync.test_client()
    login(c, "alice")
    response = c.post(
        f"/assignments/{A}/submit",
        data={"model": (io.BytesIO(b"PK\x03\x04 zip"), "m.keras")},
        content_type="multipart/form-data",
    )
    sid = int(response.headers["Location"].rsplit("/", 1)[1])
    with sync.app_context():
        sub = db.session.get(Submission, sid)
        assert sub.state == "error" and "sandbox unavailable" in sub.error_message
        assert not sub.uses_attempt
    assert b"Grading could not finish" in c.get(f"/submissions/{sid}").data


def test_keras2_file_is_graded_through_the_web(thread_app: Flask, keras2_files: Path) -> None:
    """A Day 96 answer saved by tf.keras (Keras 2), uploaded on the form."""
    client = thread_app.test_client()
    login(client, "alice")
    model = keras2_files / "lesson_separable.h5"
    response = client.post(
        "/assignments/day096-separable/submit",
        data={"model": (io.BytesIO(model.read_bytes()), "day96.h5")},
        content_type="multipart/form-data",
    )
    sid = int(response.headers["Location"].rsplit("/", 1)[1])
    sub = _wait(thread_app, sid)
    assert sub.state == "graded", sub.log
    page = client.get(f"/submissions/{sid}").get_data(as_text=True)
    assert "100 / 100" in page and "SeparableConv2D" in page and "2,555" in page
