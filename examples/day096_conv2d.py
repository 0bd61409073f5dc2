"""Sample solution for day096-conv2d: two Conv2D layers on a 224×224 RGB image.

python examples/day096_conv2d.py [OUTPUT]   # default: day096_conv2d.keras
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
            layers.Conv2D(32, (3, 3), strides=1, padding="valid"),  # (None, 222, 222, 32), 896
            layers.Conv2D(64, (3, 3), strides=1, padding="valid"),  # (None, 220, 220, 64), 18,496
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "output",
        nargs="?",
        default="day096_conv2d.keras",
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
