"""How much the probes and the feature maps add to an evaluation (issues 12 and 13).

Runs the trained fixture through a fresh sandbox on the full CIFAR-10 test set,
alternating with and without the probes and the feature maps, and prints the medians.
The diagnosis probes (other input conventions), the generalisation probes (flip,
shift) and the feature maps (two images, every convolution and pooling layer) are
also timed apart.

    python bench/probe_bench.py [--runs 3] [--data ../shared/data/cifar10]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from grader import featuremaps, probes
from grader.data import find_test_set
from grader.sandbox import SandboxLimits, evaluate_model
from grader.settings import get_settings
from grader.spec import AssignmentSpec, Preprocessing

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "day097_cifar10.keras"


def once(images: Path, chosen: tuple[str, ...], maps: Path | None) -> tuple[float, float]:
    """Wall seconds of one evaluation, and the sandbox's own probe and feature-map time."""
    started = time.perf_counter()
    result = evaluate_model(
        FIXTURE, images, scale=1 / 255, offset=0.0,
        limits=SandboxLimits.from_settings(get_settings()),
        probes=chosen, probe_images=probes.PROBE_IMAGES if chosen else 0,
        feature_images=maps,
    )  # fmt: skip
    if maps is not None:
        assert result.feature_maps, "no feature maps came back"
    extra = result.timings.get("probes", 0.0) + result.timings.get("feature_maps", 0.0)
    return time.perf_counter() - started, extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    settings = get_settings()
    test_set = find_test_set(args.data, settings.cifar10)
    spec = AssignmentSpec(id="bench", title="bench", input_shape=[32, 32, 3])
    inputs = featuremaps.input_images(spec, test_set, settings)
    assert inputs is not None
    maps = inputs.path
    everything = probes.plan(Preprocessing(scale=1 / 255, offset=0.0))
    conventions = tuple(p for p in everything if p not in probes.GENERALISATION)
    variants = {
        "without probes or feature maps": ((), None),
        "diagnosis probes only": (conventions, None),
        "generalisation probes only": (probes.GENERALISATION, None),
        "all probes": (everything, None),
        "feature maps only": ((), maps),
        "probes + feature maps (grading)": (everything, maps),
    }
    walls: dict[str, list[float]] = {name: [] for name in variants}
    probe_time: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.runs):
        for name, (chosen, with_maps) in variants.items():
            wall, spent = once(test_set.images_path, chosen, with_maps)
            walls[name].append(wall)
            probe_time[name].append(spent)
    base = statistics.median(walls["without probes or feature maps"])
    print(f"{len(test_set.labels):,} test images, {probes.PROBE_IMAGES} per probe, "
          f"median of {args.runs} runs, fresh sandbox per run")  # fmt: skip
    for name in variants:
        wall = statistics.median(walls[name])
        inside = statistics.median(probe_time[name])
        share = inside / base * 100
        print(f"  {name:32s} {wall:6.2f} s  (+{(wall / base - 1) * 100:5.1f} %; "
              f"inside the sandbox {inside:.2f} s = {share:.1f} % of the evaluation)")  # fmt: skip


if __name__ == "__main__":
    main()
