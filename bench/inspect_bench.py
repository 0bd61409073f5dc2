"""How long the static inspection takes: the bounded child, per file, median of N runs.

    python bench/inspect_bench.py [--repeats 10]

Prints one line per file: a refused Lambda file, the trained Day 97 fixture,
keras.applications models saved at their smallest input, and the crafted files
of issue 10 (each must be refused in milliseconds, never reach a sandbox).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import hostile  # noqa: E402

from grader.errors import NotGradable  # noqa: E402
from grader.inspection.static import inspect_model  # noqa: E402
from grader.settings import Settings  # noqa: E402


def _application(name: str, size: int) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        import keras

        path = folder / f"{name}.keras"
        getattr(keras.applications, name)(weights=None, classes=10,
                                          input_shape=(size, size, 3)).save(path)  # fmt: skip
        return path

    return build


def _upsampling_1000(folder: Path) -> Path:
    def edit(config: dict) -> None:
        layers = config["config"]["layers"]
        layers.insert(1, {"module": "keras.layers", "class_name": "UpSampling2D",
                          "config": {"name": "up", "size": [1000, 1000]}})  # fmt: skip

    return hostile._keras_with(folder, "up.keras", **{"config.json": hostile._edited_config(edit)})


FILES: dict[str, Callable[[Path], Path]] = {
    "refused Lambda": hostile.lambda_keras,
    "Day 97 fixture (121,642 params)": lambda _: ROOT / "tests/fixtures/day097_cifar10.keras",
    "MobileNetV3Small 32x32": _application("MobileNetV3Small", 32),
    "NASNetMobile 32x32 (770 layers)": _application("NASNetMobile", 32),
    "refused UpSampling2D(1000)": _upsampling_1000,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    settings = Settings()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, build in FILES.items():
            path = build(Path(tmp))
            times, outcome = [], ""
            for _ in range(args.repeats):
                started = time.perf_counter()
                try:
                    inspection = inspect_model(path, settings)
                    outcome = f"{inspection.architecture.total_params:,} params"
                except NotGradable as exc:
                    outcome = "refused: " + exc.reason[:60]
                times.append(time.perf_counter() - started)
            results[label] = statistics.median(times)
            print(f"{label:34s} {statistics.median(times) * 1000:8.1f} ms  ({outcome})")
    print(json.dumps({k: round(v, 4) for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
