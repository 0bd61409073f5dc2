"""The spec self-test: every shipped spec names its reference solution, the reference
passes its spec, and a spec generated from the reference reproduces the shipped one.

A spec can never ship that its own solution fails. The references are the build scripts
in examples/ (their ``build()``, built here with Keras) and, for CIFAR-10, the kept
trained fixture. The day096-strides-padding numbers are cross-checked three ways: the
spec, the lesson's formulas computed here, and what Keras builds.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from testutil import ASSIGNMENTS, REPO, real_cifar10

from grader.authoring import Options, generate, verify
from grader.data import find_test_set
from grader.pipeline import grade_file
from grader.sandbox import WarmEvaluator, sandbox_status
from grader.settings import Settings
from grader.spec import AssignmentSpec, list_specs

SPECS = {spec.id: spec for spec in list_specs(ASSIGNMENTS)}
#: Authored text, not derived from the reference: left out of the field-by-field comparison.
AUTHORED = {"id", "title", "description", "reference"}


def _script(path: Path) -> ModuleType:
    loaded = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each spec's reference as a model file: built from its script, or the kept file."""
    folder = tmp_path_factory.mktemp("references")
    out = {}
    for spec_id, spec in SPECS.items():
        assert spec.reference, f"{spec_id} names no reference solution"
        source = REPO / spec.reference
        if source.suffix == ".py":
            path = folder / f"{spec_id}.keras"
            _script(source).build().save(path)
            out[spec_id] = path
        else:
            out[spec_id] = source
    return out


def _options(spec: AssignmentSpec) -> Options:
    """What an instructor types for this spec: the mode and the thresholds (numbers no
    reference can tell); everything else is left to the generator's defaults."""
    block = spec.evaluation
    return Options(
        assignment_id=spec.id,
        mode="exact" if spec.layers else "budget",
        min_accuracy=block.min_accuracy if block else None,
        target_accuracy=block.target_accuracy if block else None,
        max_params=spec.total_params.max if spec.total_params and not spec.layers else None,
    )


def test_every_spec_names_a_reference_that_exists() -> None:
    assert len(SPECS) >= 4
    for spec_id, spec in SPECS.items():
        assert spec.reference, f"{spec_id}: no reference"
        path = REPO / spec.reference
        assert path.is_file(), f"{spec_id}: {spec.reference} does not exist"
        if path.suffix == ".py":
            assert path.parent == REPO / "examples", f"{spec_id}: build scripts live in examples/"
        else:
            assert spec.evaluation is not None, f"{spec_id}: only trained models are kept"


@pytest.fixture(scope="module")
def evaluator() -> Iterator[WarmEvaluator]:
    """One warm sandbox for every reference: TensorFlow is imported once."""
    ok, why = sandbox_status()
    if not ok:
        pytest.skip(f"no sandbox here to grade in full: {why}")
    with WarmEvaluator() as warm:
        yield warm


def _slow_if_evaluated(spec_id: str) -> Any:
    marks = [pytest.mark.slow] if SPECS[spec_id].evaluation is not None else []
    return pytest.param(spec_id, marks=marks)


def test_every_reference_passes_its_spec_statically(
    references: dict[str, Path], settings: Settings
) -> None:
    """The checks that need no run (all of them but accuracy), in under a second each."""
    for spec_id, spec in SPECS.items():
        static = verify(references[spec_id], spec, settings)
        assert static.passed, f"{spec_id}: {static.reason()}"


@pytest.mark.parametrize("spec_id", [_slow_if_evaluated(s) for s in sorted(SPECS)])
def test_reference_passes_its_spec(
    spec_id: str, references: dict[str, Path], settings: Settings, evaluator: WarmEvaluator
) -> None:
    """Graded in full as a student's file is: in the sandbox (for CIFAR-10, on the real
    test set, where it is here)."""
    spec, model = SPECS[spec_id], references[spec_id]
    test_set = None
    if spec.evaluation is not None:
        data = real_cifar10()
        if data is None:
            pytest.skip("the real CIFAR-10 is not here (GRADER_CIFAR10)")
        test_set = find_test_set(data)
    report = grade_file(model, spec, settings=settings, test_set=test_set, evaluator=evaluator)
    assert report.status == "passed", (report.reason, [c for c in report.checks if not c.passed])
    assert report.score == report.max_score or spec.evaluation is not None


@pytest.mark.parametrize("spec_id", sorted(SPECS))
def test_generated_spec_reproduces_the_shipped_one(
    spec_id: str, references: dict[str, Path], settings: Settings
) -> None:
    shipped = SPECS[spec_id]
    generated = generate(references[spec_id], _options(shipped), settings).spec
    want = shipped.model_dump()
    have = generated.model_dump()
    for field in AssignmentSpec.model_fields:
        if field in AUTHORED:
            continue
        assert have[field] == want[field], f"{spec_id}: field {field} differs"


def _same(size: int, stride: int) -> int:
    return math.ceil(size / stride)


def _valid(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


def test_strides_padding_numbers_match_the_lesson_formulas_and_keras(
    references: dict[str, Path],
) -> None:
    spec = SPECS["day096-strides-padding"]
    assert spec.layers is not None and spec.total_params is not None
    conv, separable = spec.layers
    # The lesson's parameters, as the issue states them.
    assert (conv.type, conv.filters, conv.kernel_size, conv.padding, conv.strides) == (
        "Conv2D", 128, [3, 3], "same", [2, 2],
    )  # fmt: skip
    assert (separable.type, separable.depth_multiplier) == ("SeparableConv2D", 2)

    # The formulas, computed here from the spec's own settings.
    side1 = _same(224, conv.strides[0])
    k, s, dm = separable.kernel_size[0], separable.strides[0], separable.depth_multiplier
    side2 = _valid(side1, k, s) if separable.padding == "valid" else _same(side1, s)
    params1 = 3 * 3 * 3 * 128 + 128
    params2 = k * k * 128 * dm + 128 * dm * separable.filters + separable.filters
    assert conv.output_shape == [None, side1, side1, 128] and conv.params == params1
    assert separable.output_shape == [None, side2, side2, separable.filters]
    assert separable.params == params2
    assert spec.total_params.exact == params1 + params2

    # What Keras builds from the sample solution.
    import keras

    model = keras.saving.load_model(references["day096-strides-padding"], compile=False)
    built: list[tuple[Any, ...]] = [
        (type(layer).__name__, list(layer.output.shape), layer.count_params())
        for layer in model.layers
    ]
    assert built == [(x.type, x.output_shape, x.params) for x in spec.layers]
    assert model.count_params() == spec.total_params.exact


@pytest.mark.parametrize("script", sorted((REPO / "examples").glob("*.py")), ids=lambda p: p.name)
def test_every_example_script_has_a_help(script: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:") and "Traceback" not in result.stderr


def test_a_build_script_refuses_a_bad_output_without_a_traceback(tmp_path: Path) -> None:
    script = REPO / "examples" / "day096_strides_padding.py"
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "model.h5")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "must be a .keras file" in result.stderr
    assert "Traceback" not in result.stderr
