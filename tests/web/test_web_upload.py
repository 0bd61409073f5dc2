"""Uploads: content-addressed storage, limits, bad files, attempts and policies."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from webutil import add_submission, login, small_settings

from grader.service.db import db
from grader.service.models import Submission
from grader.service.policy import late_penalty
from grader.service.storage import Storage, StorageError
from grader.spec import parse_spec
from grader.web import create_app

A = "day096-conv2d"


def upload(client: FlaskClient, content: bytes, name: str = "my_model.keras") -> Any:
    return client.post(
        f"/assignments/{A}/submit",
        data={"model": (io.BytesIO(content), name)},
        content_type="multipart/form-data",
    )


def test_upload_is_stored_by_sha256_and_queued(app: Flask, client: FlaskClient) -> None:
    login(client, "alice")
    content = b"PK\x03\x04" + b"x" * 100
    response = upload(client, content, name="../../etc/passwd.keras")
    assert response.status_code == 302
    sha = hashlib.sha256(content).hexdigest()
    root = Path(app.config["GRADER_SUBMISSIONS_DIR"])
    assert (root / sha[:2] / sha).read_bytes() == content
    assert [p.name for p in root.rglob("*") if p.is_file()] == [sha]
    with app.app_context():
        sub = db.session.query(Submission).one()
        assert sub.state == "queued" and sub.file_sha256 == sha and sub.file_format == "keras"
        assert sub.original_filename == "../../etc/passwd.keras"  # display only
    assert app.extensions["grader_executor"].submitted == [sub.id]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'hx-get="/submissions/' in page and "queued" in page
    assert client.get(f"/submissions/{sub.id}/download").data == content


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"PK\x03\x04", "model.exe", b"Only .keras, .h5, .hdf5 model files"),
        (b"", "model.keras", b"The file is empty"),
    ],
)
def test_refused_uploads(
    app: Flask, client: FlaskClient, content: bytes, name: str, message: bytes
) -> None:
    login(client, "alice")
    response = upload(client, content, name)
    assert response.status_code == 302
    assert message in client.get(response.headers["Location"]).data
    with app.app_context():
        assert db.session.query(Submission).count() == 0


def test_missing_file(client: FlaskClient) -> None:
    login(client, "alice")
    response = client.post(f"/assignments/{A}/submit", data={})
    assert response.status_code == 302


def test_oversized_upload_gets_a_friendly_413(app_config: dict[str, Any], app: Flask) -> None:
    small = create_app(dict(app_config, GRADER_SETTINGS=small_settings(1000)))
    client = small.test_client()
    login(client, "alice")
    # Past MAX_CONTENT_LENGTH: refused before the body is read.
    response = upload(client, b"PK\x03\x04" + b"x" * 200_000)
    assert response.status_code == 413
    page = response.get_data(as_text=True)
    assert "too large" in page and "Traceback" not in page and "at most <strong>1,000 bytes" in page
    # Under MAX_CONTENT_LENGTH (it allows multipart framing) but over the file limit.
    response = upload(client, b"PK\x03\x04" + b"x" * 5000)
    assert response.status_code == 413 and b"too large" in response.data
    with small.app_context():
        assert db.session.query(Submission).count() == 0
    # The API answers JSON.
    from webutil import api_token

    token = api_token(small, "alice")
    response = client.post(
        f"/api/v1/assignments/{A}/submissions",
        data={"model": (io.BytesIO(b"x" * 200_000), "m.keras")},
        headers={"Authorization": f"Bearer {token}"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 413 and response.get_json()["status"] == 413
    assert response.get_json()["message"] == "The file is larger than the 1,000 bytes limit."


def test_upload_form_shows_formats_and_limit(client: FlaskClient) -> None:
    login(client, "alice")
    page = client.get(f"/assignments/{A}").get_data(as_text=True)
    assert ".keras or .h5" in page and "200.0 MB" in page and 'data-max-bytes="209715200"' in page


def test_attempt_limit_and_free_attempts(app: Flask, client: FlaskClient) -> None:
    login(client, "alice")
    for i in range(10):  # day096-conv2d allows 10 per day
        assert upload(client, b"PK\x03\x04%d" % i).status_code == 302
    response = upload(client, b"PK\x03\x04 eleventh")
    assert b"used all 10 submissions" in client.get(response.headers["Location"]).data
    with app.app_context():
        assert db.session.query(Submission).count() == 10
        # A refused file and an infrastructure error give the attempt back.
        subs = db.session.query(Submission).order_by(Submission.id).all()
        subs[0].state, subs[1].state = "not_gradable", "error"
        db.session.commit()
    assert upload(client, b"PK\x03\x04 again").status_code == 302
    assert upload(client, b"PK\x03\x04 again2").status_code == 302
    with app.app_context():
        assert db.session.query(Submission).count() == 12
    page = client.get(f"/assignments/{A}").get_data(as_text=True)
    assert 'id="attempts-left">0<' in page


def test_not_gradable_feedback(app: Flask, client: FlaskClient) -> None:
    sid = add_submission(app, "alice", status="not_gradable")
    login(client, "alice")
    page = client.get(f"/submissions/{sid}").get_data(as_text=True)
    assert (
        "Not gradable" in page and "not a Keras file" in page and "does not use an attempt" in page
    )


def test_status_fragment_refreshes_when_done(app: Flask, client: FlaskClient) -> None:
    queued = add_submission(app, "alice", status=None)
    done = add_submission(app, "alice", content=b"other")
    login(client, "alice")
    response = client.get(f"/submissions/{queued}/status")
    assert "HX-Refresh" not in response.headers and b"hx-trigger" in response.data
    assert client.get(f"/submissions/{done}/status").headers["HX-Refresh"] == "true"


def test_storage_verifies_content(tmp_path: Path) -> None:
    store = Storage(tmp_path)
    sha, size = store.put(io.BytesIO(b"hello"))
    assert size == 5 and store.open(sha).read() == b"hello"
    assert store.put(b"hello") == (sha, 5)  # stored once
    path = store.path(sha)
    path.chmod(0o600)
    path.write_bytes(b"tampered")
    with pytest.raises(StorageError):
        store.verify(sha)
    with pytest.raises(StorageError):
        store.path("../../etc/passwd")
    assert not any(p.name.startswith(".upload-") for p in tmp_path.iterdir())


def test_late_penalty_per_day_and_cap() -> None:
    spec = parse_spec(
        "id: x\ntitle: X\ninput_shape: [1]\npolicy:\n  deadline: 2026-01-10T12:00:00Z\n"
        "  late_penalty_per_day: 0.1\n  late_penalty_cap: 0.25\n"
    )
    base = dt.datetime(2026, 1, 10, 12, 0)
    assert late_penalty(spec, base) == (0, 0.0)
    assert late_penalty(spec, base + dt.timedelta(minutes=1)) == (1, 0.1)
    assert late_penalty(spec, base + dt.timedelta(days=1, hours=1)) == (2, 0.2)
    assert late_penalty(spec, base + dt.timedelta(days=9)) == (9, 0.25)


def test_late_submission_score_and_best_or_last(app: Flask) -> None:
    from grader.service.policy import standing_from

    sid = add_submission(app, "alice")
    later = add_submission(app, "alice", status="failed", content=b"later")
    with app.app_context():
        sub = db.session.get(Submission, sid)
        sub.late_days, sub.penalty = 2, 0.2
        db.session.commit()
        assert sub.final_score == 68.0
        subs = [db.session.get(Submission, later), sub]
        best = standing_from(subs, parse_spec("id: x\ntitle: X\ninput_shape: [1]\n"))
        assert best.counted == 68.0 and best.late
        last = standing_from(
            subs, parse_spec("id: x\ntitle: X\ninput_shape: [1]\npolicy: {counts: last}\n")
        )
        assert last.counted == 40.0 and not last.late


def _reimport(app: Flask, policy: str) -> None:
    """day096-conv2d again, with another policy block."""
    from webutil import ASSIGNMENTS

    from grader.service.specs import import_spec

    text = (ASSIGNMENTS / f"{A}.yaml").read_text()
    text = text.split("\npolicy:")[0] + "\npolicy:\n" + policy
    with app.app_context():
        import_spec(text, f"{A}.yaml")


def test_upload_form_warns_before_a_late_upload(app: Flask, client: FlaskClient) -> None:
    deadline = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1, hours=2)).replace(microsecond=0)
    _reimport(app, f"  deadline: {deadline.isoformat()}\n  late_penalty_per_day: 0.1\n")
    login(client, "alice")
    page = client.get(f"/assignments/{A}").get_data(as_text=True)
    assert 'id="late-warning"' in page
    assert "an upload now is 2 days late and loses 20.0 % of its score" in page
    assert deadline.strftime("%Y-%m-%d %H:%M UTC") in page and "(26 h ago)" in page
    assert "Upload late and grade" in page
    cards = client.get("/").get_data(as_text=True)
    assert "overdue" in cards
    # The instructor's page shows the deadline and the policy.
    client.post("/logout")
    login(client, "prof")
    board = client.get(f"/instructor/assignments/{A}").get_data(as_text=True)
    policy = board.split('id="policy"')[1].split("</dl>")[0]
    assert deadline.strftime("%Y-%m-%d %H:%M UTC") in policy
    assert "10.0 % per started day late, at most 100.0 %" in policy and "best" in policy


def test_at_the_cap_the_form_says_why_and_when_it_reopens(app: Flask, client: FlaskClient) -> None:
    _reimport(app, "  submissions_per_day: 1\n")
    login(client, "alice")
    assert upload(client, b"PK\x03\x04 one").status_code == 302
    page = client.get(f"/assignments/{A}").get_data(as_text=True)
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime("%Y-%m-%d 00:00 UTC")
    reason = page.split('id="cap-reason"')[1].split("</p>")[0]
    assert "used all 1 submissions for today" in reason and tomorrow in reason
    assert 'disabled aria-describedby="cap-reason"' in page
    # An upload past the cap (a stale form, the API) is refused with the same time.
    refused = upload(client, b"PK\x03\x04 two")
    shown = client.get(refused.location).get_data(as_text=True)  # the form flashes why
    assert f"uploads reopen at {tomorrow}" in shown


def test_feedback_page_reads_as_text_with_one_notation(app: Flask, client: FlaskClient) -> None:
    """Check cells without reprs, counts with separators, shapes in one notation, human
    phase names, no "predict" when nothing was predicted, "8 bytes" not "0.0 KiB"."""
    sid = add_submission(app, "alice", assignment=A, content=b"8 bytes!")
    with app.app_context():
        sub = db.session.get(Submission, sid)
        report = dict(sub.result.report)
        report["checks"] = [
            {"name": "Layer 1: Conv2D", "group": "architecture", "passed": False,
             "expected": {"type": "Conv2D", "filters": 32, "kernel_size": [3, 3],
                          "strides": [1, 1], "padding": "valid"},
             "actual": {"type": "Conv2D", "filters": 16, "kernel_size": [3, 3],
                        "strides": [1, 1], "padding": "valid"}, "message": "16 filters"},
            {"name": "Total parameters", "group": "parameters", "passed": False,
             "expected": "exactly 19,392", "actual": 121642, "message": ""},
        ]  # fmt: skip
        report["model"]["layers"][0].update(output_shape=[None, 222, 222, 32], params=19392)
        report["metrics"] = None
        report["timings"] = {"inspect": 0.05, "sandbox_start": 0.31, "import": 2.5,
                             "load": 0.2, "predict": 0.0}  # fmt: skip
        sub.result.report = report
        db.session.commit()
    login(client, "alice")
    page = client.get(f"/submissions/{sid}").get_data(as_text=True)
    assert "Conv2D, 32 filters, 3×3, stride 1, valid" in page
    assert "Conv2D, 16 filters, 3×3, stride 1, valid" in page
    assert "{&#39;type&#39;" not in page and "{'type'" not in page
    assert "121,642" in page and "19,392" in page and "(None, 222, 222, 32)" in page
    assert "[None, 222" not in page
    assert "starting the sandbox" in page and "sandbox_start" not in page
    assert "predicting the test images" not in page
    assert "8 bytes" in page and "KiB" not in page
    assert 'aria-live="polite"' in page and 'href="#content"' in page


def test_favicon_is_served(client: FlaskClient) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"


def test_a_refused_file_shows_where_it_stopped(app: Flask, client: FlaskClient) -> None:
    sid = add_submission(app, "alice", status="not_gradable")  # refused at inspection
    login(client, "alice")
    steps = client.get(f"/submissions/{sid}/status").get_data(as_text=True)
    assert '<span class="step stopped">inspecting' in steps
    assert '<span class="step skipped">evaluating' in steps  # never reached, not "done"
    assert 'step done">evaluating' not in steps and "refused" in steps
    graded = add_submission(app, "alice", content=b"graded")
    steps = client.get(f"/submissions/{graded}/status").get_data(as_text=True)
    assert '<span class="step done">evaluating' in steps and "stopped" not in steps
