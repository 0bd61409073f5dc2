"""The static analysis agrees with Keras on every supported layer, without loading Keras.

Each model is built with real Keras; the shapes and parameter counts inferred
from its saved configuration must equal what Keras itself reports.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from grader.errors import NotGradable
from grader.inspection.architecture import analyse


def _models():
    import keras
    from keras import layers

    def functional_resnet_block():
        inputs = keras.Input((32, 32, 3))
        x = layers.Rescaling(1 / 255)(inputs)
        x = layers.RandomFlip("horizontal")(x)
        x = layers.ZeroPadding2D(((1, 2), (0, 1)))(x)
        x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(x)
        a = layers.BatchNormalization(center=False)(x)
        b = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(a)
        b = layers.Conv2D(16, 1)(b)
        x = layers.Add()([a, b])
        x = layers.ReLU()(x)
        c = layers.AveragePooling2D(3, strides=2, padding="same")(x)
        d = layers.MaxPooling2D(2)(x)
        x = layers.Concatenate()([c, layers.Resizing(c.shape[1], c.shape[2])(d)])
        x = layers.SeparableConv2D(24, (3, 5), dilation_rate=1, padding="valid")(x)
        x = layers.UpSampling2D(2)(x)
        x = layers.LayerNormalization()(x)
        x = layers.GlobalMaxPooling2D(keepdims=True)(x)
        x = layers.Flatten()(x)
        x = layers.Dropout(0.3)(x)
        x = layers.Dense(10)(x)
        outputs = layers.Softmax()(x)
        return keras.Model(inputs, outputs)

    def nested_frozen():
        backbone = keras.Sequential(
            [
                keras.Input((32, 32, 8)),
                layers.Conv2D(8, 3, padding="same"),
                layers.BatchNormalization(),
            ],
            name="backbone",
        )
        backbone.trainable = False
        inputs = keras.Input((32, 32, 3))
        x = layers.Conv2D(8, 3, padding="same")(inputs)
        x = backbone(x)
        x = layers.Reshape((-1, 8))(x)
        x = layers.Dense(4, activation="relu")(x)  # Dense on a 3-D tensor
        x = layers.Flatten()(x)
        return keras.Model(inputs, layers.Dense(10, activation="softmax")(x))

    def grouped_and_shared():
        inputs = keras.Input((16, 16, 4))
        shared = layers.Conv2D(4, 3, padding="same", groups=2)
        x = shared(inputs)
        x = shared(x)  # the same weights used twice: counted once
        x = layers.SpatialDropout2D(0.1)(x)
        x = layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, layers.Dense(10)(x))

    return {
        "functional_resnet_block": functional_resnet_block,
        "nested_frozen": nested_frozen,
        "grouped_and_shared": grouped_and_shared,
    }


def _keras_layers(model):
    """Keras's own (type, output shape, params, trainable params), flattened like the grader."""
    import keras

    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            inner = _keras_layers(layer)
            rows.extend(
                (t, s, p, tp if model.trainable and layer.trainable else 0) for t, s, p, tp in inner
            )
        elif type(layer).__name__ != "InputLayer":
            trainable = sum(int(w.numpy().size) for w in layer.trainable_weights)
            rows.append(
                (type(layer).__name__, tuple(layer.output.shape), layer.count_params(), trainable)
            )
    return rows


@pytest.mark.parametrize("name", ["functional_resnet_block", "nested_frozen", "grouped_and_shared"])
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_inferred_architecture_equals_keras(name: str, suffix: str, tmp_path: Path) -> None:
    import h5py

    model = _models()[name]()
    path = tmp_path / f"{name}{suffix}"
    model.save(path)
    if suffix == ".keras":
        config = json.loads(zipfile.ZipFile(path).read("config.json"))
    else:
        with h5py.File(path, "r") as handle:
            config = json.loads(handle.attrs["model_config"])
    arch = analyse(config)
    inferred = [(x.type, x.output_shape, x.params, x.trainable_params) for x in arch.layers]
    assert inferred == _keras_layers(model)
    assert arch.total_params == model.count_params()
    assert arch.output_shape == tuple(model.output.shape)


def test_activation_must_be_a_builtin_name() -> None:
    config = {
        "class_name": "Sequential",
        "config": {
            "layers": [
                {"class_name": "InputLayer", "config": {"batch_shape": [None, 8]}},
                {"class_name": "Dense", "config": {"units": 2, "activation": "os.system"}},
            ]
        },
    }
    with pytest.raises(NotGradable, match="not a built-in Keras activation"):
        analyse(config)


def test_window_larger_than_the_feature_map_is_refused() -> None:
    config = {
        "class_name": "Sequential",
        "config": {
            "layers": [
                {"class_name": "InputLayer", "config": {"batch_shape": [None, 4, 4, 3]}},
                {"class_name": "Conv2D", "config": {"filters": 2, "kernel_size": [5, 5]}},
            ]
        },
    }
    with pytest.raises(NotGradable, match="does not fit a feature map of size 4"):
        analyse(config)


def _config_of(model) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.keras"
        model.save(path)
        return json.loads(zipfile.ZipFile(path).read("config.json"))


@pytest.fixture(scope="module", params=["functional_resnet_block", "nested_frozen"])
def real_config(request: pytest.FixtureRequest) -> dict:
    return _config_of(_models()[request.param]())


def test_mutated_configurations_are_analysed_or_refused_never_crash(real_config: dict) -> None:
    """Hostile configs: every random corruption ends in an Architecture or NotGradable."""
    import copy
    import random

    rng = random.Random(1234)
    replacements = [None, -1, 0, 10**15, "x", [], {}, [None], {"class_name": "Lambda"}, 1.5, True]

    def nodes(tree, path=()):
        yield path
        if isinstance(tree, dict):
            for key, value in tree.items():
                yield from nodes(value, (*path, key))
        elif isinstance(tree, list):
            for index, value in enumerate(tree):
                yield from nodes(value, (*path, index))

    paths = list(nodes(real_config))[1:]
    for _ in range(1000):
        config = copy.deepcopy(real_config)
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(paths)
            parent = config
            try:
                for step in path[:-1]:
                    parent = parent[step]
                parent[path[-1]] = rng.choice(replacements)
            except (KeyError, IndexError, TypeError):
                continue
        try:
            analyse(config)
        except NotGradable as exc:
            assert exc.reason and "Traceback" not in exc.reason
