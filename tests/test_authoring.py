"""Authoring: a spec generated from a reference model (exact and budget), refused for a
reference that is not gradable or would fail it; ``grader assignments new``; and the
what-if of a draft spec on a seeded course (``grader assignments diff``), which must
predict what a real regrade gives and write nothing at all."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st
from models import conv_stack, save
from testutil import ASSIGNMENTS, shipped_spec

from grader.authoring import AuthoringError, Options, dump_spec, generate, spec_data, verify
from grader.authoring.generate import round_up
from grader.cli import main as grader_main
from grader.errors import ConfigurationError
from grader.settings import Settings
from grader.spec import AssignmentSpec, parse_spec

# --- generating a spec -------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The reference models, saved once (each is a few kilobytes)."""
    import keras

    folder = tmp_path_factory.mktemp("authoring")
    relu = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(8, 5, activation="relu"),
            keras.layers.DepthwiseConv2D(3, depth_multiplier=2),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    lambda_model = keras.Sequential(
        [keras.Input((224, 224, 3)), keras.layers.Lambda(lambda x: x * 2)]
    )
    second_same = keras.Sequential(
        [
            keras.Input((224, 224, 3)),
            keras.layers.Conv2D(32, 3),
            keras.layers.Conv2D(64, 3, padding="same"),
        ]
    )
    garbage = folder / "notes.keras"
    garbage.write_bytes(b"these are my notes, not a model\n" * 10)
    return {
        "right": save(conv_stack(), folder / "right.keras"),
        "same": save(second_same, folder / "same.keras"),
        "relu": save(relu, folder / "relu.keras"),
        "lambda": save(lambda_model, folder / "lambda.keras"),
        "garbage": garbage,
    }


def test_exact_mode_lists_every_layer_with_what_the_reference_sets(
    files: dict[str, Path], settings: Settings
) -> None:
    draft = generate(files["relu"], Options("mnist-ish", title="Digits"), settings)
    conv, depthwise, flatten, dense = draft.data["layers"]
    assert conv == {
        "type": "Conv2D", "filters": 8, "kernel_size": [5, 5], "strides": [1, 1],
        "padding": "valid", "activation": "relu", "output_shape": [None, 24, 24, 8],
        "params": 5 * 5 * 1 * 8 + 8,
    }  # fmt: skip
    # The Keras default activation ("linear") was not chosen, so it is not checked.
    assert "activation" not in depthwise and depthwise["depth_multiplier"] == 2
    assert depthwise["output_shape"] == [None, 22, 22, 16]
    assert flatten == {"type": "Flatten", "output_shape": [None, 22 * 22 * 16], "params": 0}
    assert dense["units"] == 10 and dense["activation"] == "softmax"
    assert draft.spec.total_params is not None
    assert draft.spec.total_params.exact == sum(x["params"] for x in draft.data["layers"])
    assert draft.spec.title == "Digits" and draft.spec.rubric.architecture == 60
    assert verify(files["relu"], draft.spec, settings).passed


def test_checked_attributes_can_be_chosen(files: dict[str, Path], settings: Settings) -> None:
    options = Options("pick", checked=("filters", "activation", "params"))
    layers = generate(files["right"], options, settings).data["layers"]
    assert layers == [
        {"type": "Conv2D", "filters": 32, "activation": "linear", "params": 896},
        {"type": "Conv2D", "filters": 64, "activation": "linear", "params": 18496},
    ]
    with pytest.raises(AuthoringError, match="cannot check colour"):
        generate(files["right"], Options("pick", checked=("colour",)), settings)


def test_budget_mode_counts_convolutions_and_bounds_the_parameters(
    files: dict[str, Path], settings: Settings
) -> None:
    draft = generate(files["relu"], Options("budget", mode="budget"), settings)
    total = draft.inspection.architecture.total_params
    assert draft.data["layer_counts"] == [
        {"type": "Conv2D", "min": 1}, {"type": "DepthwiseConv2D", "min": 1},
    ]  # fmt: skip
    assert draft.data["total_params"] == {"max": round_up(2 * total)}
    assert draft.data["output_shape"] == [None, 10] and "layers" not in draft.data
    assert verify(files["relu"], draft.spec, settings).passed
    chosen = Options("budget", mode="budget", counted_types=("Dense",), min_params=10,
                     max_params=10**6)  # fmt: skip
    data = generate(files["relu"], chosen, settings).data
    assert data["layer_counts"] == [{"type": "Dense", "min": 1}]
    assert data["total_params"] == {"min": 10, "max": 10**6}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (Options("x", mode="budget", max_params=100), "outside the budget"),
        (Options("x", mode="budget", counted_types=("SeparableConv2D",)), "has no SeparableConv2D"),
        (Options("x", min_accuracy=0.7), "must take 32×32×3 images"),
        (Options("x", target_accuracy=0.8), "needs a minimum accuracy"),
        (Options("Bad Id"), r"id \(line \d+\): String should match pattern"),
    ],
)
def test_options_the_reference_would_fail_are_refused(
    files: dict[str, Path], settings: Settings, options: Options, message: str
) -> None:
    with pytest.raises(AuthoringError, match=message):
        generate(files["relu"], options, settings)


@pytest.mark.parametrize(
    ("name", "words"), [("garbage", "not a Keras model"), ("lambda", "Lambda")]
)
def test_a_reference_that_is_not_gradable_is_refused_with_the_reason(
    files: dict[str, Path], settings: Settings, name: str, words: str
) -> None:
    with pytest.raises(AuthoringError) as caught:
        generate(files[name], Options("x"), settings)
    assert caught.value.reason.startswith("The reference model is not gradable")
    assert words in caught.value.reason


def test_a_reference_failing_an_edited_spec_is_told_which_check(
    files: dict[str, Path], settings: Settings
) -> None:
    draft = generate(files["right"], Options("edit"), settings)
    data = dict(draft.data)
    data["layers"] = [dict(layer) for layer in data["layers"]]
    data["layers"][1]["filters"] = 48
    result = verify(files["right"], AssignmentSpec.model_validate(data), settings)
    assert not result.passed and "Layer 2: Conv2D" in result.reason()
    assert "filters: expected 48, yours 64" in result.reason()


def test_yaml_is_in_the_shipped_format_and_round_trips(
    files: dict[str, Path], settings: Settings
) -> None:
    options = Options("fmt", description="Two lines\nof *Markdown*.\n")
    draft = generate(files["right"], options, settings)
    assert "description: |\n  Two lines\n  of *Markdown*.\n" in draft.yaml
    assert "  - type: Conv2D\n    filters: 32\n    kernel_size: 3\n" in draft.yaml
    assert "output_shape: [null, 222, 222, 32]" in draft.yaml
    assert parse_spec(draft.yaml) == AssignmentSpec.model_validate(draft.data)
    # A shipped spec dumped and parsed again is the same spec.
    shipped = shipped_spec("day097-cifar10")
    again = parse_spec(dump_spec(shipped.model_dump(mode="json", exclude_none=True)))
    assert again == shipped


@given(st.integers(min_value=1, max_value=10**12))
def test_round_up_keeps_two_significant_digits_and_never_goes_down(value: int) -> None:
    rounded = round_up(value)
    assert value <= rounded < value + 10 ** max(0, len(str(value)) - 2)
    assert len(str(rounded).rstrip("0")) <= 2


def test_spec_data_orders_keys_like_the_shipped_specs(files: dict[str, Path]) -> None:
    from grader.inspection.static import inspect_model

    arch = inspect_model(files["right"], Settings()).architecture
    data = spec_data(arch, Options("order", reference="examples/x.py"))
    shipped = yaml.safe_load((ASSIGNMENTS / "day096-conv2d.yaml").read_text())
    assert list(data) == list(shipped)


# --- grader assignments new --------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        grader_main([str(a) for a in args])
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err


def test_cli_new_prints_and_writes_a_spec_its_reference_passes(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        capsys, "assignments", "new", "conv-twice", "--from-model", files["right"],
        "--title", "Two convolutions", "--assignments-dir", tmp_path,
    )  # fmt: skip
    written = tmp_path / "conv-twice.yaml"
    assert code == 0, err
    assert out == written.read_text() and f"Wrote {written}" in err and "passes it" in err
    spec = parse_spec(out)
    assert spec.title == "Two convolutions" and spec.reference == str(files["right"])
    # The command that lists specs reads it like the shipped ones.
    code, out, _ = run_cli(capsys, "assignments", "list", "--assignments-dir", tmp_path)
    assert code == 0 and "conv-twice" in out and "Two convolutions" in out


def test_cli_new_refuses_and_writes_nothing(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = ["--assignments-dir", str(tmp_path)]
    code, out, err = run_cli(capsys, "assignments", "new", "x", "--from-model",
                             files["garbage"], *folder)  # fmt: skip
    assert code == 2 and out == "" and "not gradable" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "assignments", "new", "x", "--from-model", files["right"],
                           "--min-accuracy", "0.7", *folder)  # fmt: skip
    assert code == 2 and "CIFAR-10 assignment" in err
    code, _, err = run_cli(capsys, "assignments", "new", "Not An Id", "--from-model",
                           files["right"], *folder)  # fmt: skip
    assert code == 3 and "ID" in err
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "x.yaml").write_text("keep me")
    code, _, err = run_cli(capsys, "assignments", "new", "x", "--from-model", files["right"],
                           *folder)  # fmt: skip
    assert code == 3 and "--force" in err and (tmp_path / "x.yaml").read_text() == "keep me"


# --- what-if -------------------------------------------------------------------------

A = "day096-conv2d"


def _course_app(tmp_path: Path, **config: object) -> Flask:
    """A web app on its own SQLite file and store, grading nothing by itself."""
    from grader.web import create_app

    return create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'course.db'}",
            "GRADER_SUBMISSIONS_DIR": str(tmp_path / "submissions"),
            "GRADER_EXECUTOR": "none",
            **config,
        }
    )


@pytest.fixture
def course(tmp_path: Path, files: dict[str, Path]) -> Iterator[Flask]:
    """day096-conv2d with four students, graded by the grader's own checks:
    alice the right model (100), bob padding="same" in layer 2 (failed), carol a file
    that is not a model (not gradable), dave the right model with an override of 55."""
    from grader.inspection.static import inspect_model
    from grader.pipeline import build_report
    from grader.service.context import storage
    from grader.service.db import db
    from grader.service.lifecycle import store_report
    from grader.service.models import Assignment, User
    from grader.service.specs import import_spec_files
    from grader.service.submissions import record_upload
    from grader.service.whatif import _static

    app = _course_app(tmp_path, PASSWORD_HASH_METHOD="pbkdf2:sha256:1000")
    with app.app_context():
        db.create_all()
        for name in ("alice", "bob", "carol", "dave"):
            db.session.add(User(username=name, role="student", name=name.title()))
        db.session.commit()
        import_spec_files(sorted(ASSIGNMENTS.glob("*.yaml")))
        assignment = db.session.get(Assignment, A)
        spec = shipped_spec(A)
        for name, model in (("alice", "right"), ("bob", "same"), ("carol", "garbage"),
                            ("dave", "right")):  # fmt: skip
            user = db.session.query(User).filter_by(username=name).one()
            sha, size = storage().put(files[model].read_bytes())
            sub = record_upload(user, assignment, sha, size, f"{model}.keras", "keras")
            try:
                inspection = inspect_model(files[model], Settings())
                report = build_report(spec, inspection, _static(inspection), file_sha256=sha)
            except Exception as exc:  # NotGradable: the refusal the grader records
                from grader.pipeline import refusal_report

                report = refusal_report(spec, str(exc), file_sha256=sha)
            store_report(sub, report)
            if name == "dave":
                sub.override_score = 55.0
                sub.override_reason = "oral exam"
                db.session.commit()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _draft(**changes: Any) -> AssignmentSpec:
    """day096-conv2d with layer 2 asking for padding="same" (222×222×64), and ``changes``."""
    data = shipped_spec(A).model_dump(mode="json", exclude_none=True)
    data["layers"][1].update(padding="same", output_shape=[None, 222, 222, 64])
    data.update(changes)
    return AssignmentSpec.model_validate(data)


def _snapshot(app: Flask) -> tuple[Any, ...]:
    """Every row of every table, and every file of the store with its size and time."""
    from sqlalchemy import select

    from grader.service.db import db

    with app.app_context():
        rows = {
            table.name: sorted(map(repr, db.session.execute(select(table)).all()))
            for table in db.metadata.sorted_tables
        }
    store = Path(app.config["GRADER_SUBMISSIONS_DIR"])
    files = sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in store.rglob("*"))
    return rows, files


def test_what_if_finds_the_changed_grades_and_writes_nothing(course: Flask) -> None:
    from grader.service.db import db
    from grader.service.models import Assignment
    from grader.service.whatif import what_if

    before = _snapshot(course)
    with course.app_context():
        result = what_if(db.session.get(Assignment, A), _draft())
    assert _snapshot(course) == before, "the what-if wrote something"

    assert result.submissions == 4 and result.students_total == 4
    changed = {s.username: (s.old_score, s.new_score, s.direction) for s in result.students}
    assert set(changed) == {"alice", "bob"}  # carol still refused, dave's override stands
    assert changed["alice"][0] == 100 and changed["alice"][2] == "down"
    assert changed["bob"][1] == 100 and changed["bob"][2] == "up"
    assert result.up == 1 and result.down == 1
    assert "2 of 4 students' grades would change (1 up, 1 down)" in result.summary()
    carol = next(o for o in result.outcomes if o.username == "carol")
    assert carol.new_status == "not_gradable" and "not a Keras model" in carol.reason


def test_what_if_agrees_with_a_real_regrade(course: Flask) -> None:
    """Publish the draft and regrade for real (in the sandbox): every new score is the
    one the what-if predicted (dave's override stands whatever his file scores, so his
    file, alice's, is not graded twice)."""
    from grader.sandbox import sandbox_status
    from grader.service.db import db
    from grader.service.executors import grade_inline
    from grader.service.models import Assignment, Submission
    from grader.service.specs import import_spec
    from grader.service.submissions import requeue
    from grader.service.whatif import what_if

    ok, why = sandbox_status()
    if not ok:
        pytest.skip(f"no sandbox to regrade in: {why}")
    draft = _draft()
    with course.app_context():
        predicted = {
            o.submission_id: o.new_score
            for o in what_if(db.session.get(Assignment, A), draft).outcomes
        }
        import_spec(dump_spec(draft.model_dump(mode="json", exclude_none=True)), "draft")
        subs = [s for s in db.session.query(Submission).order_by(Submission.id)
                if s.override_score is None]  # fmt: skip
        for sub in subs:
            requeue(sub, None)
        db.session.commit()
        for sid in [s.id for s in subs]:
            grade_inline(sid)
        db.session.expire_all()
        actual = {s.id: s.final_score for s in db.session.query(Submission)}
        states = sorted(s.state for s in db.session.query(Submission))
    assert actual == predicted
    assert states == ["failed", "graded", "graded", "not_gradable"]


def test_what_if_applies_the_drafts_late_policy(course: Flask) -> None:
    from grader.service.db import db
    from grader.service.models import Assignment
    from grader.service.whatif import what_if

    deadline = (dt.datetime.now(dt.UTC) - dt.timedelta(days=3, hours=1)).isoformat()
    policy = {"deadline": deadline, "late_penalty_per_day": 0.1, "late_penalty_cap": 0.5}
    data = shipped_spec(A).model_dump(mode="json", exclude_none=True)
    data["policy"].update(policy)
    with course.app_context():
        result = what_if(db.session.get(Assignment, A), AssignmentSpec.model_validate(data))
    changed = {s.username: (s.old_score, s.new_score) for s in result.students}
    assert changed["alice"] == (100, 60)  # four started days late: 40 % off
    assert "dave" not in changed


def test_what_if_without_submissions_or_for_another_id(course: Flask) -> None:
    from grader.service.db import db
    from grader.service.models import Assignment
    from grader.service.whatif import what_if

    with course.app_context():
        separable = db.session.get(Assignment, "day096-separable")
        result = what_if(separable, shipped_spec("day096-separable"))
        assert result.outcomes == [] and "has no submissions yet" in result.summary()
        with pytest.raises(ConfigurationError, match="its id must not change"):
            what_if(separable, _draft())


def test_cli_diff_shows_the_what_if_and_writes_nothing_until_publish(
    course: Flask, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from grader.web import app as app_module

    monkeypatch.setattr(app_module, "create_app", lambda config=None: course)
    draft = tmp_path / "draft.yaml"
    draft.write_text(dump_spec(_draft().model_dump(mode="json", exclude_none=True)))
    before = _snapshot(course)
    code, out, err = run_cli(capsys, "assignments", "diff", A, draft)
    assert code == 0, err
    assert "1 up, 1 down" in out and "alice" in out and "bob" in out and "↓" in out
    code, out, _ = run_cli(capsys, "assignments", "diff", A, draft, "--json")
    assert code == 0 and {s["username"] for s in json.loads(out)["students"]} == {"alice", "bob"}
    assert _snapshot(course) == before
    code, _, err = run_cli(capsys, "assignments", "diff", A, draft, "--publish")
    assert code == 0 and f"Published: {A} updated" in err
    from grader.service.db import db
    from grader.service.models import Assignment

    with course.app_context():
        assert db.session.get(Assignment, A).current_version.version == 2


def test_what_if_reuses_the_stored_accuracy_when_the_draft_feeds_the_same_images(
    tmp_path: Path,
) -> None:
    """A CIFAR-10 submission graded for real (sandbox, a small synthetic test set): a draft
    that changes the rubric and the thresholds is scored from the stored accuracy, and
    that prediction is what grading against the draft gives; a draft that changes the
    preprocessing is listed as not re-scored (it would need the model run again)."""
    import numpy as np
    from models import cifar_cnn

    from grader.data import find_test_set
    from grader.pipeline import grade_file
    from grader.sandbox import sandbox_status
    from grader.service.context import storage
    from grader.service.db import db
    from grader.service.lifecycle import store_report
    from grader.service.models import Assignment, User
    from grader.service.specs import import_spec_files
    from grader.service.submissions import record_upload
    from grader.service.whatif import what_if

    ok, why = sandbox_status()
    if not ok:
        pytest.skip(f"no sandbox to grade in: {why}")
    rng = np.random.default_rng(0)
    data = tmp_path / "test.npz"
    np.savez(data, x=rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8),
             y=rng.integers(0, 10, 200).astype(np.uint8))  # fmt: skip
    settings = Settings(cifar10=data)
    model = save(cifar_cnn(3), tmp_path / "cnn.keras")
    spec = shipped_spec("day097-cifar10")
    old = grade_file(model, spec, settings=settings, test_set=find_test_set(data))
    assert old.metrics is not None

    app = _course_app(tmp_path, GRADER_SETTINGS=settings)
    base = spec.model_dump(mode="json", exclude_none=True)
    rubric = {**base, "rubric": {"architecture": 40, "parameters": 10, "accuracy": 50,
                                 "credit_at_min": 0.6},
              "evaluation": {**base["evaluation"], "min_accuracy": 0.05,
                             "target_accuracy": 0.5}}  # fmt: skip
    scaled = {**base, "evaluation": {**base["evaluation"], "preprocessing": {"scale": 1.0}}}
    with app.app_context():
        db.create_all()
        db.session.add(User(username="erin", role="student", name="Erin"))
        db.session.commit()
        import_spec_files([ASSIGNMENTS / "day097-cifar10.yaml"])
        assignment = db.session.get(Assignment, "day097-cifar10")
        user = db.session.query(User).filter_by(username="erin").one()
        sha, size = storage().put(model.read_bytes())
        store_report(record_upload(user, assignment, sha, size, "cnn.keras", "keras"), old)

        draft = AssignmentSpec.model_validate(rubric)
        (outcome,) = what_if(assignment, draft).outcomes
        (listed,) = what_if(assignment, AssignmentSpec.model_validate(scaled)).outcomes
    app.extensions["grader"].close()
    regraded = grade_file(model, draft, settings=settings, test_set=find_test_set(data))
    assert outcome.new_status == regraded.status
    assert outcome.new_score == pytest.approx(regraded.score, abs=0.01)
    assert outcome.new_score != outcome.old_score
    assert listed.new_status == "not_rescored" and "evaluates the model differently" in (
        listed.reason
    )
    assert listed.new_score == listed.old_score
