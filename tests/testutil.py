"""Paths and loaders shared by the test modules (conftest.py holds only fixtures:
several conftest modules exist, so tests must not import from one)."""

from __future__ import annotations

import os
from pathlib import Path

from grader.data import TestSet
from grader.spec import AssignmentSpec, find_spec

REPO = Path(__file__).resolve().parent.parent
ASSIGNMENTS = REPO / "assignments"
SHARED_CIFAR10 = REPO.parent / "shared" / "data" / "cifar10"


def real_cifar10() -> Path | None:
    """The real CIFAR-10 folder beside the checkout, or $GRADER_CIFAR10."""
    configured = os.environ.get("GRADER_CIFAR10")
    for candidate in (Path(configured) if configured else None, SHARED_CIFAR10):
        if candidate is not None and candidate.exists():
            return candidate
    return None


def first_test_images(folder: Path, n: int) -> TestSet:
    """The first ``n`` real CIFAR-10 test images as a test set of their own (a reduced
    evaluation); skips the test when the real CIFAR-10 is not here."""
    import numpy as np
    import pytest

    from grader.data import TestSet, find_test_set

    source = real_cifar10()
    if source is None:
        pytest.skip("real CIFAR-10 not found (set GRADER_CIFAR10 or add ../shared/data/cifar10)")
    full = find_test_set(source, None)
    path = folder / f"first{n}.npy"
    np.save(path, np.ascontiguousarray(full.images()[:n]))
    return TestSet(images_path=path, labels=full.labels[:n], source=f"first {n:,} test images")


def shipped_spec(assignment_id: str) -> AssignmentSpec:
    return find_spec(assignment_id, ASSIGNMENTS)
