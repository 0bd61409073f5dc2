"""Sample solution for day096-separable: two SeparableConv2D layers on a 224×224 RGB image.

    python examples/day096_separable.py [OUTPUT]   # default: day096_separable.keras
"""

import sys

import keras
from keras import layers


def build() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input(shape=(224, 224, 3)),
            # depthwise 3·3·3 = 27, pointwise 3·32 = 96, bias 32: 155 parameters
            layers.SeparableConv2D(32, (3, 3), padding="valid", depth_multiplier=1),
            # depthwise 3·3·32 = 288, pointwise 32·64 = 2,048, bias 64: 2,400 parameters
            layers.SeparableConv2D(64, (3, 3), padding="valid", depth_multiplier=1),
        ]
    )


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "day096_separable.keras"
    model = build()
    model.summary()
    model.save(out)
    print(f"saved {out}")
