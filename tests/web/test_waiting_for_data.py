"""An evaluated upload on a server without the CIFAR-10 test set waits for it, visibly
and without using an attempt, and is graded as soon as the data is there."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from flask import Flask
from webutil import login

from grader.service import jobs
from grader.service.db import db
from grader.service.lifecycle import WAITING, current_phase
from grader.service.models import Assignment, Submission, User
from grader.service.policy import attempts_used_today
from grader.service.submissions import create_submission
from grader.settings import Settings
from grader.web import create_app

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "day097_cifar10.keras"
A = "day097-cifar10"


def test_upload_waits_for_the_test_set_then_is_graded(
    app: Flask, app_config: dict[str, Any], tmp_path: Path
) -> None:
    later = tmp_path / "cifar10-later.npz"
    sync = create_app(
        dict(app_config, GRADER_EXECUTOR="sync", GRADER_SETTINGS=Settings(cifar10=later))
    )
    with sync.app_context():
        user = db.session.query(User).filter_by(username="alice").one()
        item = db.session.get(Assignment, A)
        sid = create_submission(user, item, io.BytesIO(FIXTURE.read_bytes()), "m.keras").id
        sub = db.session.get(Submission, sid)
        assert sub.state == "queued" and sub.error_message.startswith(WAITING), sub.log
        assert current_phase(sub) == WAITING and sub.tries == 1
        assert attempts_used_today(user, item) == 0  # waiting is nobody's attempt
        # Nothing to resume while the data is still missing.
        host = jobs.JobHost(node="test", deliver=sync.extensions["grader_executor"].submit)
        assert jobs.resume_waiting(host) == 0
    client = sync.test_client()
    login(client, "alice")
    assert WAITING in client.get(f"/submissions/{sid}").get_data(as_text=True)

    rng = np.random.default_rng(0)
    np.savez(later, x=rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8),
             y=rng.integers(0, 10, 40))  # fmt: skip
    with sync.app_context():
        assert jobs.resume_waiting(host) == 1
        sub = db.session.get(Submission, sid)
        assert sub.state in ("graded", "failed") and sub.error_message is None, sub.log
        assert sub.result.report["metrics"]["num_images"] == 40
        assert attempts_used_today(user, item) == 1
