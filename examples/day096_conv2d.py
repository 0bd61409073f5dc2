"""Sample solution for day096-conv2d: two Conv2D layers on a 224×224 RGB image.

    python examples/day096_conv2d.py [OUTPUT]   # default: day096_conv2d.keras
"""

import sys

import keras
from keras import layers


def build() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input(shape=(224, 224, 3)),
            layers.Conv2D(32, (3, 3), strides=1, padding="valid"),  # (None, 222, 222, 32), 896
            layers.Conv2D(64, (3, 3), strides=1, padding="valid"),  # (None, 220, 220, 64), 18,496
        ]
    )


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "day096_conv2d.keras"
    model = build()
    model.summary()
    model.save(out)
    print(f"saved {out}")
