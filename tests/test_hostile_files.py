"""Every hostile file is refused as not gradable by the whole pipeline, before any load.

The payloads would create a marker file if they ever ran; each test checks
that the marker does not exist and that Keras was never asked to load the file
(no "load" phase in the timings: the refusal came from static inspection).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import hostile
import pytest
from testutil import shipped_spec

from grader.pipeline import grade_file
from grader.spec import parse_spec

HOSTILE = sorted(
    {*hostile.REFUSED_BY_FILE_CHECKS.values(), *hostile.PASS_FILE_CHECKS.values()},
    key=lambda builder: builder.__name__,
)


@pytest.mark.parametrize("builder", HOSTILE, ids=lambda b: b.__name__)
def test_hostile_file_is_not_gradable_and_has_no_side_effect(
    builder, tmp_path: Path, settings
) -> None:
    marker = tmp_path / "PWNED"
    path = builder(tmp_path, marker)
    report = grade_file(path, shipped_spec("day097-cifar10"), settings=settings)
    assert report.status == "not_gradable"
    assert report.reason and "Traceback" not in report.reason and str(tmp_path) not in report.reason
    assert report.exit_code == 2
    assert "load" not in report.timings and "import" not in report.timings
    assert not marker.exists()
    if path.is_file() and not path.is_symlink():  # refused files keep their identity
        assert report.file_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    else:
        assert report.file_sha256 is None


@pytest.mark.parametrize(
    ("builder", "words"),
    [
        (hostile.lambda_keras, "Lambda"),
        (hostile.lambda_h5, "Lambda"),
        (hostile.nested_lambda_keras, "Lambda"),
        (hostile.os_system_layer_keras, "'os'"),
        (hostile.tfsmlayer_keras, "TFSMLayer"),
        (hostile.custom_class_keras, "custom"),
        (hostile.trillion_dense_keras, "'units' is 1,000,000,000,000"),
    ],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_refusal_reason_names_the_problem(builder, words: str, tmp_path: Path, settings) -> None:
    report = grade_file(builder(tmp_path), shipped_spec("day097-cifar10"), settings=settings)
    assert report.status == "not_gradable"
    assert words in report.reason


def test_benign_files_from_the_same_builders_are_graded(tmp_path: Path, settings) -> None:
    """The control group: the refusals above are not a grader that refuses everything."""
    spec = parse_spec("id: control\ntitle: Control\ninput_shape: [null, null, 3]\n")
    for builder in (hostile.plain_keras, hostile.plain_h5):
        report = grade_file(builder(tmp_path), spec, settings=settings)
        assert report.status in {"passed", "failed"}, report.reason
        assert "load" in report.timings
