"""Grading time per Keras backend, side by side: the same file, the same images, one run.

For each backend: (1) bare Keras ``model.predict`` in a fresh process (the baseline),
(2) the grader's evaluation with ``--trust`` (no sandbox), (3) the grader's evaluation
in the real sandbox, twice (the second with the file and libraries in the page cache).
Prints a table on stderr and one JSON object on stdout: accuracy, the phases (import,
load, predict) and, on a GPU, the peak GPU memory seen by ``nvidia-smi`` during the run.

    python bench/backend_check.py --data test.npz [--backends tensorflow,jax,torch]
                                  [--gpu 0] [--images 10000] [--out result.json]

``--gpu N`` runs on GPU N (the sandbox binds that GPU's device nodes and raises the
address-space limit for CUDA); without it everything runs on the CPU. Run as root (the
sandbox needs it); needs no network. bench/gpu_check.sh wraps it for a GPU host.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from grader.data import find_test_set  # noqa: E402
from grader.metrics import score_predictions  # noqa: E402
from grader.sandbox import SandboxLimits, evaluate_model, sandbox_status  # noqa: E402
from grader.settings import Settings  # noqa: E402

FIXTURE = REPO / "tests" / "fixtures" / "day097_cifar10.keras"

BASELINE = r"""
import json, os, sys, time
t0 = time.time()
import numpy as np
import keras
backend = keras.backend.backend()
t1 = time.time()
model = keras.saving.load_model(sys.argv[1], compile=False)
t2 = time.time()
x = np.load(sys.argv[2], mmap_mode="r")
preds = []
for start in range(0, len(x), 500):
    batch = np.asarray(x[start:start + 500], dtype=np.float32) / np.float32(255)
    preds.append(np.asarray(model.predict_on_batch(batch)))
t3 = time.time()
np.save(sys.argv[3], np.concatenate(preds))
device = "cpu"
if backend == "jax":
    import jax
    device = str(jax.devices()[0])
elif backend == "torch":
    import torch
    device = "cuda" if torch.cuda.is_available() else "cpu"
elif backend == "tensorflow":
    import tensorflow as tf
    device = "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
print(json.dumps({"backend": backend, "device": device, "import": t1 - t0, "load": t2 - t1,
                  "predict": t3 - t2}))
"""


class GpuMemory:
    """Peak memory used on one GPU while a block runs, polled with nvidia-smi (MiB)."""

    def __init__(self, gpu: int | None) -> None:
        self.gpu, self.peak, self._stop = gpu, None, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        query = ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"]
        while not self._stop.is_set():
            try:
                out = subprocess.run(
                    [*query, "-i", str(self.gpu)], capture_output=True, text=True, timeout=5
                ).stdout
                used = int(out.strip().splitlines()[0])
                self.peak = used if self.peak is None else max(self.peak, used)
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                return
            self._stop.wait(0.2)

    def __enter__(self) -> GpuMemory:
        if self.gpu is not None and shutil.which("nvidia-smi"):
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def baseline(backend: str, images: Path, gpu: int | None, work: Path) -> dict[str, Any]:
    """Bare Keras in a fresh process: the time a student's own notebook would take."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    env["CUDA_VISIBLE_DEVICES"] = "" if gpu is None else str(gpu)
    if backend == "jax":
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    out = work / f"baseline-{backend}.npy"
    t0 = time.time()
    with GpuMemory(gpu) as mem:
        proc = subprocess.run(
            [sys.executable, "-c", BASELINE, str(FIXTURE), str(images), str(out)],
            capture_output=True, text=True, env=env, timeout=1800,
        )  # fmt: skip
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:]}
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row.update(total=time.time() - t0, gpu_peak_mib=mem.peak, predictions=str(out))
    return row


def graded(
    backend: str, images: Path, gpu: int | None, trust: bool, settings: Settings
) -> dict[str, Any]:
    """The grader's own evaluation (the sandbox unless ``trust``), timed from outside."""
    limits = SandboxLimits.from_settings(settings)
    t0 = time.time()
    with GpuMemory(gpu) as mem:
        try:
            res = evaluate_model(
                FIXTURE, images, scale=1 / 255, limits=limits, trust=trust, gpu=gpu,
                batch_size=settings.predict_batch_size, backend=backend,
            )  # fmt: skip
        except Exception as exc:  # a failed run is a result too
            return {"error": f"{type(exc).__name__}: {exc}"}
    row: dict[str, Any] = {k: round(v, 3) for k, v in res.timings.items()}
    row.update(
        total=time.time() - t0, device=res.device, backend=res.backend,
        peak_rss_mib=(res.peak_rss_bytes or 0) // 2**20, gpu_peak_mib=mem.peak,
    )  # fmt: skip
    row["_predictions"] = res.predictions
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=os.environ.get("GRADER_CIFAR10"))
    p.add_argument("--backends", default="tensorflow,jax,torch")
    p.add_argument("--gpu", type=int, default=None)
    p.add_argument("--images", type=int, default=10_000)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    if args.data is None:
        p.error("--data (or GRADER_CIFAR10) is required")
    test = find_test_set(args.data)
    settings = Settings()
    backends = [b for b in args.backends.split(",") if b]
    sandbox_ok, why = sandbox_status()
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"), "gpu": args.gpu, "images": args.images,
        "file": FIXTURE.name, "sandbox": "available" if sandbox_ok else why, "backends": {},
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="backend-check-") as tmp:
        work = Path(tmp)
        images = work / "images.npy"
        np.save(images, np.load(test.images_path, mmap_mode="r")[: args.images])
        labels = test.labels[: args.images]
        for backend in backends:
            if importlib.util.find_spec(backend) is None:
                result["backends"][backend] = {"skipped": f"{backend} is not installed"}
                continue
            rows: dict[str, Any] = {"baseline": baseline(backend, images, args.gpu, work)}
            rows["trust"] = graded(backend, images, args.gpu, True, settings)
            if sandbox_ok:
                rows["sandbox"] = graded(backend, images, args.gpu, False, settings)
                rows["sandbox_again"] = graded(backend, images, args.gpu, False, settings)
            for row in rows.values():
                preds = row.pop("_predictions", None)
                if preds is None and "predictions" in row:
                    preds = np.load(row.pop("predictions"))
                if preds is not None:
                    row["accuracy"] = score_predictions(preds, labels).accuracy
                for key, value in row.items():
                    if isinstance(value, float):
                        row[key] = round(value, 3)
            result["backends"][backend] = rows
            print(f"{backend}: {json.dumps(rows)}", file=sys.stderr, flush=True)
    _table(result)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


def _table(result: dict[str, Any]) -> None:
    cols = ("accuracy", "import", "load", "predict", "total", "gpu_peak_mib", "peak_rss_mib")
    print(f"\n{'backend':<11}{'run':<14}" + "".join(f"{c:>14}" for c in cols), file=sys.stderr)
    for backend, rows in result["backends"].items():
        for run, row in rows.items():
            if not isinstance(row, dict):
                print(f"{backend:<11}{run}: {row}", file=sys.stderr)
                continue
            cells = "".join(f"{'' if row.get(c) is None else row.get(c)!s:>14}" for c in cols)
            extra = f"  {row['error']}" if "error" in row else ""
            print(f"{backend:<11}{run:<14}{cells}{extra}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
