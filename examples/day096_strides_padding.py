"""Sample solution for day096-strides-padding: strides, "same" padding and depth_multiplier.

    python examples/day096_strides_padding.py [OUTPUT]   # default: day096_strides_padding.keras

A Conv2D with 128 filters, a 3×3 kernel, stride 2 and padding="same" on a 224×224 RGB
image, then a SeparableConv2D with 256 filters, a 3×3 kernel, stride 2, padding="valid"
and depth_multiplier=2.
"""

from __future__ import annotations

import argparse
import sys


def build():  # -> keras.Model (keras imported here: slow, and not needed for --help)
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=(224, 224, 3)),
            # "same", stride 2: ⌈224 / 2⌉ = 112 -> (None, 112, 112, 128);
            # (3·3·3 + 1)·128 = 3,584 parameters
            layers.Conv2D(filters=128, kernel_size=(3, 3), padding="same", strides=2),
            # "valid", stride 2: ⌊(112 − 3) / 2⌋ + 1 = 55 -> (None, 55, 55, 256);
            # depthwise 3·3·128·2 = 2,304, pointwise 128·2·256 = 65,536, bias 256: 68,096
            layers.SeparableConv2D(
                filters=256, kernel_size=(3, 3), padding="valid", strides=2, depth_multiplier=2
            ),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "output",
        nargs="?",
        default="day096_strides_padding.keras",
        help="where to save the model, a .keras file (default: %(default)s)",
    )
    parser.add_argument("--quiet", action="store_true", help="no model summary")
    args = parser.parse_args(argv)
    if not args.output.endswith(".keras"):
        parser.error(f"the output must be a .keras file, not {args.output!r}")
    model = build()
    if not args.quiet:
        model.summary()
    try:
        model.save(args.output)
    except OSError as exc:
        parser.exit(1, f"cannot save {args.output}: {exc.strerror or exc}\n")
    print(f"saved {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
