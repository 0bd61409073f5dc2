"""Fixtures shared by the grading-core tests: settings and a folder for model files."""

from __future__ import annotations

import os
from pathlib import Path

import hypothesis
import pytest

from grader.settings import Settings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# CI sees the same hypothesis examples on every run (a failure there is reproducible);
# locally each run explores new ones.
hypothesis.settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis.settings.load_profile("ci")


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def keras2_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keras 2 files written by tf-keras in this test run (tests/keras2_models.py)."""
    import subprocess
    import sys

    from testutil import REPO, real_cifar10

    pytest.importorskip("tf_keras", reason="tf-keras (Keras 2) is not installed")
    out = tmp_path_factory.mktemp("keras2")
    data = real_cifar10()
    cmd = [sys.executable, str(REPO / "tests" / "keras2_models.py"), str(out)]
    result = subprocess.run([*cmd, *([str(data)] if data else [])], capture_output=True,
                            text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return out
