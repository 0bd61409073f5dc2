"""Models as a Keras 2 (tf.keras / tf-keras) student writes them, built for either Keras.

``build(k, name)`` uses only API that Keras 2 and Keras 3 share, so the same
function gives a Keras 2 model (``k = tf_keras``) and its Keras 3 twin
(``k = keras``). Run as a script it writes the Keras 2 files with tf-keras,
the way a student on TensorFlow <= 2.15 would (``model.save``)::

    python tests/keras2_models.py OUT_DIR [CIFAR10_DIR]

and, for the trained model, tf-keras's own ``evaluate`` accuracy on the images
the test will grade, so the grader can be held to Keras 2's numbers.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

N_EVAL = 1000  # test images the trained model is evaluated on, by tf-keras and the grader


def build(k: Any, name: str) -> Any:
    layers = k.layers
    if name == "lesson_conv2d":  # the lesson's own style: input_shape= on the first layer
        return k.Sequential([
            layers.Conv2D(filters=32, kernel_size=(3, 3), input_shape=(224, 224, 3)),
            layers.Conv2D(filters=64, kernel_size=(3, 3)),
        ])  # fmt: skip
    if name == "lesson_separable":
        return k.Sequential([
            layers.SeparableConv2D(filters=32, kernel_size=(3, 3), input_shape=(224, 224, 3)),
            layers.SeparableConv2D(filters=64, kernel_size=(3, 3)),
        ])  # fmt: skip
    if name == "lesson_filters128":
        return k.Sequential([
            layers.Conv2D(filters=128, kernel_size=(3, 3), input_shape=(224, 224, 3)),
            layers.Conv2D(filters=64, kernel_size=(3, 3)),
        ])  # fmt: skip
    if name == "cifar_functional":
        inputs = k.Input((32, 32, 3))
        x = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D()(x)
        x = layers.SeparableConv2D(32, 3, padding="same", depth_multiplier=2,
                                   activation="relu")(x)  # fmt: skip
        x = layers.DepthwiseConv2D(3, padding="same")(x)
        x = layers.AveragePooling2D(2)(x)
        x = layers.Dropout(0.2)(x)
        x = layers.GlobalAveragePooling2D()(x)
        return k.Model(inputs, layers.Dense(10, activation="softmax")(x))
    if name == "cifar_nested":  # a backbone model and an augmentation block, nested
        aug = k.Sequential([layers.RandomFlip("horizontal")], name="augment")
        backbone_in = k.Input((32, 32, 3))
        y = layers.Conv2D(8, 3, strides=2, activation="relu")(backbone_in)
        y = layers.SeparableConv2D(16, 3, activation="relu")(y)
        backbone = k.Model(backbone_in, y, name="backbone")
        inputs = k.Input((32, 32, 3))
        x = layers.GlobalAveragePooling2D()(backbone(aug(inputs)))
        return k.Model(inputs, layers.Dense(10, activation="softmax")(x))
    raise KeyError(name)


# (name, assignment) pairs graded by the tests; the trained one also on CIFAR-10.
GRADED = [
    ("lesson_conv2d", "day096-conv2d"),
    ("lesson_separable", "day096-separable"),
    ("lesson_filters128", "day096-conv2d"),
    ("cifar_functional", "day097-cifar10"),
    ("cifar_nested", "day097-cifar10"),
]
ASSIGNMENTS = ("day096-conv2d", "day096-separable", "day097-cifar10")


def preprocess(images: Any) -> Any:
    """Exactly what the grader feeds for day097-cifar10: float32 x * (1/255)."""
    import numpy as np

    return images.astype(np.float32) * np.float32(1 / 255)


def _cifar(data: Path | None) -> tuple[Any, Any, Any, Any]:
    import numpy as np

    if data is not None and (data / "train.npz").exists():
        train, test = np.load(data / "train.npz"), np.load(data / "test.npz")
        return train["x"][:4000], train["y"][:4000].reshape(-1), test["x"], test["y"].reshape(-1)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N_EVAL, 32, 32, 3), dtype=np.uint8)
    return images, rng.integers(0, 10, N_EVAL), images, rng.integers(0, 10, N_EVAL)


def _lambda_model(k: Any, marker: Path) -> Any:
    """A Keras 2 Lambda holds marshalled bytecode: loading the .h5 would run it."""
    code = f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]"
    return k.Sequential([k.layers.Lambda(eval(code), input_shape=(32, 32, 3)),
                         k.layers.Conv2D(4, 3), k.layers.SeparableConv2D(4, 3),
                         k.layers.GlobalAveragePooling2D(), k.layers.Dense(10)])  # fmt: skip


def main(out: Path, data: Path | None) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tf_keras as k

    k.utils.set_random_seed(0)
    out.mkdir(parents=True, exist_ok=True)
    x_train, y_train, x_test, y_test = _cifar(data)
    for name, _ in GRADED:
        model = build(k, name)
        if name == "cifar_functional":
            model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
            model.fit(preprocess(x_train), y_train, epochs=1, batch_size=64, verbose=0)
            _, accuracy = model.evaluate(preprocess(x_test[:N_EVAL]), y_test[:N_EVAL], verbose=0)
            (out / "cifar_functional.accuracy.json").write_text(json.dumps(accuracy))
            np.save(out / "eval_images.npy", x_test[:N_EVAL])
            np.save(out / "eval_labels.npy", y_test[:N_EVAL])
        np.savez(out / f"{name}.weights.npz", *model.get_weights())
        model.save(out / f"{name}.h5")
        model.save(out / f"{name}.keras")
    _lambda_model(k, out / "PWNED").save(out / "lambda.h5")
    (out / "PWNED").unlink(missing_ok=True)  # building the model ran it once, here
    (out / "keras_version.txt").write_text(k.__version__)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None)
