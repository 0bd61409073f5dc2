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


def save(model: Any, path: Path) -> Path:
    model.save(path)
    return path
