"""Helpers shared by the web tests (imported by conftest and test modules)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from grader.report import CIFAR10_CLASSES, Check, LayerInfo, Metrics, ModelInfo, Report, ScorePart
from grader.service.db import db
from grader.service.lifecycle import store_report
from grader.service.models import ApiToken, Submission, User, hash_token
from grader.service.specs import import_spec_files
from grader.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENTS = ROOT / "assignments"
PASSWORD = "correct horse battery"


def make_config(tmp_path: Path, db_url: str, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "TESTING": True,
        "SECRET_KEY": "test",
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "SQLALCHEMY_DATABASE_URI": db_url,
        "GRADER_SUBMISSIONS_DIR": str(tmp_path / "submissions"),
        "GRADER_EXECUTOR": "none",
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_ENABLED": False,
        "SERVER_NAME": "localhost",
        "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
    }
    config.update(extra)
    return config


def seed() -> None:
    """Two students, an instructor and the three course assignments."""
    for username, role in (("alice", "student"), ("bob", "student"), ("prof", "instructor")):
        user = User(username=username, role=role, name=username.title())
        user.set_password(PASSWORD)
        db.session.add(user)
    db.session.commit()
    import_spec_files(sorted(ASSIGNMENTS.glob("*.yaml")))


def login(client: FlaskClient, username: str) -> FlaskClient:
    response = client.post("/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.data[:500]
    return client


def user_id(app: Flask, username: str) -> int:
    with app.app_context():
        return db.session.query(User).filter_by(username=username).one().id


def api_token(app: Flask, username: str) -> str:
    raw = "gr_" + secrets.token_urlsafe(16)
    with app.app_context():
        uid = db.session.query(User).filter_by(username=username).one().id
        db.session.add(ApiToken(user_id=uid, name="test", token_hash=hash_token(raw)))
        db.session.commit()
    return raw


def fake_report(assignment: str = "day097-cifar10", status: str = "passed") -> Report:
    """A complete report, as the pipeline returns it, without running TensorFlow."""
    matrix = [[80 if i == j else 2 for j in range(10)] for i in range(10)]
    metrics = Metrics(
        accuracy=0.8,
        num_images=1000,
        per_class_accuracy={c: 0.6 + i * 0.03 for i, c in enumerate(CIFAR10_CLASSES)},
        confusion_matrix=matrix,
    )
    return Report(
        status=status,  # type: ignore[arg-type]
        reason=None if status != "not_gradable" else "not a Keras file",
        assignment=assignment,
        score=85.0 if status == "passed" else 40.0,
        max_score=100.0,
        score_breakdown=[ScorePart(group="architecture", points=20, max_points=20, detail="ok")],
        checks=[
            Check(
                name="layer 1 type",
                group="architecture",
                passed=True,
                expected="Conv2D",
                actual="Conv2D",
            )
        ],
        model=ModelInfo(
            total_params=896,
            layers=[
                LayerInfo(name="conv", type="Conv2D", output_shape=[None, 30, 30, 32], params=896)
            ],
        ),
        metrics=metrics if status != "not_gradable" else None,
        timings={"inspect": 0.1, "evaluate": 2.5},
        file_sha256="0" * 64,
    )


def add_submission(
    app: Flask,
    username: str,
    assignment: str = "day097-cifar10",
    status: str | None = "passed",
    content: bytes = b"PK\x03\x04 fake model",
) -> int:
    """Store a file and a submission, graded with a fake report (or left queued)."""
    from grader.service.context import storage
    from grader.service.models import Assignment

    with app.app_context():
        user = db.session.query(User).filter_by(username=username).one()
        assignment_row = db.session.get(Assignment, assignment)
        sha, size = storage().put(content)
        sub = Submission(
            user_id=user.id,
            assignment_id=assignment,
            spec_version_id=assignment_row.current_version_id,
            file_sha256=sha,
            file_size=size,
            original_filename="model.keras",
            file_format="keras",
        )
        db.session.add(sub)
        db.session.commit()
        if status is not None:
            store_report(sub, fake_report(assignment, status))
        return sub.id


def small_settings(max_upload_bytes: int) -> Settings:
    return Settings(max_upload_bytes=max_upload_bytes)


def fake_pipeline(monkeypatch: Any, report: Report) -> None:
    """The real job body (claim, handoff, finish) with the pipeline's phases replaced,
    so a test can grade a stand-in file without Keras."""
    from grader.inspection.architecture import Architecture
    from grader.inspection.static import Inspection
    from grader.service import jobs

    inspection = Inspection(
        "keras", "3.15.1", Architecture("Sequential", (None, 32, 32, 3), (None, 10), [])
    )
    monkeypatch.setattr(jobs, "inspect_file", lambda *a, **k: inspection)
    monkeypatch.setattr(jobs, "evaluate", lambda *a, **k: None)
    monkeypatch.setattr(jobs, "build_report", lambda *a, **k: report.model_copy(deep=True))
