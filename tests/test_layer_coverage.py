"""Every Keras layer is classified, and the static inference equals Keras on every supported one.

The list of layers and operations is enumerated from Keras at test time, so a
new Keras release with a new layer fails here until it is classified. Each
supported layer is built in real Keras from ``layer_samples``, saved to a real
``.keras`` file, and the grader's inference (no Keras) must give Keras' own
output shapes and per-layer, trainable and total parameter counts.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from layer_samples import KERAS_CANNOT_BUILD, LAYER_SAMPLES, op_samples

from grader.errors import NotGradable
from grader.inspection import catalog
from grader.inspection.architecture import ALLOWED_ACTIVATIONS, Limits, analyse
from grader.inspection.modelfile import read_model_file
from grader.settings import Settings

OP_MODULES = ("numpy", "nn", "math", "core", "image", "linalg")


def _keras_layer_classes() -> dict[str, type]:
    import keras

    return {
        cls.__name__: cls
        for name in dir(keras.layers)
        if inspect.isclass(cls := getattr(keras.layers, name))
    }


def _keras_rows(model) -> list[tuple]:
    """Keras's own (type, output shape, params, trainable params), flattened like the grader."""
    import keras

    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            inner = _keras_rows(layer)
            rows.extend((t, s, p, tp if layer.trainable else 0) for t, s, p, tp in inner)
        elif type(layer).__name__ != "InputLayer":
            trainable = sum(int(w.numpy().size) for w in layer.trainable_weights)
            output = layer.output[0] if isinstance(layer.output, list) else layer.output
            shape = tuple(output.shape)  # the table shows the first of several outputs
            rows.append((type(layer).__name__, shape, layer.count_params(), trainable))
    return rows


def _inferred(path: Path, limits: Limits | None = None):
    return analyse(read_model_file(path, Settings()).model_config, limits or Limits())


def _assert_same(model, path: Path) -> None:
    model.save(path)
    arch = _inferred(path)
    inferred = [(x.type, x.output_shape, x.params, x.trainable_params) for x in arch.layers]
    assert inferred == _keras_rows(model)
    assert arch.total_params == model.count_params()
    assert arch.output_shape == tuple(model.outputs[0].shape)


def test_every_keras_layer_is_supported_or_refused_with_a_reason() -> None:
    unclassified = [
        name
        for name in _keras_layer_classes()
        if name not in catalog.LAYERS and name not in catalog.REFUSED
    ]
    assert unclassified == [], "classify these new Keras layers in grader/inspection/catalog.py"


def test_aliases_name_the_class_keras_builds() -> None:
    import keras

    for name, cls in _keras_layer_classes().items():
        if name != cls.__name__:
            assert catalog.ALIASES.get(name) == cls.__name__, name
        if name in catalog.ALIASES:
            assert getattr(keras.layers, name).__name__ == catalog.ALIASES[name]


def test_every_supported_layer_has_a_differential_sample() -> None:
    classes = _keras_layer_classes()
    supported = {cls.__name__ for name, cls in classes.items() if name in catalog.LAYERS}
    missing = sorted(supported - set(LAYER_SAMPLES) - set(KERAS_CANNOT_BUILD) - {"InputLayer"})
    assert missing == []


@pytest.mark.parametrize("name", sorted(KERAS_CANNOT_BUILD))
def test_layers_without_a_sample_still_cannot_be_built_by_keras(name: str) -> None:
    import keras

    with pytest.raises(ValueError, match="cycle"):
        keras.Sequential([keras.Input((8, 8, 3)), getattr(keras.layers, name)()])


def test_every_builtin_activation_is_allowed() -> None:
    import keras

    names = {
        name
        for name, fn in vars(keras.activations).items()
        if callable(fn) and not name.startswith("_") and name not in ("get", "serialize",
                                                                      "deserialize")
    }  # fmt: skip
    assert sorted(names - ALLOWED_ACTIVATIONS) == []


def _samples() -> list:
    return [
        pytest.param(name, i, id=f"{name}-{i}")
        for name, samples in LAYER_SAMPLES.items()
        for i in range(len(samples))
    ]


@pytest.mark.parametrize(("name", "index"), _samples())
def test_layer_inference_equals_keras(name: str, index: int, tmp_path: Path) -> None:
    import keras

    shape, build = LAYER_SAMPLES[name][index]
    inputs = keras.Input(shape)
    model = keras.Model(inputs, build(keras, inputs))
    _assert_same(model, tmp_path / "m.keras")


@pytest.mark.parametrize(
    ("key", "index"),
    [
        pytest.param(key, i, id=f"{key[0].rsplit('.', 1)[1]}.{key[1]}-{i}")
        for key in sorted(catalog.OPS)
        for i in range(len(op_samples(key[1])))
    ],
)
def test_operation_inference_equals_keras(key: tuple[str, str], index: int, tmp_path) -> None:
    import keras

    shape, build = op_samples(key[1])[index]
    inputs = keras.Input(shape)
    model = keras.Model(inputs, build(keras, inputs))
    ops = {(type(op).__module__, type(op).__name__) for op in model.operations}
    assert key in ops, f"the sample for {key} does not use that operation"
    _assert_same(model, tmp_path / "m.keras")


def _op_graph(module: str, name: str) -> dict:
    """A functional config whose graph uses the operation ``module.name`` on its input."""
    history = {"shape": [None, 4], "dtype": "float32", "keras_history": ["in", 0, 0]}
    return {
        "class_name": "Functional",
        "config": {
            "name": "m",
            "input_layers": ["in", 0, 0],
            "output_layers": ["op", 0, 0],
            "layers": [
                {"class_name": "InputLayer", "name": "in", "module": "keras.layers",
                 "config": {"name": "in", "batch_shape": [None, 4]}, "inbound_nodes": []},
                {"class_name": name, "name": "op", "module": module, "config": {"name": "op"},
                 "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__",
                                              "config": history}], "kwargs": {}}]},
            ],
        },
    }  # fmt: skip


def test_every_keras_operation_is_vetted_or_refused_by_the_allow_list() -> None:
    """Every op class Keras has, in every ops module, goes through the real allow-list:
    a vetted one is analysed, any other is refused with a message naming it."""
    from keras.src.ops.operation import Operation

    seen = 0
    for short in OP_MODULES:
        module = importlib.import_module(f"keras.src.ops.{short}")
        for name, cls in vars(module).items():
            if not (inspect.isclass(cls) and issubclass(cls, Operation)):
                continue
            if cls.__module__ != module.__name__ or (module.__name__, name) in catalog.OPS:
                continue
            seen += 1
            with pytest.raises(NotGradable) as info:
                analyse(_op_graph(module.__name__, name))
            assert name in info.value.reason and "vetted" in info.value.reason
    assert seen > 200  # the enumeration itself found Keras' operations


# --- random CNNs (hypothesis) ------------------------------------------------

_conv = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(
            ["Conv2D", "SeparableConv2D", "DepthwiseConv2D", "Conv2DTranspose"]
        ),
        "filters": st.integers(1, 6),
        "kernel": st.integers(1, 3),
        "strides": st.integers(1, 2),
        "padding": st.sampled_from(["valid", "same"]),
        "dm": st.integers(1, 2),
        "bias": st.booleans(),
    }
)
_other = st.sampled_from(
    ["BatchNormalization", "MaxPooling2D", "Dropout", "ReLU", "LayerNormalization", "PReLU",
     "GroupNormalization", "UpSampling2D", "ZeroPadding2D", "residual", "concat", "add_op"]
)  # fmt: skip


MERGES = ("residual", "concat", "add_op")


def _layer(keras, spec):
    """The layer for a non-merging block."""
    layers = keras.layers
    if isinstance(spec, dict):
        kind, k, s, p = spec["kind"], spec["kernel"], spec["strides"], spec["padding"]
        if kind == "DepthwiseConv2D":
            return layers.DepthwiseConv2D(k, s, p, depth_multiplier=spec["dm"],
                                          use_bias=spec["bias"])  # fmt: skip
        kwargs = {"depth_multiplier": spec["dm"]} if kind == "SeparableConv2D" else {}
        return getattr(layers, kind)(spec["filters"], k, s, p, use_bias=spec["bias"], **kwargs)
    if spec == "MaxPooling2D":
        return layers.MaxPooling2D(2, padding="same")
    if spec == "Dropout":
        return layers.Dropout(0.1)
    if spec == "GroupNormalization":
        return layers.GroupNormalization(groups=1)
    return getattr(layers, spec)()


def _block(keras, x, spec):
    layers = keras.layers
    if spec == "residual":
        return layers.Add()([x, layers.Conv2D(x.shape[-1], 3, padding="same")(x)])
    if spec == "concat":
        return layers.Concatenate()([x, layers.Conv2D(2, 1)(x)])
    if spec == "add_op":
        return x + x * 0.5
    return _layer(keras, spec)(x)


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    blocks=st.lists(st.one_of(_conv, _other), min_size=1, max_size=6),
    size=st.integers(8, 20),
    head=st.sampled_from(["flatten", "gap"]),
    sequential=st.booleans(),
)
def test_random_cnns_are_inferred_like_keras(blocks, size, head, sequential, tmp_path_factory):
    """Random Sequential and functional CNNs from the supported set, against Keras."""
    import keras

    inputs = keras.Input((size, size, 3))
    x, used = inputs, []
    for spec in blocks:
        if x.shape[1] < 4 or (sequential and spec in MERGES):
            continue
        used.append(spec)
        x = _block(keras, x, spec)
    head_layer = (
        keras.layers.Flatten() if head == "flatten" else keras.layers.GlobalAveragePooling2D()
    )
    dense = keras.layers.Dense(10, activation="softmax")
    if sequential:  # rebuilt from fresh layers: the ones above are already called
        fresh = [_layer(keras, spec) for spec in used]
        model = keras.Sequential([keras.Input((size, size, 3)), *fresh, head_layer, dense])
    else:
        model = keras.Model(inputs, dense(head_layer(x)))
    _assert_same(model, tmp_path_factory.mktemp("cnn") / "m.keras")
