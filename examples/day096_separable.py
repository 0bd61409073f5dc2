"""Sample solution for day096-separable: two SeparableConv2D layers on a 224×224 RGB image.

python examples/day096_separable.py [OUTPUT]   # default: day096_separable.keras
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
            # depthwise 3·3·3 = 27, pointwise 3·32 = 96, bias 32: 155 parameters
            layers.SeparableConv2D(32, (3, 3), padding="valid", depth_multiplier=1),
            # depthwise 3·3·32 = 288, pointwise 32·64 = 2,048, bias 64: 2,400 parameters
            layers.SeparableConv2D(64, (3, 3), padding="valid", depth_multiplier=1),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "output",
        nargs="?",
        default="day096_separable.keras",
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
