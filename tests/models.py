"""Builders of real Keras models for the tests (imported lazily: Keras is slow to import)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def conv_stack(
    layer: str = "Conv2D",
    *,
    filters: tuple[int, ...] = (32, 64),
    kernel: int = 3,
    strides: int = 1,
    padding: str = "valid",
    depth_multiplier: int = 1,
    input_shape: tuple[int, int, int] = (224, 224, 3),
    functional: bool = False,
    extra: list[Any] | None = None,
    types: tuple[str, ...] | None = None,
) -> Any:
    """The Day 96 network and its variations: the right answer by default."""
    import keras
    from keras import layers

    made = []
    for i, f in enumerate(filters):
        kind = types[i] if types else layer
        kwargs: dict[str, Any] = {"strides": strides, "padding": padding}
        if kind == "SeparableConv2D":
            kwargs["depth_multiplier"] = depth_multiplier
        made.append(getattr(layers, kind)(f, kernel, **kwargs))
    made.extend(extra or [])
    if not functional:
        return keras.Sequential([keras.Input(shape=input_shape), *made])
    inputs = keras.Input(shape=input_shape)
    x = inputs
    for lay in made:
        x = lay(x)
    return keras.Model(inputs, x)


def cifar_cnn(seed: int = 0, *, softmax: bool = True) -> Any:
    """A small CNN of the course's kind with fixed random weights."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input(shape=(32, 32, 3)),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.BatchNormalization(),
            layers.MaxPooling2D(),
            layers.SeparableConv2D(32, 3, padding="same", activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(10, activation="softmax" if softmax else None),
        ]
    )


def memoriser(images: Any, labels: Any) -> Any:
    """A nearest-neighbour lookup of ``images`` (uint8 NHWC) held in Dense weights: 100 %
    on exactly those images, chance on any other; the integrity checks' cheat."""
    import keras
    import numpy as np

    flat = np.asarray(images).reshape(len(images), -1).astype(np.float32) / 255
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Flatten(),
            keras.layers.Dense(len(flat), activation="softmax", name="lookup"),
            keras.layers.Dense(10, use_bias=False, name="labels"),
        ]
    )
    model.get_layer("lookup").set_weights([flat.T * 4, -2 * (flat**2).sum(axis=1)])
    model.get_layer("labels").set_weights(
        [np.eye(10, dtype=np.float32)[np.asarray(labels).astype(np.int64)]]
    )
    return model


def save(model: Any, path: Path) -> Path:
    model.save(path)
    return path


def homework_variants() -> dict[str, Any]:
    """CIFAR-10 CNNs as students write them, each with Conv2D, SeparableConv2D and one
    less common built-in layer or graph operation (issue 10's list of refused models)."""
    import keras
    from keras import layers

    def cnn(*middle: Any, head: Any = None) -> Any:
        def build() -> Any:
            inputs = keras.Input((32, 32, 3))
            x = inputs
            for step in (lambda t: layers.Conv2D(8, 3, padding="same", activation="relu")(t),
                         *middle,
                         lambda t: layers.SeparableConv2D(16, 3, padding="same")(t)):  # fmt: skip
                x = step(x)
            x = head(x) if head else layers.GlobalAveragePooling2D()(x)
            return keras.Model(inputs, layers.Dense(10, activation="softmax")(x))

        return build

    def normalization() -> Any:
        norm = layers.Normalization()
        norm.adapt(np.random.default_rng(0).random((64, 32, 32, 3), dtype=np.float32))
        inputs = keras.Input((32, 32, 3))
        x = layers.SeparableConv2D(8, 3, activation="relu")(layers.Conv2D(8, 3)(norm(inputs)))
        x = layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, layers.Dense(10, activation="softmax")(x))

    def attention_head(x: Any) -> Any:
        x = layers.Reshape((-1, x.shape[-1]))(x)
        x = layers.MultiHeadAttention(num_heads=2, key_dim=8)(x, x)
        return layers.GlobalAveragePooling1D()(x)

    import numpy as np

    return {
        "normalization": normalization,
        "prelu_groupnorm": cnn(lambda t: layers.PReLU()(t),
                               lambda t: layers.GroupNormalization(groups=4)(t)),
        "conv2d_transpose": cnn(lambda t: layers.Conv2DTranspose(8, 3, strides=2)(t)),
        "cropping_permute": cnn(lambda t: layers.Cropping2D(2)(t),
                                lambda t: layers.Permute((2, 1, 3))(t)),
        "new_augmentations": cnn(lambda t: layers.RandomGrayscale()(t),
                                 lambda t: layers.RandomHue(0.1)(t),
                                 lambda t: layers.RandomSaturation(0.1)(t),
                                 lambda t: layers.RandomErasing()(t)),
        "unit_normalization": cnn(lambda t: layers.UnitNormalization()(t)),
        "attention_head": cnn(head=attention_head),
        "residual_ops": cnn(lambda t: layers.Conv2D(8, 3, padding="same")(t) + t * 0.5),
    }  # fmt: skip
