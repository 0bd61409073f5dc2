"""Files written by Keras 2 (tf.keras, tf-keras) are graded like their Keras 3 twins.

tf-keras writes each model in this test run (``keras2_models.py``) as a
student on TensorFlow <= 2.15 would, in ``.h5`` and ``.keras``. The grader
must give the same verdict, layer table and parameter counts as the same
architecture with the same weights saved by Keras 3, and, for the trained
model, tf-keras's own test accuracy to 1e-4. A Keras 2 ``Lambda`` (marshalled
bytecode) is refused before any loader sees it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from keras2_models import ASSIGNMENTS, GRADED, build
from testutil import shipped_spec

from grader.batch import grade_directory
from grader.data import TestSet
from grader.inspection.static import inspect_model
from grader.pipeline import grade_file
from grader.report import Report
from grader.sandbox import sandbox_status
from grader.settings import Settings

pytestmark = pytest.mark.skipif(not sandbox_status()[0], reason="no sandbox on this machine")


@pytest.fixture(scope="module")
def eval_set(keras2_files: Path) -> TestSet:
    labels = np.load(keras2_files / "eval_labels.npy")
    return TestSet(keras2_files / "eval_images.npy", labels, "tf-keras evaluation images")


def _twin(keras2_files: Path, name: str, folder: Path) -> Path:
    """The same architecture and weights, saved by Keras 3."""
    import keras

    model = build(keras, name)
    weights = np.load(keras2_files / f"{name}.weights.npz")
    model.set_weights([weights[f"arr_{i}"] for i in range(len(weights.files))])
    path = folder / f"{name}.keras"
    model.save(path)
    return path


def _grade(path: Path, assignment: str, test_set: TestSet) -> Report:
    return grade_file(path, shipped_spec(assignment), settings=Settings(), test_set=test_set)


def _layers(report: Report) -> list[tuple]:
    return [(x.type, x.output_shape, x.params, x.trainable_params) for x in report.model.layers]


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
@pytest.mark.parametrize(("name", "assignment"), GRADED)
def test_keras2_file_is_graded_like_its_keras3_twin(
    name, assignment, suffix, keras2_files, eval_set, tmp_path
) -> None:
    keras2 = _grade(keras2_files / f"{name}{suffix}", assignment, eval_set)
    keras3 = _grade(_twin(keras2_files, name, tmp_path), assignment, eval_set)
    assert keras2.status == keras3.status != "not_gradable", keras2.reason
    _assert_same_grade(keras2, keras3)


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
@pytest.mark.parametrize("name", sorted({name for name, _ in GRADED}))
def test_keras2_file_gets_its_twins_verdict_on_every_assignment(
    name, suffix, keras2_files, eval_set, tmp_path
) -> None:
    """Against the shipped assignments it was not written for: the same verdict
    (an input that does not fit is refused for both, with the same reason)."""
    twin = _twin(keras2_files, name, tmp_path)
    for assignment in ASSIGNMENTS:
        if (name, assignment) in GRADED:  # the test above
            continue
        keras2 = _grade(keras2_files / f"{name}{suffix}", assignment, eval_set)
        keras3 = _grade(twin, assignment, eval_set)
        assert (keras2.status, keras2.reason) == (keras3.status, keras3.reason), assignment
        _assert_same_grade(keras2, keras3)


def _assert_same_grade(keras2: Report, keras3: Report) -> None:
    assert _layers(keras2) == _layers(keras3)
    assert keras2.model.total_params == keras3.model.total_params
    assert [(c.name, c.passed) for c in keras2.checks] == [
        (c.name, c.passed) for c in keras3.checks
    ]
    assert keras2.score == pytest.approx(keras3.score, abs=0.01)
    if keras2.metrics is not None:
        assert keras3.metrics is not None
        assert keras2.metrics.accuracy == pytest.approx(keras3.metrics.accuracy, abs=1e-4)


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_trained_keras2_accuracy_equals_tf_keras_evaluate(suffix, keras2_files, eval_set) -> None:
    expected = json.loads((keras2_files / "cifar_functional.accuracy.json").read_text())
    report = _grade(keras2_files / f"cifar_functional{suffix}", "day097-cifar10", eval_set)
    assert report.metrics is not None and report.metrics.num_images == len(eval_set.labels)
    assert report.metrics.accuracy == pytest.approx(expected, abs=1e-4)


def test_the_lesson_files_pass_their_assignments(keras2_files: Path, eval_set) -> None:
    for name, assignment in (("lesson_conv2d", "day096-conv2d"),
                             ("lesson_separable", "day096-separable")):  # fmt: skip
        for suffix in (".h5", ".keras"):
            report = _grade(keras2_files / f"{name}{suffix}", assignment, eval_set)
            assert report.status == "passed", (name, suffix, report.reason)


def test_keras2_files_are_recognised_from_the_file(keras2_files: Path) -> None:
    version = (keras2_files / "keras_version.txt").read_text()
    for suffix in (".h5", ".keras"):
        inspection = inspect_model(keras2_files / f"lesson_separable{suffix}", Settings())
        assert inspection.keras_version == version and inspection.loader == "tf_keras"
        assert inspection.architecture.total_params == 2_555


def test_keras2_lambda_is_refused_before_any_loader(keras2_files: Path, eval_set) -> None:
    report = _grade(keras2_files / "lambda.h5", "day097-cifar10", eval_set)
    assert report.status == "not_gradable" and "Lambda" in report.reason
    assert "sandbox_start" not in report.timings  # never reached the sandbox
    assert not (keras2_files / "PWNED").exists()


def test_keras2_files_through_the_cli_and_batch(keras2_files: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "grader", "check", str(keras2_files / "lesson_separable.h5"),
         "-a", "day096-separable", "--json"], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert json.loads(result.stdout)["model"]["total_params"] == 2_555

    folder = tmp_path / "collected"
    folder.mkdir()
    for suffix in (".h5", ".keras"):
        (folder / f"student{suffix[1:]}_sep{suffix}").write_bytes(
            (keras2_files / f"lesson_separable{suffix}").read_bytes()
        )
    summary = grade_directory(folder, shipped_spec("day096-separable"), tmp_path / "grades.csv",
                              jobs=2)  # fmt: skip
    assert summary.counts["passed"] == 2, summary.line()
