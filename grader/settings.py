"""Every ``GRADER_*`` environment variable: its default and what it means.

The README's configuration table and ``.env.example`` list exactly these
(``tests/test_settings_docs.py`` checks it). Variables that are not the grader's
own (``DATABASE_URL``, ``CELERY_BROKER_URL``, ``SECRET_KEY``, AWS credentials)
are read where they are used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from grader.errors import ConfigurationError

MB = 1024 * 1024
PREFIX = "GRADER_"
DEFAULT_SERVER = "http://127.0.0.1:5000"


class Settings(BaseSettings):
    """Everything an operator may tune; defaults are safe for untrusted uploads.

    An empty variable counts as unset (``GRADER_S3_ENDPOINT=`` means "no endpoint").
    """

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", env_ignore_empty=True)

    # Static inspection
    max_upload_bytes: int = Field(
        200 * MB, description="Largest accepted upload in bytes; larger requests get 413."
    )
    max_params: int = Field(
        50_000_000, description="Most parameters a model may declare before it is refused unloaded."
    )
    max_uncompressed_bytes: int = Field(
        1024 * MB, description="Most bytes a .keras archive may expand to."
    )
    max_compression_ratio: float = Field(
        200.0, description="Highest compression ratio of any archive member (zip-bomb guard)."
    )
    max_layers: int = Field(
        1500, description="Most layers and graph operations in a model (NASNetLarge has 1,040)."
    )
    max_nesting_depth: int = Field(20, description="Deepest nesting of models inside models.")
    max_activation_bytes: int = Field(
        512 * MB, description="Largest tensor inside the model, per image."
    )
    max_flops: int = Field(
        50_000_000_000, description="Estimated floating-point operations per image."
    )
    inspect_timeout_seconds: float = Field(
        10.0, description="Wall clock for the whole static inspection of one file."
    )
    inspect_memory_bytes: int = Field(
        1024 * MB, description="Address space the static inspection may add."
    )

    # Sandbox
    sandbox_memory_bytes: int = Field(
        4096 * MB, description="Address-space limit of one evaluation (GPU runs get >= 64 GiB)."
    )
    sandbox_cpu_seconds: int = Field(600, description="CPU seconds (RLIMIT_CPU) of one evaluation.")
    sandbox_wall_seconds: int = Field(300, description="Wall-clock seconds of one evaluation.")
    sandbox_max_processes: int = Field(
        256, description="RLIMIT_NPROC of the sandbox user (counts threads, all sandboxes)."
    )
    sandbox_max_file_bytes: int = Field(64 * MB, description="Largest file the sandbox may write.")
    predict_batch_size: int = Field(500, description="Images per predict() batch.")
    keras_backend: Literal["tensorflow", "jax", "torch"] = Field(
        "tensorflow",
        description="Keras backend inside the sandbox: tensorflow, jax or torch (Keras 2 "
        "files always run on TensorFlow).",
    )
    sandbox_debug: bool = Field(
        False, description="Print the sandbox's confinement report to stderr (debugging)."
    )

    # Data
    cifar10: Path | None = Field(
        None, description="CIFAR-10 test set (.npz, folder or .tar.gz); else Keras's cache."
    )
    assignments_dir: Path = Field(
        Path(__file__).resolve().parent.parent / "assignments",
        description="Folder of assignment specs (default: the shipped assignments/).",
    )

    # Service: where its state lives
    instance_dir: Path | None = Field(
        None, description="SQLite database, embedded broker and secret key (default ./instance)."
    )
    submissions_dir: Path | None = Field(
        None, description="Upload folder when no S3 bucket is set (default ./submissions)."
    )
    s3_bucket: str | None = Field(
        None, description="Store uploads in this S3 bucket instead of the upload folder."
    )
    s3_endpoint: str | None = Field(
        None, description="S3 endpoint URL (MinIO, ...); unset: AWS S3."
    )
    s3_prefix: str = Field("submissions/", description="Key prefix of uploads in the bucket.")
    s3_cache_dir: Path | None = Field(
        None, description="Local cache of files fetched from S3 (default: a temporary folder)."
    )

    # The course
    course_timezone: str = Field(
        "UTC",
        description="IANA zone the pages show times in; also the zone of a spec deadline "
        "written without an offset and of the daily submission cap (e.g. Europe/Berlin).",
    )
    public_url: str | None = Field(
        None,
        description="The server's address as students reach it, for links printed outside a "
        "request (grader import-roster); unset: GRADER_SERVER.",
    )

    # Jobs and workers
    executor: str | None = Field(
        None,
        description="Overrides the web app's default executor (thread): celery, thread, sync "
        "or none.",
    )
    max_tries: int = Field(
        3,
        ge=1,
        description="Tries before a job failing for infrastructure reasons is set to error.",
    )
    # Must exceed the longest evaluation: a shorter one runs long jobs twice (the claim
    # keeps one result).
    visibility_timeout: int = Field(
        3600, description="Seconds before Redis re-delivers an unacknowledged job."
    )
    watchdog_interval: float = Field(
        10.0, description="Seconds between watchdog sweeps in each worker (0: no watchdog)."
    )
    heartbeat_seconds: float = Field(
        5.0,
        gt=0,
        description="Seconds between a running job's heartbeats; silent for 3 beats, it is lost.",
    )
    watchdog_grace: float = Field(
        120.0, description="Seconds past a job's time limit before the watchdog counts it lost."
    )
    warm: bool = Field(
        True, description="Keep a warm sandboxed TensorFlow process between CPU jobs."
    )
    worker_gpu: int | None = Field(
        None, description="Internal, set by grader worker: the GPU this worker process owns."
    )
    prewarm: bool = Field(
        False, description="Internal, set by grader worker: start the warm sandbox at once."
    )
    queue_test_delay: float = Field(
        0.0, description="Tests only: seconds to sleep inside an evaluation."
    )

    # The HTTP client (grader submit / status reads these through click's envvar)
    server: str = Field(DEFAULT_SERVER, description="Grading server URL of grader submit/status.")
    token: SecretStr | None = Field(
        None, description="API token of grader submit/status (from the account page)."
    )

    @field_validator("course_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name such as Europe/Berlin)"
            ) from None
        return value


def env_name(field: str) -> str:
    """The environment variable of a Settings field: ``max_tries`` -> ``GRADER_MAX_TRIES``."""
    return PREFIX + field.upper()


def get_settings() -> Settings:
    """The settings from the environment; a bad value is a ConfigurationError naming it."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{env_name(str(error['loc'][0])) if error['loc'] else PREFIX}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigurationError(f"invalid environment variable: {problems}") from None
