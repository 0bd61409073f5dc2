"""Paths and loaders shared by the test modules (conftest.py holds only fixtures:
several conftest modules exist, so tests must not import from one)."""

from __future__ import annotations

import os
from pathlib import Path

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


def shipped_spec(assignment_id: str) -> AssignmentSpec:
    return find_spec(assignment_id, ASSIGNMENTS)
