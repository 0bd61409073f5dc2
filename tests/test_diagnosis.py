"""Diagnosis and the generalisation probe on real trained models: the shipped
CIFAR-10 fixture, and variants built from it here, each graded through a real
sandbox on the first 1,000 real CIFAR-10 test images (the probes use the first 300).

Each variant must get its own diagnosis code with the probe numbers as evidence;
the honest fixture must get none, and must not be flagged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from models import memoriser
from testutil import first_test_images, shipped_spec

from grader import data
from grader.pipeline import grade_file
from grader.report import Report

Subset = data.TestSet
FIXTURE = Path(__file__).parent / "fixtures" / "day097_cifar10.keras"
N = 1000


@pytest.fixture(scope="module")
def subset(tmp_path_factory: pytest.TempPathFactory) -> data.TestSet:
    return first_test_images(tmp_path_factory.mktemp("cifar"), N)


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory, subset: data.TestSet) -> dict[str, Path]:
    """The fixture, and what students commonly upload instead of it."""
    import keras

    out = tmp_path_factory.mktemp("variants")
    trained = keras.saving.load_model(FIXTURE, compile=False)
    files = {"honest": FIXTURE}

    # Trained on x / 255 but given its own Rescaling(1/255) too: rescaled twice.
    rescaled = keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255, name="rescale_pixels"), trained]
    )
    files["rescaling"] = out / "rescaling.keras"
    rescaled.save(files["rescaling"])

    # The same network trained on BGR images: its first kernel reads the channels reversed.
    bgr = keras.models.clone_model(trained)
    bgr.set_weights(trained.get_weights())
    first = next(layer for layer in bgr.layers if layer.get_weights())
    kernel, *rest = first.get_weights()
    first.set_weights([kernel[:, :, ::-1, :], *rest])
    files["bgr"] = out / "bgr.keras"
    bgr.save(files["bgr"])

    # Saved before training: the same architecture, fresh weights.
    fresh = keras.models.clone_model(trained)
    files["untrained"] = out / "untrained.keras"
    fresh.save(files["untrained"])

    # A last layer that outputs a constant: 'ship' whatever the image.
    constant = keras.models.clone_model(trained)
    constant.set_weights(trained.get_weights())
    last = constant.layers[-1]
    kernel, bias = last.get_weights()
    last.set_weights([np.zeros_like(kernel), np.eye(10, dtype=bias.dtype)[8] * 5])
    files["constant"] = out / "constant.keras"
    constant.save(files["constant"])

    # Five outputs where CIFAR-10 has ten: the trained body with the wrong head.
    body = trained.layers[-2].output
    five = keras.Model(trained.inputs, keras.layers.Dense(5, name="head")(body))
    files["five_classes"] = out / "five_classes.keras"
    five.save(files["five_classes"])

    # Diverged training: the last layer's weights are NaN, so every output is.
    diverged = keras.models.clone_model(trained)
    diverged.set_weights(trained.get_weights())
    kernel, bias = diverged.layers[-1].get_weights()
    diverged.layers[-1].set_weights([np.full_like(kernel, np.nan), bias])
    files["nan"] = out / "nan.keras"
    diverged.save(files["nan"])

    # Overflow on bright images only: outputs are +inf where the pixel sum is large.
    overflow = keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(10, name="hot")]
    )
    overflow.get_layer("hot").set_weights(
        [np.full((3072, 10), 2.5e35, np.float32), np.zeros(10, np.float32)]
    )
    files["overflow"] = out / "overflow.keras"
    overflow.save(files["overflow"])

    # Memorised: a nearest-neighbour lookup of the first 300 test images in Dense weights.
    files["memorised"] = out / "memorised.keras"
    memoriser(subset.images()[:300], subset.labels[:300]).save(files["memorised"])
    return files


def _grade(path: Path, subset: data.TestSet, **spec_changes: object) -> Report:
    spec = shipped_spec("day097-cifar10")
    if spec_changes:
        spec = spec.model_copy(update=spec_changes)
    return grade_file(path, spec, test_set=subset)


def _codes(report: Report) -> list[str]:
    return [d.code for d in report.diagnosis]


def test_honest_model_gets_no_diagnosis_and_no_flag(variants: dict, subset: Subset) -> None:
    report = _grade(variants["honest"], subset)
    assert report.status == "passed", report.reason
    assert report.diagnosis == []
    assert report.integrity is not None and not report.integrity.flagged
    assert report.probes is not None and report.probes.images == 300
    assert set(report.probes.variants) == {
        "raw",
        "symmetric",
        "standardized",
        "bgr",
        "flip",
        "shift",
    }


def test_own_rescaling_layer_is_named_as_the_cause(variants: dict, subset: Subset) -> None:
    report = _grade(variants["rescaling"], subset)
    assert report.status == "failed"
    found = {d.code: d for d in report.diagnosis}
    assert "input_convention" in found, report.diagnosis
    evidence = found["input_convention"].evidence
    assert evidence["best_convention"] == "raw"
    assert evidence["best_accuracy"] >= evidence["assignment_accuracy"] + 0.4
    assert evidence["input_layers"] == ["rescale_pixels"]
    assert "'rescale_pixels' (Rescaling)" in found["input_convention"].message
    assert report.metrics is not None and report.score < report.max_score  # probes never count


def test_bgr_trained_model_is_told_so(variants: dict, subset: Subset) -> None:
    report = _grade(variants["bgr"], subset)
    found = {d.code: d for d in report.diagnosis}
    if report.status == "passed":  # colour order barely matters to this network: nothing to say
        assert "input_convention" not in found
        return
    assert found["input_convention"].evidence["best_convention"] == "bgr", report.diagnosis


def test_untrained_copy_is_called_untrained_or_collapsed(variants: dict, subset: Subset) -> None:
    report = _grade(variants["untrained"], subset)
    assert report.status == "failed"
    codes = _codes(report)
    assert codes and codes[0] in {"untrained", "constant_predictions", "collapsed_predictions"}
    assert "input_convention" not in codes


def test_constant_output_is_named_with_its_class(variants: dict, subset: Subset) -> None:
    report = _grade(variants["constant"], subset)
    found = {d.code: d for d in report.diagnosis}
    assert found["constant_predictions"].evidence == {"class": "ship", "share": 1.0, "images": N}
    assert (
        "predicts 'ship' for 100.0 % of the 1,000 test images"
        in found["constant_predictions"].message
    )


@pytest.mark.parametrize("action", ["flag", "zero"])
def test_memorised_test_images_are_flagged(variants: dict, subset: Subset, action: str) -> None:
    from grader.spec import Integrity

    report = _grade(variants["memorised"], subset, integrity=Integrity(action=action))
    verdict = report.integrity
    assert verdict is not None and verdict.flagged, verdict
    assert verdict.accuracy == 1.0 and verdict.drop > 0.5
    assert "memorised" in verdict.message
    if action == "zero":
        assert report.score == 0 and report.status == "failed"
    else:
        assert report.score > 0


def test_the_cli_text_says_why(variants: dict, subset: Subset) -> None:
    from grader.render import render_text

    text = render_text(_grade(variants["constant"], subset), "constant.keras")
    assert "Why the accuracy is low" in text and "predicts 'ship'" in text


def test_wrong_number_of_classes_is_a_failed_grade_that_says_so(
    variants: dict, subset: Subset
) -> None:
    report = _grade(variants["five_classes"], subset)
    assert report.status == "failed" and report.reason is None  # graded, not refused
    assert _codes(report) == ["wrong_class_count"]
    found = report.diagnosis[0]
    assert found.evidence == {"outputs": 5, "classes": 10, "last_layer": "head"}
    assert "gives 5 scores per image (its last layer, 'head', is a Dense)" in found.message
    assert report.metrics is not None and report.metrics.accuracy == 0.0
    assert sum(map(sum, report.metrics.confusion_matrix)) == 0
    assert report.probes is None  # probes of five scores would mean nothing
    output_check = next(c for c in report.checks if c.name == "Output shape")
    assert not output_check.passed


def test_nan_outputs_are_a_failed_grade_that_says_so(variants: dict, subset: Subset) -> None:
    report = _grade(variants["nan"], subset)
    assert report.status == "failed" and report.reason is None
    assert _codes(report) == ["non_finite_outputs"]
    assert report.diagnosis[0].evidence == {"images": N, "non_finite_images": N, "share": 1.0}
    assert report.metrics is not None and report.metrics.accuracy == 0.0
    assert report.probes is None


def test_outputs_that_overflow_on_some_images_count_those_as_wrong(
    variants: dict, subset: Subset
) -> None:
    import json

    report = _grade(variants["overflow"], subset)
    assert report.status == "failed"
    found = {d.code: d for d in report.diagnosis}
    evidence = found["non_finite_outputs"].evidence
    assert 0 < evidence["non_finite_images"] < N
    # Rows with infinity are wrong; the finite ones all say class 0 (equal scores).
    bright = (subset.images().reshape(N, -1).astype(np.float64) / 255).sum(axis=1) * 2.5e35
    finite = bright < np.finfo(np.float32).max * 0.99
    expected = np.mean(finite & (subset.labels == 0))
    assert report.metrics is not None
    assert abs(report.metrics.accuracy - expected) <= 5 / N  # float32 rounding at the edge
    json.dumps(report.model_dump(mode="json"), allow_nan=False)  # nothing non-finite left
