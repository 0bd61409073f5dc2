"""Shared fixtures: real Keras model files, the shipped specs, the real CIFAR-10 folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from grader.settings import Settings
from grader.spec import AssignmentSpec, find_spec

REPO = Path(__file__).resolve().parent.parent
ASSIGNMENTS = REPO / "assignments"
SHARED_CIFAR10 = REPO.parent / "shared" / "data" / "cifar10"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def real_cifar10() -> Path | None:
    """The real CIFAR-10 folder beside the checkout, or $GRADER_CIFAR10."""
    configured = os.environ.get("GRADER_CIFAR10")
    for candidate in (Path(configured) if configured else None, SHARED_CIFAR10):
        if candidate is not None and candidate.exists():
            return candidate
    return None


def shipped_spec(assignment_id: str) -> AssignmentSpec:
    return find_spec(assignment_id, ASSIGNMENTS)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")
