"""The demo course (``grader serve --demo``): real models, really graded, once.

Seeding builds and grades real Keras models (10-30 s), so it runs once, on
SQLite, and the tests below share that course. The database logic (look-ups,
idempotency) runs on every backend with stand-in models and grading.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from webutil import PASSWORD, fake_report, make_config

from grader.data import test_set_available as cifar10_available
from grader.service.db import db
from grader.service.models import (
    Assignment,
    AuditLog,
    Result,
    SpecVersion,
    Submission,
    User,
)
from grader.settings import get_settings
from grader.web import create_app, demo
from grader.web.demo import DemoInfo, seed_demo

URL = "http://127.0.0.1:5000/"
#: Whether this machine has the CIFAR-10 test set (CI exports GRADER_CIFAR10).
CIFAR10_HERE = cifar10_available(get_settings().cifar10)


class Seeded:
    def __init__(self, app: Flask, info: DemoInfo, progress: list[str]) -> None:
        self.app, self.info, self.progress = app, info, progress


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """An empty database (as after ``init-db``), seeded once."""
    tmp = tmp_path_factory.mktemp("demo")
    app = create_app(make_config(tmp, f"sqlite:///{tmp / 'demo.db'}"))
    with app.app_context():
        db.drop_all()
        db.create_all()
    progress: list[str] = []
    info = seed_demo(app, echo=progress.append)
    yield Seeded(app, info, progress)
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


def _counts(app: Flask) -> dict[str, int]:
    with app.app_context():
        return {
            model.__name__: db.session.scalar(select(func.count()).select_from(model)) or 0
            for model in (User, Assignment, SpecVersion, Submission, Result, AuditLog)
        }


def test_seeding_creates_the_demo_course(seeded: Seeded) -> None:
    with seeded.app.app_context():
        users = {u.username: u.role for u in db.session.scalars(select(User))}
        assert users == {"instructor": "instructor", "alice": "student", "bob": "student"}
        assignments = set(db.session.scalars(select(Assignment.id)))
        assert assignments == {
            "day096-conv2d", "day096-separable", "day096-strides-padding", "day097-cifar10",
        }  # fmt: skip
        subs = {
            (s.user.username, s.assignment_id): s
            for s in db.session.scalars(select(Submission).order_by(Submission.id))
        }
        assert len(subs) == (4 if CIFAR10_HERE else 3)

        passing = subs[("alice", "day096-conv2d")]
        assert passing.state == "graded", passing.log
        assert passing.result and passing.result.report["status"] == "passed"
        assert passing.result.score == passing.result.max_score == 100

        failing = subs[("bob", "day096-conv2d")]
        assert failing.state == "failed", failing.log
        assert failing.result and failing.result.report["status"] == "failed"
        checks = {c["name"]: c for c in failing.result.report["checks"]}
        failed = [c for c in checks.values() if not c["passed"]]
        assert [c["group"] for c in failed] == ["architecture"]
        assert failed[0]["name"].startswith("Layer 2")
        assert failed[0]["actual"]["padding"] == "same"
        assert 0 < failing.result.score < failing.result.max_score

        refused = subs[("bob", "day096-separable")]
        assert refused.state == "not_gradable", refused.log
        assert refused.result and refused.result.report["status"] == "not_gradable"
        assert "Lambda" in (refused.result.reason or "")
        assert not refused.uses_attempt

        # Real .keras files, stored content-addressed and intact.
        from grader.service.context import storage

        for sub in subs.values():
            assert sub.file_format == "keras"
            assert storage().verify(sub.file_sha256).stat().st_size == sub.file_size

    assert [(s.username, s.status) for s in seeded.info.submissions] == [
        ("alice", "passed"),
        ("bob", "failed"),
        ("bob", "not_gradable"),
        *([("alice", "passed")] if CIFAR10_HERE else []),
    ]
    assert any("grading" in line for line in seeded.progress)


@pytest.mark.skipif(not CIFAR10_HERE, reason="no CIFAR-10 test set (set GRADER_CIFAR10)")
def test_trained_cifar10_submission_shows_accuracies_on_first_run(seeded: Seeded) -> None:
    """The most telling pages are there on a first run: the trained model (the spec's
    reference, tests/fixtures) really evaluated on the 10,000 test images."""
    cifar = next(s for s in seeded.info.submissions if s.assignment == "day097-cifar10")
    assert (cifar.username, cifar.status) == ("alice", "passed")
    assert cifar.score is not None and cifar.max_score and cifar.score >= 0.8 * cifar.max_score
    with seeded.app.app_context():
        sub = db.session.get(Submission, cifar.id)
        assert sub is not None and sub.state == "graded", sub.log
        metrics = sub.result.report["metrics"]
        assert metrics["num_images"] == 10_000 and metrics["accuracy"] > 0.7
    alice, prof = seeded.info.account("alice"), seeded.info.account("instructor")
    client = seeded.app.test_client()
    client.post("/login", data={"username": "alice", "password": alice.password})
    page = client.get(f"/submissions/{cifar.id}").get_data(as_text=True)
    assert 'id="confusion"' in page and "airplane" in page
    client = seeded.app.test_client()
    client.post("/login", data={"username": "instructor", "password": prof.password})
    dashboard = client.get("/instructor/assignments/day097-cifar10").get_data(as_text=True)
    assert 'id="accuracies-chart"' in dashboard
    assert "Classes the class gets wrong most" in dashboard
    banner = seeded.info.banner(URL)
    assert f"{URL}submissions/{cifar.id}" in banner and "confusion" in banner


def test_demo_passwords_log_in(seeded: Seeded) -> None:
    for account in seeded.info.accounts:
        assert account.password and len(account.password) >= 16
        client = seeded.app.test_client()
        wrong = client.post("/login", data={"username": account.username, "password": "nope"})
        assert wrong.status_code != 302
        response = client.post(
            "/login", data={"username": account.username, "password": account.password}
        )
        assert response.status_code == 302, response.data[:300]
        if account.username == "alice":
            sid = seeded.info.submissions[0].id
            page = client.get(f"/submissions/{sid}").get_data(as_text=True)
            assert "100 / 100" in page and "Conv2D" in page
    assert len({a.password for a in seeded.info.accounts}) == 3


def test_credentials_file_is_private(seeded: Seeded) -> None:
    path = Path(seeded.app.instance_path) / "demo-credentials.json"
    assert path == seeded.info.credentials_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())["accounts"]
    assert stored == {a.username: a.password for a in seeded.info.accounts}
    # Never in the code: no password appears in the module's source.
    source = Path(demo.__file__).read_text()
    assert not any(p in source for p in stored.values())


def test_second_seed_creates_nothing(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_keras(names: Any) -> Any:
        raise AssertionError(f"a re-run must not build models ({names})")

    monkeypatch.setattr(demo, "_model_bytes", no_keras)
    path = seeded.info.credentials_file
    path.chmod(0o644)  # e.g. restored from a backup: tightened again on read
    before = _counts(seeded.app)
    progress: list[str] = []
    again = seed_demo(seeded.app, echo=progress.append)
    assert _counts(seeded.app) == before
    assert again.created == [] and progress == []
    assert again.accounts == seeded.info.accounts
    assert again.submissions == seeded.info.submissions
    assert again.banner(URL) == seeded.info.banner(URL)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_banner_says_where_and_how(seeded: Seeded) -> None:
    text = seeded.info.banner("http://localhost:8080")
    assert "http://localhost:8080/" in text
    for account in seeded.info.accounts:
        assert account.username in text and str(account.password) in text
    for sub in seeded.info.submissions:
        assert f"http://localhost:8080/submissions/{sub.id}" in text
    assert "log in as student alice" in text.lower()
    assert "examples/day096_separable.py" in text
    assert "http://localhost:8080/instructor/" in text
    assert "demo mode only" in text.lower()
    assert str(seeded.info) == seeded.info.banner(URL)


@pytest.fixture
def empty_app(app_config: dict[str, Any]) -> Iterator[Flask]:
    """A fresh database on each backend (the conftest ``app`` has accounts already)."""
    app = create_app(app_config)
    with app.app_context():
        db.drop_all()
        db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


def test_seed_twice_on_every_backend(empty_app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole flow twice, with stand-in files and reports instead of Keras."""
    from grader.service import lifecycle

    expected = {item.filename: item.expected for item in demo.DEMO_SUBMISSIONS}

    def fake_grading(submission_id: int) -> None:
        sub = db.session.get(Submission, submission_id)
        assert sub is not None and sub.state == "queued"
        report = fake_report(sub.assignment_id, expected[sub.original_filename])
        lifecycle.store_report(sub, report)

    monkeypatch.setattr(
        demo, "_model_bytes", lambda names: {n: b"PK\x03\x04" + n.encode() for n in names}
    )
    monkeypatch.setattr(demo, "grade_inline", fake_grading)
    # No test set: no CIFAR-10 upload. A later run, once it is here, adds it.
    monkeypatch.setattr(demo, "_can_evaluate", lambda _item: False)
    first = seed_demo(empty_app, echo=None)
    assert [s.status for s in first.submissions] == ["passed", "failed", "not_gradable"]
    assert len(first.created) == 3 + 4 + 3
    monkeypatch.setattr(demo, "_can_evaluate", lambda _item: True)
    monkeypatch.setattr(
        demo, "_shipped_file", lambda name: pytest.fail(f"read {name} again")
    )  # the stand-in bytes come from _model_bytes
    first = seed_demo(empty_app, echo=None)
    statuses = [s.status for s in first.submissions]
    assert statuses == ["passed", "failed", "not_gradable", "passed"]
    assert first.created == ["submission alice/day097-cifar10/cifar10_trained"]
    counts = _counts(empty_app)
    assert counts["User"] == 3 and counts["Submission"] == 4 and counts["Assignment"] == 4
    second = seed_demo(empty_app, echo=None)
    assert second.created == [] and _counts(empty_app) == counts
    assert second.accounts == first.accounts and second.submissions == first.submissions
    # A demo upload that hit an infrastructure error (no sandbox, say) is retried.
    with empty_app.app_context():
        sub = db.session.get(Submission, first.submissions[0].id)
        assert sub is not None
        sub.state = "error"
        db.session.commit()
    third = seed_demo(empty_app, echo=None)
    assert third.submissions == first.submissions
    assert _counts(empty_app)["Submission"] == 4


def test_existing_accounts_are_left_alone(app: Flask) -> None:
    """Accounts the demo did not create (the conftest's alice and bob) keep their
    passwords and get no demo uploads, so nothing is built with Keras."""
    info = seed_demo(app, echo=None)
    assert info.account("alice").password is None
    assert info.account("bob").password is None
    instructor = info.account("instructor").password
    assert instructor
    assert info.submissions == []
    assert "password unchanged" in info.banner(URL)
    client = app.test_client()
    ok = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert ok.status_code == 302
    stored = json.loads(info.credentials_file.read_text())["accounts"]
    assert stored == {"instructor": instructor}
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Submission)) == 0
