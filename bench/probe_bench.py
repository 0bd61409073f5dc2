"""How much the probes add to an evaluation (issues 12 and 13 ask for it).

Runs the trained fixture through a fresh sandbox on the full CIFAR-10 test set,
alternating with and without the probes, and prints the medians. The diagnosis
probes (other input conventions) and the generalisation probes (flip, shift) are
also timed apart.

    python bench/probe_bench.py [--runs 3] [--data ../shared/data/cifar10]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from grader import probes
from grader.data import find_test_set
from grader.sandbox import SandboxLimits, evaluate_model
from grader.settings import get_settings
from grader.spec import Preprocessing

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "day097_cifar10.keras"


def once(images: Path, chosen: tuple[str, ...]) -> tuple[float, float]:
    """Wall seconds of one evaluation, and the sandbox's own probe time."""
    started = time.perf_counter()
    result = evaluate_model(
        FIXTURE, images, scale=1 / 255, offset=0.0,
        limits=SandboxLimits.from_settings(get_settings()),
        probes=chosen, probe_images=probes.PROBE_IMAGES if chosen else 0,
    )  # fmt: skip
    return time.perf_counter() - started, result.timings.get("probes", 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    test_set = find_test_set(args.data, get_settings().cifar10)
    everything = probes.plan(Preprocessing(scale=1 / 255, offset=0.0))
    conventions = tuple(p for p in everything if p not in probes.GENERALISATION)
    variants = {
        "without probes": (),
        "diagnosis probes only": conventions,
        "generalisation probes only": probes.GENERALISATION,
        "all probes (what grading runs)": everything,
    }
    walls: dict[str, list[float]] = {name: [] for name in variants}
    probe_time: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.runs):
        for name, chosen in variants.items():
            wall, spent = once(test_set.images_path, chosen)
            walls[name].append(wall)
            probe_time[name].append(spent)
    base = statistics.median(walls["without probes"])
    print(f"{len(test_set.labels):,} test images, {probes.PROBE_IMAGES} per probe, "
          f"median of {args.runs} runs, fresh sandbox per run")  # fmt: skip
    for name in variants:
        wall = statistics.median(walls[name])
        inside = statistics.median(probe_time[name])
        share = inside / base * 100
        print(f"  {name:32s} {wall:6.2f} s  (+{(wall / base - 1) * 100:5.1f} %; "
              f"probes {inside:.2f} s = {share:.1f} % of the evaluation)")  # fmt: skip


if __name__ == "__main__":
    main()
