"""Limits and locations, overridable by environment variables (``GRADER_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

MB = 1024 * 1024


class Settings(BaseSettings):
    """Everything an operator may tune; defaults are safe for untrusted uploads."""

    model_config = SettingsConfigDict(env_prefix="GRADER_", extra="ignore")

    # Static inspection
    max_upload_bytes: int = 200 * MB
    max_params: int = 50_000_000
    max_uncompressed_bytes: int = 1024 * MB
    max_compression_ratio: float = 200.0
    max_layers: int = 1500  # layers and graph operations; NASNetLarge has 1,040
    max_nesting_depth: int = 20
    max_activation_bytes: int = 512 * MB  # the largest tensor inside the model, per image
    max_flops: int = 50_000_000_000  # estimated floating-point operations per image
    inspect_timeout_seconds: float = 10.0  # wall clock for the whole static inspection
    inspect_memory_bytes: int = 1024 * MB  # address space the inspection may add

    # Sandbox
    sandbox_memory_bytes: int = 4096 * MB
    sandbox_cpu_seconds: int = 600
    sandbox_wall_seconds: int = 300
    sandbox_max_processes: int = 256
    sandbox_max_file_bytes: int = 64 * MB
    predict_batch_size: int = 500

    # Jobs
    max_tries: int = 3  # tries before a job failing for infrastructure reasons is set to error
    queue_test_delay: float = 0.0  # tests only: seconds to sleep inside an evaluation

    # Data
    cifar10: Path | None = None
    assignments_dir: Path = Path(__file__).resolve().parent.parent / "assignments"


def get_settings() -> Settings:
    return Settings()
