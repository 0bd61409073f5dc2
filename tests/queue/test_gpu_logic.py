"""GPU paths by their pure logic (no GPU here): device assignment, worker plans, the
environment each worker gets and the devices its sandboxes see."""

from __future__ import annotations

import sys

import pytest

from grader.queue import gpu
from grader.sandbox.policy import SandboxLimits, sandbox_argv

NODES = {"/dev/nvidia0", "/dev/nvidia1", "/dev/nvidiactl", "/dev/nvidia-uvm"}


def test_detect_and_parse_gpus() -> None:
    listing = ["null", "nvidia1", "nvidiactl", "nvidia0", "nvidia-uvm", "nvidia10"]
    assert gpu.detect_gpus(lambda _d: listing) == [0, 1, 10]
    assert gpu.parse_gpus(None) == [] and gpu.parse_gpus("") == [] and gpu.parse_gpus("none") == []
    assert gpu.parse_gpus("all", lambda: [0, 3]) == [0, 3]
    assert gpu.parse_gpus("1, 0,1") == [1, 0]
    with pytest.raises(ValueError):
        gpu.parse_gpus("0,x")
    assert gpu.parse_queues(None) == ("inspect", "evaluate")
    assert gpu.parse_queues("evaluate") == ("evaluate",)
    with pytest.raises(ValueError):
        gpu.parse_queues("inspect,train")


def test_gpu_machine_runs_one_evaluation_per_gpu() -> None:
    plan = gpu.plan_workers(gpus=[0, 1], concurrency=8, host="box")
    assert [(w.name, w.queues, w.concurrency, w.gpu) for w in plan] == [
        ("grader-inspect@box", ("inspect",), 1, None),
        ("grader-gpu0@box", ("evaluate",), 1, 0),
        ("grader-gpu1@box", ("evaluate",), 1, 1),
    ]
    assert plan[1].env["CUDA_VISIBLE_DEVICES"] == "0" and plan[1].env[gpu.GPU_ENV] == "0"
    assert plan[2].env["CUDA_VISIBLE_DEVICES"] == "1"
    assert plan[0].env["CUDA_VISIBLE_DEVICES"] == ""  # inspection never touches a GPU
    assert all(w.pool == "solo" for w in plan)


def test_cpu_machine_runs_one_evaluation_per_core_given() -> None:
    plan = gpu.plan_workers(host="box", cores=lambda: 6)
    assert [(w.name, w.concurrency, w.pool) for w in plan] == [
        ("grader-inspect@box", 1, "solo"),
        ("grader-evaluate@box", 6, "prefork"),
    ]
    only = gpu.plan_workers(["evaluate"], concurrency=2, prefix="serve", host="h")
    assert [(w.name, w.concurrency) for w in only] == [("serve-evaluate@h", 2)]
    assert gpu.cores_available() >= 1


def test_worker_gpu_and_sandbox_devices() -> None:
    assert gpu.worker_gpu({gpu.GPU_ENV: "1"}) == 1
    assert gpu.worker_gpu({gpu.GPU_ENV: ""}) is None and gpu.worker_gpu({}) is None
    assert gpu.sandbox_devices(None, NODES.__contains__) == []
    assert gpu.sandbox_devices(1, NODES.__contains__) == [
        "/dev/nvidia1", "/dev/nvidiactl", "/dev/nvidia-uvm",
    ]  # fmt: skip


def test_sandbox_of_a_gpu_worker_sees_only_its_gpu() -> None:
    limits = SandboxLimits(2**30, 60, 60, 64, 2**24)
    argv = sandbox_argv(
        ["python"], limits=limits, binds=[], gpu=1, device_exists=NODES.__contains__, system=[]
    )
    joined = " ".join(argv)
    assert "/dev/nvidia1" in joined and "/dev/nvidia0" not in joined
    assert "CUDA_VISIBLE_DEVICES 1" in joined
    cpu = " ".join(
        sandbox_argv(["python"], limits=limits, binds=[], device_exists=NODES.__contains__,
                     system=[])
    )  # fmt: skip
    assert "/dev/nvidia" not in cpu


def test_gpu_worker_passes_its_gpu_to_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    from grader.queue import runtime

    monkeypatch.setenv(gpu.GPU_ENV, "1")
    monkeypatch.setattr(runtime, "_evaluators", {})
    evaluate = runtime.evaluator()
    # ... and the worker's Keras backend (GRADER_KERAS_BACKEND, tensorflow by default).
    assert evaluate.keywords == {"gpu": 1, "backend": "tensorflow"}  # type: ignore[attr-defined]
    monkeypatch.setattr(runtime, "_evaluators", {})


def test_celery_command_line() -> None:
    spec = gpu.plan_workers(gpus=[2], host="h")[1]
    argv = gpu.celery_argv(spec, sys.executable)
    assert argv[:6] == [sys.executable, "-m", "celery", "-A", "grader.queue.worker_app", "worker"]
    assert argv[argv.index("--queues") + 1] == "evaluate"
    assert argv[argv.index("--pool") + 1] == "solo"
    assert argv[argv.index("--hostname") + 1] == "grader-gpu2@h"


def test_only_cpu_evaluate_workers_prewarm_their_sandbox() -> None:
    """The warm sandbox (TensorFlow imported once) starts with CPU evaluate workers;
    inspect workers never import TensorFlow and GPU workers use a fresh sandbox per job."""
    cpu = gpu.plan_workers(concurrency=2, host="h")
    gpus = gpu.plan_workers(gpus=[0, 1], host="h")
    assert {s.name: s.env.get(gpu.PREWARM_ENV) for s in cpu} == {
        "grader-inspect@h": None,
        "grader-evaluate@h": "1",
    }
    assert all(s.env.get(gpu.PREWARM_ENV) is None for s in gpus)


def test_warm_sandbox_maps_the_test_set_once(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's warm sandbox is built with the CIFAR-10 images, not a copy per job."""
    import numpy as np

    from grader.queue import runtime

    data = tmp_path / "test.npz"
    np.savez(data, x=np.zeros((4, 32, 32, 3), np.uint8), y=np.arange(4, dtype=np.uint8))
    monkeypatch.setenv("GRADER_CIFAR10", str(data))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(gpu.GPU_ENV, raising=False)
    monkeypatch.setattr(runtime, "_evaluators", {})
    evaluator = runtime.evaluator()
    try:
        assert type(evaluator).__name__ == "WarmEvaluator"
        assert evaluator._images is not None and evaluator._images.suffix == ".npy"
        assert np.load(evaluator._images).shape == (4, 32, 32, 3)
    finally:
        runtime.close_evaluator()
