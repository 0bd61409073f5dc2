"""Fixtures shared by the grading-core tests: settings and a folder for model files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from grader.settings import Settings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")
