"""Feature maps of the student's own model, through real sandboxes (cold and warm,
Keras 3 and tf-keras): the layers and shapes Keras itself gives, drawn as PNG grids,
and nothing at all when the spec turns them off. The hostile side of the channel (what
a payload may write into the output folder) is tested in tests/test_verdict.py."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from testutil import first_test_images, shipped_spec

from grader import data
from grader.pipeline import grade_file
from grader.render import render_text
from grader.report import Report
from grader.sandbox import WarmEvaluator, verdict
from grader.sandbox import launcher as sandbox_launcher
from grader.spec import Feedback

FIXTURE = Path(__file__).parent / "fixtures" / "day097_cifar10.keras"
N = 64


@pytest.fixture(scope="module")
def subset(tmp_path_factory: pytest.TempPathFactory) -> data.TestSet:
    return first_test_images(tmp_path_factory.mktemp("cifar"), N)


@pytest.fixture(scope="module")
def separable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Day 96 separable exercise, built as the lesson does."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((224, 224, 3)),
            # Named: Keras numbers unnamed layers per process, so the names would
            # depend on which tests ran before.
            keras.layers.SeparableConv2D(32, 3, name="separable_conv2d"),
            keras.layers.SeparableConv2D(64, 3, name="separable_conv2d_1"),
        ]
    )
    path = tmp_path_factory.mktemp("day96") / "separable.keras"
    model.save(path)
    return path


def keras_maps(model, keras) -> list[tuple[str, list[int]]]:
    """What Keras says (``keras``: Keras 3 or tf_keras): every convolution and pooling
    layer (nested models walked into) with its own output shape, in model order."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += keras_maps(layer, keras)
        elif sandbox_launcher._fmap_layer(layer):
            found.append((layer.name, [int(d) for d in layer.output.shape[1:]]))
    return found


def shown(report: Report) -> list[tuple[str, list[int]]]:
    assert report.feature_maps is not None, report.reason
    return [(layer.name, layer.shape) for layer in report.feature_maps.layers]


def png_size(uri: str) -> tuple[int, int]:
    from PIL import Image

    assert uri.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as image:
        assert image.format == "PNG"
        return image.size


@pytest.fixture(scope="module")
def fixture_report(subset: data.TestSet) -> Report:
    return grade_file(FIXTURE, shipped_spec("day097-cifar10"), test_set=subset)


def test_trained_fixture_shows_keras_own_layers_and_shapes(fixture_report: Report) -> None:
    import keras

    expected = keras_maps(keras.saving.load_model(FIXTURE, compile=False), keras)
    assert len(expected) == 9  # six convolutions, three poolings
    assert fixture_report.status == "passed"
    assert shown(fixture_report) == expected
    maps = fixture_report.feature_maps
    assert maps is not None and maps.source == "CIFAR-10 test images 1 and 2"
    assert len(maps.inputs) == 2 and all(png_size(u) == (64, 64) for u in maps.inputs)
    # The maps shrink (32 → 4) while the channels grow (32 → 256), as the lesson says.
    sides = [layer.shape[0] for layer in maps.layers]
    assert sides == sorted(sides, reverse=True) and sides[0] == 32 and sides[-1] == 4
    assert maps.layers[0].shape[2] == 32 and maps.layers[-1].shape[2] == 256
    for layer in maps.layers:
        assert layer.channels_shown == min(8, layer.shape[2])
        assert len(layer.images) == 2
        width, height = png_size(layer.images[0])
        scale = height // layer.tile[0]
        assert height == layer.tile[0] * scale  # drawn in proportion to the real size
        assert width == layer.channels_shown * (layer.tile[1] * scale + 2) - 2
        assert height == layer.shape[0] * 2  # 64 px for the 32 px input: 2 px a pixel
    assert len(fixture_report.model_dump_json()) < 400_000
    assert "feature_maps" in fixture_report.timings


def test_the_cli_names_each_layer_with_w_h_c(fixture_report: Report) -> None:
    text = render_text(fixture_report, "day097_cifar10.keras")
    assert "Feature maps" in text and "conv2d (Conv2D): 32×32×32" in text
    assert "separable_conv2d_2 (SeparableConv2D): 4×4×256" in text


def test_day96_maps_come_back_cold_and_warm_alike_and_the_flag_turns_them_off(
    separable: Path,
) -> None:
    spec = shipped_spec("day096-separable")
    cold = grade_file(separable, spec)
    assert cold.status == "passed"
    assert shown(cold) == [
        ("separable_conv2d", [222, 222, 32]),
        ("separable_conv2d_1", [220, 220, 64]),
    ]
    assert cold.feature_maps is not None
    # Averaged down to at most 48 px a side (222 → 44), drawn at about 64 px.
    assert [layer.tile for layer in cold.feature_maps.layers] == [[44, 44], [44, 44]]
    assert png_size(cold.feature_maps.layers[0].images[0])[1] == 44

    with WarmEvaluator() as warm:
        hot = grade_file(separable, spec, evaluator=warm)
        assert warm.stats["warm_jobs"] == 1
    assert hot.feature_maps == cold.feature_maps  # the same pictures, byte for byte

    off = spec.model_copy(update={"feedback": Feedback(feature_maps=False)})
    quiet = grade_file(separable, off)
    assert quiet.status == "passed" and quiet.feature_maps is None
    assert "feature_maps" not in quiet.timings


def test_keras2_files_get_feature_maps_through_tf_keras(
    keras2_files: Path, subset: data.TestSet
) -> None:
    import tf_keras

    spec = shipped_spec("day097-cifar10")
    for name, count in (("cifar_nested", 2), ("cifar_functional", 5)):
        path = keras2_files / f"{name}.h5"
        report = grade_file(path, spec, test_set=subset)
        assert report.status != "not_gradable", report.reason
        model = tf_keras.models.load_model(path, compile=False)
        expected = keras_maps(model, tf_keras)
        assert len(expected) == count  # the nested backbone's two layers are walked into
        assert shown(report) == expected


def test_the_launcher_keeps_within_the_caps_the_trusted_side_enforces() -> None:
    for cap in ("FMAP_MAX_LAYERS", "FMAP_MAX_CHANNELS", "FMAP_MAX_SIDE"):
        assert getattr(sandbox_launcher, cap) == getattr(verdict, cap)
    big = np.ones((2, 222, 222, 64), np.float32)
    small = sandbox_launcher._shrink(big, np)
    assert small.shape == (2, 44, 44, 8) and small.dtype == np.float32


def test_a_map_far_larger_than_the_input_is_drawn_at_a_bounded_size(tmp_path: Path) -> None:
    """An upsampling layer (a Conv2DTranspose with a large stride passes inspection) must
    not make the trusted side build a huge picture before the size budget is checked."""
    from types import SimpleNamespace

    from PIL import Image

    from grader import featuremaps
    from grader.sandbox.verdict import FMAP_MAX_SIDE, FeatureMapArray

    images = tmp_path / "inputs.npy"
    np.save(images, featuremaps.synthetic_images(32, 32))
    inputs = featuremaps.FeatureInputs(images, "synthetic")
    huge = (32 * 512, 32 * 512, 8)  # what the layer reports: 16,384 pixels a side
    layer = SimpleNamespace(name="up", type="Conv2DTranspose", output_shape=[None, *huge])
    values = np.random.default_rng(0).random((2, FMAP_MAX_SIDE, FMAP_MAX_SIDE, 8), np.float32)
    fmap = FeatureMapArray("up", "Conv2DTranspose", huge, values)
    shown = featuremaps._render(inputs, [fmap], SimpleNamespace(layers=[layer]))
    (drawn,) = shown.layers
    for uri in drawn.images:
        png = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
        assert max(png.size) <= 8 * (2 * featuremaps.DISPLAY_SIDE + 8), png.size
