"""Pure logic: which worker processes a machine runs, and which GPU each one owns.

Nothing here starts a process or touches a device, so the GPU paths are tested on
machines without one. The rule: one evaluation per GPU at a time. A GPU machine
runs one single-slot evaluate worker per GPU, pinned with ``CUDA_VISIBLE_DEVICES``
and passing only that GPU's device nodes into the sandbox; a CPU machine runs one
evaluate worker with one slot per core it is given. Inspection (no TensorFlow,
under a second) always gets a worker of its own so a refused file is never stuck
behind an evaluation.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from grader.sandbox.policy import gpu_device_paths
from grader.settings import env_name, get_settings

INSPECT, EVALUATE = "inspect", "evaluate"
QUEUES = (INSPECT, EVALUATE)
#: Environment variable telling an evaluate worker which GPU it owns.
GPU_ENV = env_name("worker_gpu")
#: Set on CPU evaluate workers: start the warm sandbox with the worker process.
PREWARM_ENV = env_name("prewarm")
_NVIDIA = re.compile(r"^nvidia(\d+)$")


@dataclass(frozen=True)
class WorkerSpec:
    """One Celery worker process to start: its queues, slots, name and extra env."""

    name: str
    queues: tuple[str, ...]
    concurrency: int
    gpu: int | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def pool(self) -> str:
        """``solo`` for one slot (a kill takes the job with it), else ``prefork``."""
        return "solo" if self.concurrency == 1 else "prefork"


def detect_gpus(listdir: Callable[[str], Iterable[str]] = os.listdir) -> list[int]:
    """NVIDIA GPUs present on this machine, from their ``/dev/nvidiaN`` nodes."""
    try:
        names = listdir("/dev")
    except OSError:
        return []
    return sorted(int(m.group(1)) for n in names if (m := _NVIDIA.match(n)))


def parse_gpus(text: str | None, detected: Callable[[], list[int]] = detect_gpus) -> list[int]:
    """``--gpus``: "" / None = none, "all" = every detected GPU, else "0,2" (no duplicates)."""
    if text is None or not text.strip() or text.strip().lower() == "none":
        return []
    if text.strip().lower() == "all":
        return detected()
    gpus: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not (part.isascii() and part.isdigit()):
            raise ValueError(f"not a GPU index: {part!r} (use e.g. --gpus 0,1)")
        if int(part) not in gpus:
            gpus.append(int(part))
    return gpus


def parse_queues(text: str | None) -> tuple[str, ...]:
    """``--queues``: a comma list of ``inspect``/``evaluate`` (default both)."""
    if not text:
        return QUEUES
    queues = tuple(dict.fromkeys(q.strip() for q in text.split(",") if q.strip()))
    unknown = [q for q in queues if q not in QUEUES]
    if unknown or not queues:
        raise ValueError(f"unknown queue(s) {', '.join(unknown)}; use inspect,evaluate")
    return queues


def cores_available() -> int:
    """Cores this process may use (its CPU affinity, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def gpu_env(gpu: int | None) -> dict[str, str]:
    """Environment pinning a worker to one GPU; ``CUDA_VISIBLE_DEVICES=""`` for CPU workers."""
    if gpu is None:
        return {"CUDA_VISIBLE_DEVICES": "", GPU_ENV: ""}
    return {
        "CUDA_VISIBLE_DEVICES": str(int(gpu)),
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",  # GPU N = /dev/nvidiaN, as nvidia-smi numbers them
        GPU_ENV: str(int(gpu)),
    }


def worker_gpu(env: Mapping[str, str] | None = None) -> int | None:
    """The GPU this worker process owns (``GRADER_WORKER_GPU``), None on a CPU worker;
    ``env``: read from this mapping instead of the settings."""
    if env is None:
        return get_settings().worker_gpu
    value = env.get(GPU_ENV, "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


def sandbox_devices(gpu: int | None, exists: Callable[[str], bool] = os.path.exists) -> list[str]:
    """Device nodes bound into this worker's sandboxes: only its own GPU's (none on CPU)."""
    return [] if gpu is None else gpu_device_paths(gpu, exists)


def plan_workers(
    queues: Iterable[str] = QUEUES,
    *,
    gpus: list[int] | None = None,
    concurrency: int | None = None,
    inspect_concurrency: int = 1,
    prefix: str = "grader",
    host: str | None = None,
    cores: Callable[[], int] = cores_available,
) -> list[WorkerSpec]:
    """The worker processes for one machine.

    ``gpus`` non-empty: one evaluate worker per GPU, one slot each (``concurrency``
    is ignored: a GPU runs one evaluation at a time). Otherwise one evaluate worker
    with ``concurrency`` slots (default: the cores given). Node names are
    ``<prefix>-<role>@<host>``; they must be unique among live workers, which is
    what lets a restarted worker reclaim the jobs its predecessor was running.
    """
    host = host or socket.gethostname()
    wanted = tuple(q for q in QUEUES if q in set(queues))
    plan: list[WorkerSpec] = []
    if INSPECT in wanted:
        plan.append(
            WorkerSpec(
                name=f"{prefix}-inspect@{host}",
                queues=(INSPECT,),
                concurrency=max(1, inspect_concurrency),
                env=gpu_env(None),
            )
        )
    if EVALUATE in wanted:
        if gpus:
            for gpu in gpus:
                plan.append(
                    WorkerSpec(
                        name=f"{prefix}-gpu{gpu}@{host}",
                        queues=(EVALUATE,),
                        concurrency=1,
                        gpu=gpu,
                        env=gpu_env(gpu),
                    )
                )
        else:
            plan.append(
                WorkerSpec(
                    name=f"{prefix}-evaluate@{host}",
                    queues=(EVALUATE,),
                    concurrency=max(1, concurrency or cores()),
                    env={**gpu_env(None), PREWARM_ENV: "1"},
                )
            )
    return plan


def celery_argv(spec: WorkerSpec, python: str, loglevel: str = "INFO") -> list[str]:
    """The command line starting ``spec`` as a Celery worker on the grader's app."""
    return [
        python, "-m", "celery", "-A", "grader.queue.worker_app", "worker",
        "--queues", ",".join(spec.queues),
        "--concurrency", str(spec.concurrency),
        "--pool", spec.pool,
        "--hostname", spec.name,
        "--loglevel", loglevel,
        # Gossip/mingle/heartbeat need broadcast exchanges the SQL broker lacks, and the
        # database, not the workers, is the record of truth.
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
