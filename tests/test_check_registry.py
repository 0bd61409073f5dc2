"""Check types behind one registry: a new one scores without touching the scorer, each runs
only when the spec asks for it, and a refused file is scored out of what a graded one is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from models import cifar_cnn, save
from testutil import shipped_spec

from grader import data
from grader.checks import CHECK_TYPES, CheckType, max_score, register, run_checks, unregister
from grader.inspection.architecture import Architecture, Layer
from grader.inspection.static import Inspection
from grader.pipeline import Evaluation, build_report, grade_file, inspect_file, refusal_report
from grader.report import Check, Metrics
from grader.sandbox import EvaluationResult
from grader.spec import AssignmentSpec, Number, Rubric

BUILT_IN = [type(kind) for kind in CHECK_TYPES]

ARCH = Architecture(
    model_type="Sequential",
    input_shape=(None, 32, 32, 3),
    output_shape=(None, 10),
    layers=[
        Layer("conv", "Conv2D", "conv", (None, 30, 30, 16), 448, 448, {"filters": 16}),
        Layer("flat", "Flatten", "flat", (None, 14400), 0, 0),
        Layer("dense", "Dense", "dense", (None, 10), 144010, 144010, {"units": 10}),
    ],
)
INSPECTION = Inspection(format="keras", keras_version="3.15.1", architecture=ARCH)

# Every block of the spec, each one that the model above passes.
FULL: dict[str, Any] = {
    "output_shape": [None, 10],
    "layers": [
        {"type": "Conv2D", "filters": 16, "params": 448},
        {"type": "Flatten"},
        {"type": "Dense", "units": 10, "params": 144010},
    ],
    "layer_counts": [{"type": "Conv2D", "min": 1}],
    "total_params": {"max": 200000},
    "trainable_params": {"min": 1},
    "evaluation": {"min_accuracy": 0.5, "target_accuracy": 0.8},
}


def _spec(cls: type[AssignmentSpec] = AssignmentSpec, **fields: Any) -> AssignmentSpec:
    return cls.model_validate({"id": "t", "title": "T", "input_shape": [32, 32, 3], **fields})


def _evaluation(spec: AssignmentSpec, accuracy: float = 0.65) -> Evaluation:
    result = EvaluationResult(layers=[], total_params=ARCH.total_params,
                              trainable_params=ARCH.trainable_params, input_shape=None,
                              predictions=None)  # fmt: skip
    metrics = None
    if spec.evaluation is not None:
        metrics = Metrics(accuracy=accuracy, num_images=100, per_class_accuracy={},
                          confusion_matrix=[])  # fmt: skip
    return Evaluation(result=result, metrics=metrics, timings={})


# A new check type, as a course would add one: one class, plus its schema fields (a spec
# block and the points of its group), here in subclasses instead of grader/spec.py.
class DepthRubric(Rubric):
    depth: Number = 20


class DepthSpec(AssignmentSpec):
    max_layers: int | None = None
    rubric: DepthRubric = DepthRubric()


class MaxLayers(CheckType):
    group = "depth"
    field = "max_layers"

    def describe(self, spec: Any) -> str:
        return f"at most {spec.max_layers} layers"

    def run(self, spec: Any, arch: Architecture, metrics: Metrics | None) -> list[Check]:
        ok = len(arch.layers) <= spec.max_layers
        return [Check(name="Depth", group="depth", passed=ok, expected=spec.max_layers,
                      actual=len(arch.layers))]  # fmt: skip


@pytest.fixture
def max_layers() -> Iterator[type[MaxLayers]]:
    register(MaxLayers)
    try:
        yield MaxLayers
    finally:
        unregister(MaxLayers)
    assert [type(kind) for kind in CHECK_TYPES] == BUILT_IN


@pytest.mark.parametrize("limit", [3, 2])
def test_a_registered_type_scores_in_its_own_group(max_layers: type, limit: int) -> None:
    spec = _spec(DepthSpec, total_params={"max": 200000}, max_layers=limit,
                 rubric={"architecture": 50, "parameters": 30, "depth": 20})  # fmt: skip
    report = build_report(spec, INSPECTION, _evaluation(spec))
    assert [c.name for c in report.checks] == ["Total parameters", "Depth"]
    parts = {p.group: (p.points, p.max_points) for p in report.score_breakdown}
    passed = limit >= len(ARCH.layers)
    assert parts == {"parameters": (30.0, 30.0), "depth": (20.0 if passed else 0.0, 20.0)}
    assert report.status == ("passed" if passed else "failed")
    assert report.max_score == 50.0 == refusal_report(spec, "refused").max_score


def test_a_registered_type_without_its_block_gives_no_points(max_layers: type) -> None:
    spec = _spec(DepthSpec, total_params={"max": 200000})
    report = build_report(spec, INSPECTION, _evaluation(spec))
    assert [p.group for p in report.score_breakdown] == ["parameters"]
    assert report.max_score == refusal_report(spec, "refused").max_score == 50.0


def test_the_built_in_types_in_report_order() -> None:
    spec = _spec(**FULL, rubric={"accuracy": 40})
    names = [c.name for c in build_report(spec, INSPECTION, _evaluation(spec)).checks]
    assert names == [
        "Output shape",
        "Layer 1: Conv2D",
        "Parameters of layer 1 (Conv2D)",
        "Layer 2: Flatten",
        "Layer 3: Dense",
        "Parameters of layer 3 (Dense)",
        "Number of Conv2D layers",
        "Total parameters",
        "Trainable parameters",
        "CIFAR-10 test accuracy",
    ]
    assert all(kind.describe(spec) for kind in CHECK_TYPES)


@pytest.mark.parametrize("kind", CHECK_TYPES, ids=lambda kind: type(kind).__name__)
def test_a_type_applies_only_when_the_spec_has_its_block(kind: CheckType) -> None:
    assert kind.applies(_spec(**FULL))
    without = {k: v for k, v in FULL.items() if k != kind.field}
    spec = _spec(**without)
    assert not kind.applies(spec)
    assert kind.groups(spec) == ()
    assert not kind.applies(_spec())


def test_a_spec_without_blocks_has_no_checks_and_no_points() -> None:
    spec = _spec()
    assert run_checks(spec, ARCH, None) == []
    assert max_score(spec) == 0.0 == build_report(spec, INSPECTION, _evaluation(spec)).max_score


points = st.one_of(st.integers(0, 100), st.floats(0, 100, allow_nan=False))


@st.composite
def specs(draw: st.DrawFn) -> AssignmentSpec:
    blocks = draw(st.sets(st.sampled_from(sorted(FULL))))
    fields = {k: FULL[k] for k in blocks}
    if "layers" in fields and draw(st.booleans()):  # a layer list without parameters
        fields["layers"] = [{"type": x["type"]} for x in FULL["layers"]]
    rubric = {"architecture": draw(points), "parameters": draw(points),
              "credit_at_min": draw(st.floats(0, 1))}  # fmt: skip
    if "evaluation" in fields:
        rubric["accuracy"] = draw(points)
    return _spec(**fields, rubric=rubric)


@hsettings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), accuracy=st.floats(0, 1))
def test_a_refusal_is_scored_out_of_what_a_graded_file_could_earn(
    spec: AssignmentSpec, accuracy: float
) -> None:
    graded = build_report(spec, INSPECTION, _evaluation(spec, accuracy))
    refused = refusal_report(spec, "refused")
    assert refused.max_score == graded.max_score == max_score(spec)
    rubric = spec.rubric
    if {"architecture", "parameters"} <= {c.group for c in graded.checks}:  # as it always was
        old = rubric.architecture + rubric.parameters + (rubric.accuracy if spec.evaluation else 0)
        assert refused.max_score == float(old)


def test_grade_file_composes_the_phases(tmp_path: Path, settings: Any) -> None:
    """The phases in order, and a refusal after the sandbox ran keeps its device and timings."""
    spec = shipped_spec("day097-cifar10")
    path = save(cifar_cnn(), tmp_path / "cnn.keras")
    arch = inspect_file(path, spec, settings).architecture
    labels = np.arange(20) % 10
    test_set = data.TestSet(images_path=tmp_path / "unused.npy", labels=labels, source="test")

    def evaluator(*_args: Any, total: int = arch.total_params, **_kwargs: Any) -> EvaluationResult:
        return EvaluationResult(
            layers=[{"type": x.type, "params": x.params} for x in arch.layers],
            total_params=total, trainable_params=arch.trainable_params, input_shape=None,
            predictions=np.eye(10)[labels], timings={"load": 0.5, "predict": 0.25}, device="gpu:0",
        )  # fmt: skip

    phases: list[str] = []
    report = grade_file(path, spec, settings=settings, test_set=test_set,
                        evaluator=evaluator, on_phase=phases.append)  # fmt: skip
    assert phases == ["inspecting", "evaluating", "scoring"]
    assert report.status == "passed" and report.score == report.max_score == 100
    assert report.device == "gpu:0" and report.metrics is not None
    assert list(report.timings) == ["inspect", "load", "predict", "score", "total"]

    def tampered(*args: Any, **kwargs: Any) -> EvaluationResult:
        return evaluator(*args, total=arch.total_params + 1, **kwargs)

    refused = grade_file(path, spec, settings=settings, test_set=test_set, evaluator=tampered)
    assert refused.status == "not_gradable" and "inconsistent" in (refused.reason or "")
    assert refused.device == "gpu:0" and refused.max_score == 100
    assert list(refused.timings) == ["inspect", "load", "predict", "total"]
    assert refused.file_sha256 == report.file_sha256 and refused.model == report.model
