"""Architecture checks on real Keras files: right answers pass, each mistake is named."""

from __future__ import annotations

from pathlib import Path

import pytest
from models import conv_stack, save
from testutil import shipped_spec

from grader.checks import architecture_checks
from grader.pipeline import grade_file, inspect_file
from grader.report import Check


def _checks(model_path: Path, assignment: str, settings) -> list[Check]:
    spec = shipped_spec(assignment)
    arch = inspect_file(model_path, spec, settings).architecture
    return architecture_checks(spec, arch)


def _failures(checks: list[Check]) -> list[str]:
    return [f"{c.name}: {c.message}" for c in checks if not c.passed]


@pytest.mark.parametrize(
    ("assignment", "layer"), [("day096-conv2d", "Conv2D"), ("day096-separable", "SeparableConv2D")]
)
def test_right_answer_passes_through_the_whole_pipeline(
    assignment: str, layer: str, model_dir: Path, settings
) -> None:
    path = save(conv_stack(layer), model_dir / f"right-{layer}.keras")
    report = grade_file(path, shipped_spec(assignment), settings=settings)
    assert report.status == "passed", report.reason or _failures(report.checks)
    assert report.score == report.max_score == 100
    shapes = [tuple(layer.output_shape) for layer in report.model.layers]
    assert shapes == [(None, 222, 222, 32), (None, 220, 220, 64)]
    expected_params = [896, 18496] if layer == "Conv2D" else [155, 2400]
    assert [layer.params for layer in report.model.layers] == expected_params
    assert report.model.total_params == sum(expected_params)
    assert {"inspect", "load", "total"} <= set(report.timings)


@pytest.mark.parametrize(
    ("variant", "failing_check", "message"),
    [
        ({"padding": "same"}, "Layer 1: Conv2D", "padding: expected 'valid', yours 'same'"),
        ({"filters": (16, 64)}, "Layer 1: Conv2D", "filters: expected 32, yours 16"),
        ({"strides": 2}, "Layer 1: Conv2D", "strides: expected [1, 1], yours [2, 2]"),
        ({"kernel": 5}, "Layer 2: Conv2D", "kernel size: expected [3, 3], yours [5, 5]"),
        (
            {"types": ("Conv2D", "SeparableConv2D")},
            "Layer 2: Conv2D",
            "Layer type: expected Conv2D, yours SeparableConv2D",
        ),
    ],
)
def test_conv2d_mistakes_are_named(
    variant: dict, failing_check: str, message: str, model_dir: Path, settings
) -> None:
    path = save(conv_stack(**variant), model_dir / f"wrong-{abs(hash(str(variant)))}.keras")
    checks = _checks(path, "day096-conv2d", settings)
    failed = {c.name: c for c in checks if not c.passed}
    assert failing_check in failed, _failures(checks)
    assert message in failed[failing_check].message
    assert failed[failing_check].expected is not None and failed[failing_check].actual is not None


def test_padding_mistake_also_shows_shapes_and_parameters(model_dir: Path, settings) -> None:
    path = save(conv_stack(padding="same"), model_dir / "same.keras")
    checks = {c.name: c for c in _checks(path, "day096-conv2d", settings)}
    assert "output shape: expected (None, 222, 222, 32), yours (None, 224, 224, 32)" in (
        checks["Layer 1: Conv2D"].message
    )
    assert checks["Total parameters"].passed  # same padding does not change parameters


def test_wrong_depth_multiplier_is_named(model_dir: Path, settings) -> None:
    path = save(conv_stack("SeparableConv2D", depth_multiplier=2), model_dir / "dm2.keras")
    checks = {c.name: c for c in _checks(path, "day096-separable", settings)}
    layer1 = checks["Layer 1: SeparableConv2D"]
    assert not layer1.passed
    assert "depth multiplier: expected 1, yours 2" in layer1.message
    params = checks["Parameters of layer 1 (SeparableConv2D)"]
    assert (params.expected, params.actual) == (155, 3 * 3 * 3 * 2 + 3 * 2 * 32 + 32)


def test_extra_layer_is_reported_once_not_as_a_cascade(model_dir: Path, settings) -> None:
    from keras import layers

    path = save(conv_stack(extra=[layers.Conv2D(8, 1)]), model_dir / "extra.keras")
    checks = _checks(path, "day096-conv2d", settings)
    failed = [c for c in checks if not c.passed]
    extra = [c for c in failed if c.name.startswith("Extra layer")]
    assert len(extra) == 1 and "is not part of the expected architecture" in extra[0].message
    assert all(c.passed for c in checks if c.name.startswith("Layer "))


def test_missing_layer_is_reported(model_dir: Path, settings) -> None:
    path = save(conv_stack(filters=(32,)), model_dir / "missing.keras")
    failed = {c.name: c for c in _checks(path, "day096-conv2d", settings) if not c.passed}
    assert "Missing layer" in failed["Layer 2: Conv2D"].message


def _comparable(report) -> tuple:
    checks = [(c.name, c.passed, str(c.expected), str(c.actual)) for c in report.checks]
    layers = [(x.type, tuple(x.output_shape), x.params) for x in report.model.layers]
    return report.status, report.score, checks, layers


def test_sequential_functional_keras_and_h5_grade_the_same(model_dir: Path, settings) -> None:
    spec = shipped_spec("day096-separable")
    reports = []
    for functional in (False, True):
        model = conv_stack("SeparableConv2D", padding="same", functional=functional)
        for suffix in (".keras", ".h5"):
            path = save(model, model_dir / f"same-{functional}{suffix}")
            reports.append(grade_file(path, spec, settings=settings))
    formats = [r.model.format for r in reports]
    assert formats == ["keras", "h5", "keras", "h5"]
    first = _comparable(reports[0])
    assert first[0] == "failed"  # padding="same" is wrong for this assignment
    assert all(_comparable(r) == first for r in reports[1:])


def test_cifar_constraints(model_dir: Path, settings) -> None:
    from keras import layers

    only_conv = conv_stack(
        filters=(8,), input_shape=(32, 32, 3),
        extra=[layers.GlobalAveragePooling2D(), layers.Dense(10)],
    )  # fmt: skip
    path = save(only_conv, model_dir / "only-conv.keras")
    failed = {c.name: c for c in _checks(path, "day097-cifar10", settings) if not c.passed}
    assert set(failed) == {"Number of SeparableConv2D layers"}
    assert failed["Number of SeparableConv2D layers"].actual == 0


def test_input_that_does_not_fit_is_not_gradable(model_dir: Path, settings) -> None:
    path = save(conv_stack(input_shape=(32, 32, 3)), model_dir / "small-input.keras")
    report = grade_file(path, shipped_spec("day096-conv2d"), settings=settings)
    assert report.status == "not_gradable"
    assert "(None, 32, 32, 3)" in report.reason and "(None, 224, 224, 3)" in report.reason


def test_every_answer_is_scored_over_the_same_checks(model_dir: Path, settings) -> None:
    """Wrong, missing or extra layers never change the number of checks (the denominators)."""
    from keras import layers

    variants = {
        "right": conv_stack(),
        "wrong_type": conv_stack(types=("SeparableConv2D", "Conv2D")),
        "missing": conv_stack(filters=(32,)),
        "extra": conv_stack(extra=[layers.Conv2D(8, 1)]),
    }
    counts = {}
    for name, model in variants.items():
        path = save(model, model_dir / f"denominator-{name}.keras")
        checks = _checks(path, "day096-conv2d", settings)
        counts[name] = {
            group: sum(c.group == group for c in checks if not c.name.startswith("Extra layer"))
            for group in ("architecture", "parameters")
        }
    assert all(c == counts["right"] for c in counts.values()), counts
