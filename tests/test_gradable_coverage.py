"""Honest models are never "not gradable": keras.applications and homework-style CNNs.

Every function in ``keras.applications`` is built at its smallest input
(weights=None, 10 classes) and the static inference must equal Keras' parameter
count exactly. Homework-style CNNs using the less common layers, and a few
applications under the parameter cap, are graded for real, through the
sandbox, against ``day097-cifar10``: the verdict is passed or failed, never
not_gradable.
"""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
from models import homework_variants
from testutil import shipped_spec

from grader.data import TestSet
from grader.inspection.architecture import Limits, analyse
from grader.pipeline import grade_file
from grader.sandbox import sandbox_status

SIZES = (32, 71, 75)  # the smallest inputs keras.applications accept


def _applications() -> list[str]:
    import keras

    return sorted(
        name
        for name in dir(keras.applications)
        if name[0].isupper() and inspect.isfunction(getattr(keras.applications, name))
    )


def _build(name: str):
    import keras

    error: Exception | None = None
    for size in SIZES:
        try:
            return getattr(keras.applications, name)(
                weights=None, classes=10, input_shape=(size, size, 3)
            )
        except ValueError as exc:  # too small for this architecture: try the next size
            error = exc
    raise AssertionError(f"{name} builds at none of {SIZES}: {error}")


@pytest.mark.parametrize("name", _applications())
def test_application_parameters_equal_keras(name: str) -> None:
    import keras

    model = _build(name)
    config = json.loads(model.to_json())  # exactly the config.json a .keras file holds
    arch = analyse(config, Limits(max_params=10**10))
    assert arch.total_params == model.count_params()
    assert arch.trainable_params == sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert arch.output_shape == tuple(model.output.shape)
    leaves = [
        layer
        for layer in model._flatten_layers(include_self=False)
        if not isinstance(layer, keras.Model) and type(layer).__name__ != "InputLayer"
    ]
    assert sorted(x.type for x in arch.layers) == sorted(type(x).__name__ for x in leaves)


@pytest.fixture(scope="module")
def small_test_set(tmp_path_factory: pytest.TempPathFactory) -> TestSet:
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("cifar-sample")
    np.save(folder / "x.npy", rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8))
    return TestSet(folder / "x.npy", rng.integers(0, 10, 200), "synthetic sample")


def _require_sandbox() -> None:
    ok, why = sandbox_status()
    if not ok:
        pytest.skip(f"no sandbox on this machine: {why}")


# The families issue 10 found refused (x * y ops, Normalization, Cropping2D, LayerScale).
@pytest.mark.parametrize(
    "name",
    ["MobileNetV3Small", "EfficientNetB0", "EfficientNetV2B0", "NASNetMobile", "ConvNeXtTiny"],
)
def test_applications_are_graded_not_refused(name, tmp_path, settings, small_test_set) -> None:
    _require_sandbox()
    path = tmp_path / f"{name}.keras"
    _build(name).save(path)
    report = grade_file(path, shipped_spec("day097-cifar10"), settings=settings,
                        test_set=small_test_set)  # fmt: skip
    assert report.status in ("passed", "failed"), report.reason
    assert report.metrics is not None and report.metrics.num_images == 200


@pytest.mark.parametrize("name", sorted(homework_variants()))
def test_homework_cnns_are_graded_not_refused(name, tmp_path, settings, small_test_set) -> None:
    _require_sandbox()
    model = homework_variants()[name]()
    path = tmp_path / f"{name}.keras"
    model.save(path)
    report = grade_file(path, shipped_spec("day097-cifar10"), settings=settings,
                        test_set=small_test_set)  # fmt: skip
    assert report.status in ("passed", "failed"), report.reason
    assert report.model.total_params == model.count_params()
    checks = {c.name: c for c in report.checks}
    assert checks["Number of Conv2D layers"].passed
