"""A genuinely trained day097 solution passes on the real CIFAR-10; the training script runs.

The fixture was made by examples/train_cifar10.py (see tests/fixtures/README.md). It
proves, end to end, that an honest student solution of the course's kind clears the
spec's 70 % bar through the sandbox and the grader's own preprocessing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from testutil import REPO, real_cifar10, shipped_spec

from grader.checks import architecture_checks
from grader.data import find_test_set
from grader.pipeline import grade_file, inspect_file
from grader.sandbox import sandbox_status
from grader.settings import Settings

FIXTURE = Path(__file__).parent / "fixtures" / "day097_cifar10.keras"
SCRIPT = REPO / "examples" / "train_cifar10.py"


@pytest.mark.slow
def test_trained_fixture_passes_on_real_cifar10(settings: Settings) -> None:
    data = real_cifar10()
    if data is None:
        reason = "real CIFAR-10 not found (set GRADER_CIFAR10 or add ../shared/data/cifar10)"
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    ok, why = sandbox_status()
    if not ok:
        pytest.skip(f"no sandbox here: {why}")
    assert FIXTURE.exists(), "tests/fixtures/day097_cifar10.keras is missing; see README there"

    report = grade_file(FIXTURE, shipped_spec("day097-cifar10"), settings=settings,
                        test_set=find_test_set(data))  # fmt: skip

    assert report.status == "passed", (report.reason, [c for c in report.checks if not c.passed])
    assert report.metrics is not None and report.metrics.num_images == 10_000
    assert report.metrics.accuracy >= 0.70
    assert report.model.total_params is not None and report.model.total_params <= 1_500_000


def test_training_script_quick_run_saves_a_gradable_model(tmp_path: Path, settings) -> None:
    """--quick on a tiny synthetic train set: the script runs and its model fits the spec."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar"
    folder.mkdir()
    np.savez(folder / "train.npz", x=rng.integers(0, 256, (300, 32, 32, 3), dtype=np.uint8),
             y=rng.integers(0, 10, 300).astype(np.uint8))  # fmt: skip
    out = tmp_path / "model.keras"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--data", str(folder), "--out", str(out)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "after 1 epochs" in result.stdout

    spec = shipped_spec("day097-cifar10")
    arch = inspect_file(out, spec, settings).architecture  # static: allow-list, input shape, caps
    assert all(check.passed for check in architecture_checks(spec, arch))
    assert list(arch.output_shape) == [None, 10]
