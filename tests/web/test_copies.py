"""Copy detection through the service and the instructor's page, on SQLite and
PostgreSQL: a student who uploads another's weights (renamed, saved as .h5) is
paired with them, a student's own re-upload is not, and students never see it."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from webutil import login

from grader.inspection.static import inspect_model
from grader.service import copies
from grader.service.context import storage
from grader.service.db import db
from grader.service.models import Assignment, CopyPair, Submission, User
from grader.settings import Settings

A = "day096-conv2d"


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import keras

    out = tmp_path_factory.mktemp("copies")

    def build(prefix: str, seed: int) -> keras.Model:
        keras.utils.set_random_seed(seed)
        return keras.Sequential(
            [keras.Input((224, 224, 3)), keras.layers.Conv2D(32, 3, name=f"{prefix}1"),
             keras.layers.Conv2D(64, 3, name=f"{prefix}2")]
        )  # fmt: skip

    original = build("mine", 1)
    copy = build("theirs", 2)
    copy.set_weights(original.get_weights())
    files = {"original": out / "original.keras", "copy": out / "copy.h5", "own": out / "own.keras"}
    original.save(files["original"])
    copy.save(files["copy"])
    build("other", 3).save(files["own"])
    return files


def _graded(app: Flask, username: str, path: Path) -> int:
    """A graded submission of ``path`` as the job body leaves it (inspection stored)."""
    inspection = inspect_model(path, Settings())
    with app.app_context():
        user = db.session.query(User).filter_by(username=username).one()
        item = db.session.get(Assignment, A)
        sha, size = storage().put(path.read_bytes())
        sub = Submission(
            user_id=user.id, assignment_id=A, spec_version_id=item.current_version_id,
            file_sha256=sha, file_size=size, original_filename=path.name,
            file_format=path.suffix.lstrip("."), state="graded",
            inspection={"inspection": inspection.to_json(), "seconds": 0.1},
        )  # fmt: skip
        db.session.add(sub)
        db.session.commit()
        copies.record(sub.id)
        return sub.id


def test_copied_weights_are_paired_for_the_instructor_only(
    app: Flask, client: FlaskClient, model_files: dict[str, Path]
) -> None:
    alice = _graded(app, "alice", model_files["original"])
    _graded(app, "alice", model_files["original"])  # her own re-upload: no pair
    bob = _graded(app, "bob", model_files["copy"])
    _graded(app, "bob", model_files["own"])  # bob's own work: no pair either
    with app.app_context():
        pairs = db.session.query(CopyPair).all()
        assert len(pairs) == 2, [(p.first_id, p.second_id, p.kind) for p in pairs]
        assert {p.kind for p in pairs} == {"identical weights"}
        assert all(bob in (p.first_id, p.second_id) for p in pairs)
        assert any(alice in (p.first_id, p.second_id) for p in pairs)
    login(client, "prof")
    page = client.get(f"/instructor/assignments/{A}/copies").get_data(as_text=True)
    assert "identical weights" in page and "alice" in page and "bob" in page
    assert "Possible copies (2)" in client.get(f"/instructor/assignments/{A}").get_data(
        as_text=True
    )
    client.post("/logout")
    login(client, "bob")
    assert client.get(f"/instructor/assignments/{A}/copies").status_code in (403, 404)
