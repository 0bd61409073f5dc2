"""Upload limits that hold under concurrency and refusals that leave nothing behind,
on SQLite and PostgreSQL, through the service the form and the API both use."""

from __future__ import annotations

import io
import threading
from pathlib import Path

from flask import Flask

from grader.service.context import storage
from grader.service.db import db
from grader.service.models import Assignment, Submission, User
from grader.service.submissions import SubmissionRefused, create_submission

A = "day096-conv2d"  # 10 submissions a day


def _upload(app: Flask, content: bytes, name: str = "m.keras") -> int | SubmissionRefused:
    with app.app_context():
        user = db.session.query(User).filter_by(username="alice").one()
        try:
            return create_submission(
                user, db.session.get(Assignment, A), io.BytesIO(content), name
            ).id
        except SubmissionRefused as exc:
            return exc


def test_parallel_uploads_never_exceed_the_daily_cap(app: Flask) -> None:
    outcomes: list[int | SubmissionRefused] = []
    start = threading.Barrier(15)

    def one(i: int) -> None:
        start.wait()
        outcomes.append(_upload(app, b"PK\x03\x04 parallel %d" % i))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(15)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    accepted = [o for o in outcomes if isinstance(o, int)]
    refused = [o for o in outcomes if isinstance(o, SubmissionRefused)]
    assert len(accepted) == 10 and len(refused) == 5, outcomes
    assert all(r.status == 429 and "used all 10" in r.message for r in refused)
    with app.app_context():
        assert db.session.query(Submission).count() == 10


def _stored(app: Flask) -> list[Path]:
    root = Path(app.config["GRADER_SUBMISSIONS_DIR"])
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_refused_uploads_store_nothing(app: Flask) -> None:
    empty = _upload(app, b"")
    assert isinstance(empty, SubmissionRefused) and empty.message == "The file is empty."
    assert _stored(app) == []
    app.config["GRADER_SETTINGS"].max_upload_bytes = 1_000_000
    big = _upload(app, b"PK\x03\x04" + b"\0" * 1_000_000)
    assert isinstance(big, SubmissionRefused) and big.status == 413
    assert big.message == "The file is larger than the 1.0 MB limit."
    assert _stored(app) == []


def test_control_characters_never_reach_the_database(app: Flask) -> None:
    sid = _upload(app, b"PK\x03\x04 nul", "my\x00mod\x1bel\n.keras")
    assert isinstance(sid, int)
    with app.app_context():
        assert db.session.get(Submission, sid).original_filename == "mymodel.keras"


def test_an_unwritable_store_is_a_503_and_leaves_no_row(app: Flask, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the submissions folder should be")
    with app.app_context():
        service = app.extensions["grader"]
        service._storage = None
        service.storage_config["GRADER_SUBMISSIONS_DIR"] = str(blocker / "submissions")
    refused = _upload(app, b"PK\x03\x04 anything")
    assert isinstance(refused, SubmissionRefused) and refused.status == 503
    assert "nothing was recorded" in refused.message
    with app.app_context():
        assert db.session.query(Submission).count() == 0
        assert storage().root == blocker / "submissions"
