"""The generalisation probe's false-positive rate on honest models (issue 13).

Every model here is honest: none has seen the test set. Each is evaluated the way
grading does it (a fresh sandbox, the full test set plus the flip and shift probes on
the first 300 images), and judged by ``grader.integrity.judge`` at the default
threshold. Any flag is a false positive.

* the shipped trained fixture (``tests/fixtures/day097_cifar10.keras``: 12 epochs,
  with the example's RandomFlip + RandomTranslation augmentation);
* ``examples/train_cifar10.py --quick`` (1 epoch on the first 5,000 training images,
  4,500 after the held-out split), as shipped: with augmentation;
* the same quick run without augmentation: the script's own ``main`` with ``build``
  swapped for one that leaves out the two augmentation layers (the script has no
  switch for it). One epoch on 4,500 images leaves BatchNormalization's moving
  statistics near their initial values, so both quick models answer one class
  whatever the image: they show only that a chance-level model is not flagged;
* so also that augmentation-free network trained for real: 3 epochs on the 45,000
  training images (the script's defaults otherwise) — without augmentation a network
  has never seen a mirrored or shifted image, the honest case most likely to drop;
* untrained ``keras.applications`` networks (``weights=None``, 32×32 input, 10 classes).

The trained files are made once, in ``test-artifacts/integrity-bench/`` (ignored by
git); delete them to retrain.

    python bench/integrity_bench.py [--data ../shared/data/cifar10] [--images N]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path
from typing import Any

import numpy as np

from grader import probes
from grader.data import find_test_set
from grader.integrity import judge
from grader.metrics import score_predictions
from grader.sandbox import SandboxLimits, evaluate_model
from grader.settings import get_settings
from grader.spec import Integrity
from grader.units import pct

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "day097_cifar10.keras"
CACHE = ROOT / "test-artifacts" / "integrity-bench"
APPLICATIONS = ("MobileNetV2", "ResNet50", "DenseNet121", "EfficientNetB0")


def _example() -> Any:
    spec = importlib.util.spec_from_file_location(
        "train_cifar10", ROOT / "examples" / "train_cifar10.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _train(out: Path, data: Path | None, augment: bool, *options: str) -> Path:
    """``train_cifar10.py`` with ``options``, with or without its augmentation layers."""
    if out.exists():
        return out
    example = _example()
    if not augment:
        with_augmentation = example.build

        def build(seed: int = 0) -> Any:
            import keras

            model = with_augmentation(seed)
            x = inputs = keras.Input(shape=(32, 32, 3))
            for layer in model.layers[1:]:  # a chain: Input, RandomFlip, RandomTranslation, ...
                if not layer.name.startswith(("random_flip", "random_translation")):
                    x = layer(x)
            return keras.Model(inputs, x, name="day097_cifar10_no_augmentation")

        example.build = build
    argv = [*options, "--out", str(out)] + (["--data", str(data)] if data else [])
    example.main(argv)
    return out


def _application(name: str) -> Path:
    out = CACHE / f"{name}.keras"
    if not out.exists():
        import keras

        keras.utils.set_random_seed(0)
        model = getattr(keras.applications, name)(weights=None, input_shape=(32, 32, 3), classes=10)
        model.save(out)
    return out


def measure(path: Path, images: Path, labels: np.ndarray) -> dict[str, Any]:
    started = time.perf_counter()
    result = evaluate_model(
        path, images, scale=1 / 255, offset=0.0,
        limits=SandboxLimits.from_settings(get_settings()),
        probes=probes.GENERALISATION, probe_images=probes.PROBE_IMAGES,
    )  # fmt: skip
    assert result.predictions is not None
    metrics = score_predictions(result.predictions, labels)
    probed = probes.score_probes(result.probes, probes.GENERALISATION, result.predictions, labels)
    verdict = judge(Integrity(), probed)
    assert probed is not None and verdict is not None
    return {
        "params": result.total_params,
        "accuracy": metrics.accuracy,
        "probe_accuracy": probed.accuracy,
        "flip": probed.variants["flip"],
        "shift": probed.variants["shift"],
        "drop": verdict.drop,
        "flagged": verdict.flagged,
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="CIFAR-10 (test and train)")
    parser.add_argument("--images", type=int, default=None, help="first N test images only")
    args = parser.parse_args()
    settings = get_settings()
    test_set = find_test_set(args.data, settings.cifar10)
    images, labels = test_set.images_path, test_set.labels
    if args.images:
        images = CACHE / f"test-{args.images}.npy"
        np.save(images, test_set.images()[: args.images])
        labels = labels[: args.images]
    CACHE.mkdir(parents=True, exist_ok=True)
    train = args.data or settings.cifar10
    models = {
        "fixture (12 epochs, augmented)": FIXTURE,
        "quick mode, augmented": _train(CACHE / "quick-augmented.keras", train, True, "--quick"),
        "quick mode, no augmentation": _train(CACHE / "quick-plain.keras", train, False, "--quick"),
        "no augmentation, 3 epochs": _train(
            CACHE / "plain-3-epochs.keras", train, False, "--epochs", "3"
        ),
        **{f"{name} (untrained)": _application(name) for name in APPLICATIONS},
    }
    rule = Integrity()
    print(f"{len(labels):,} test images; probes on the first {probes.PROBE_IMAGES}; "
          f"flagged when the drop exceeds {rule.max_drop:g}")  # fmt: skip
    print(f"{'model':34s} {'params':>10s} {'accuracy':>9s} {'first 300':>9s} {'flip':>7s} "
          f"{'shift':>7s} {'drop':>6s}  flagged")  # fmt: skip
    flagged = 0
    for name, path in models.items():
        row = measure(path, images, labels)
        flagged += row["flagged"]
        print(
            f"{name:34s} {row['params']:>10,} {pct(row['accuracy']):>9s} "
            f"{pct(row['probe_accuracy']):>9s} {pct(row['flip']):>7s} {pct(row['shift']):>7s} "
            f"{row['drop'] * 100:5.1f}  {'YES' if row['flagged'] else 'no'}"
            f"   ({row['seconds']:.0f} s)",
            flush=True,
        )
    print(f"false positives: {flagged} of {len(models)} honest models")


if __name__ == "__main__":
    main()
