"""Grading speed and memory, side by side with a no-safety baseline (issue 6).

    python bench/bench.py [--data PATH] [--repeats N] [--out FILE]

Prints a readable table on stderr and one JSON object on stdout. Every figure is the
median of ``--repeats`` runs; the three timed paths are interleaved (order rotated each
repeat) so that load from other processes on the machine hits them alike. This process
never imports TensorFlow: models are built in a child process, like a worker would.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grader.data import find_test_set  # noqa: E402
from grader.pipeline import grade_file  # noqa: E402
from grader.sandbox import EvaluationResult, WarmEvaluator, evaluate_model  # noqa: E402
from grader.settings import get_settings  # noqa: E402
from grader.spec import find_spec  # noqa: E402

ASSIGNMENT = "day097-cifar10"
PHASES = ("inspect", "sandbox_start", "import", "load", "predict", "score")
TARGETS = {
    "check_cold": 1.3,  # x baseline, at most
    "warm_worker": 0.5,  # x baseline, at most
    "refused_seconds": 0.3,
    "peak_rss_bytes": 1.5e9,
}

BUILD = """
import os, sys
os.environ["CUDA_VISIBLE_DEVICES"] = ""
sys.path.insert(0, {examples!r})
import keras
from train_cifar10 import build
m = build(0)
m.save({course!r})
inp = keras.Input((32, 32, 3))
x = keras.layers.Lambda(lambda t: t * 2.0)(inp)
x = keras.layers.Conv2D(4, 3)(x)
x = keras.layers.SeparableConv2D(4, 3)(x)
x = keras.layers.GlobalAveragePooling2D()(x)
keras.Model(inp, keras.layers.Dense(10)(x)).save({lam!r})
print(m.count_params())
"""

# No inspection, no sandbox: what a person would run. Same batch size as the grader,
# so the ratios measure safety and warm-up, not a batch-size choice.
BASELINE = """
import json, resource, time
t0 = time.perf_counter()
import numpy as np
import keras
t1 = time.perf_counter()
model = keras.saving.load_model({model!r}, compile=False)
t2 = time.perf_counter()
x = np.load({images!r}); y = np.load({labels!r}).reshape(-1)
p = model.predict(x.astype("float32") / 255.0, batch_size={batch}, verbose=0)
t3 = time.perf_counter()
acc = float((p.argmax(axis=1) == y).mean())
t4 = time.perf_counter()
print("BENCH" + json.dumps({{"import": t1 - t0, "load": t2 - t1, "predict": t3 - t2,
    "score": t4 - t3, "accuracy": acc,
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}}))
"""


def _env() -> dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _timed(argv: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=_env(), cwd=REPO)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):  # grader check: 1 = "failed" (an untrained model)
        raise SystemExit(f"{argv[:4]} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return wall, proc.stdout


def run_baseline(model: Path, images: Path, labels: Path, batch: int) -> dict:
    code = BASELINE.format(model=str(model), images=str(images), labels=str(labels), batch=batch)
    wall, out = _timed([sys.executable, "-c", code])
    line = next(ln for ln in out.splitlines() if ln.startswith("BENCH"))
    data = json.loads(line[5:])
    return {"wall": wall, "phases": {k: data[k] for k in PHASES if k in data}, **data}


def run_check(model: Path, data: Path) -> dict:
    grader = shutil.which("grader")
    head = [grader] if grader else [sys.executable, "-m", "grader"]
    argv = [*head, "check", str(model), "--assignment", ASSIGNMENT, "--data", str(data)]
    wall, out = _timed([*argv, "--json"])
    report = json.loads(out)
    return {"wall": wall, "phases": report["timings"], "status": report["status"]}


class _Recorder:
    """Wraps an evaluator to keep the last EvaluationResult (for its peak RSS)."""

    def __init__(self, inner) -> None:
        self.inner, self.last = inner, None

    def __call__(self, *args, **kw) -> EvaluationResult:
        self.last = self.inner(*args, **kw)
        return self.last


def run_warm(rec: _Recorder, model: Path, spec, test_set) -> dict:
    t0 = time.perf_counter()
    report = grade_file(model, spec, test_set=test_set, evaluator=rec)
    wall = time.perf_counter() - t0
    assert report.status in ("passed", "failed"), report.reason
    return {
        "wall": wall,
        "phases": report.timings,
        "peak_rss_bytes": rec.last.peak_rss_bytes if rec.last else None,
    }


def run_refused(model: Path, spec, test_set) -> dict:
    t0 = time.perf_counter()
    report = grade_file(model, spec, test_set=test_set, evaluator=evaluate_model)
    wall = time.perf_counter() - t0
    return {"wall": wall, "status": report.status, "reason": report.reason}


def _median(runs: list[dict], key: str) -> float | None:
    vals = [r[key] for r in runs if isinstance(r.get(key), int | float)]
    return round(statistics.median(vals), 4) if vals else None


def _phases(runs: list[dict]) -> dict[str, float]:
    keys = [k for k in PHASES if any(k in r["phases"] for r in runs)]
    return {k: round(statistics.median(r["phases"].get(k, 0.0) for r in runs), 4) for k in keys}


def _labels_for(test_set) -> Path:
    path = test_set.images_path.with_name(test_set.images_path.stem + "-labels.npy")
    if not path.exists():
        import numpy as np

        np.save(path, test_set.labels)
    return path


def main(argv: list[str] | None = None) -> int:
    default_data = os.environ.get("GRADER_CIFAR10") or str(REPO.parent / "shared/data/cifar10")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path(default_data), help="CIFAR-10 test set")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, help="also write the JSON object here")
    args = p.parse_args(argv)
    n = max(1, args.repeats)

    settings = get_settings()
    spec = find_spec(ASSIGNMENT, settings.assignments_dir)
    test_set = find_test_set(args.data)
    labels = _labels_for(test_set)
    load_start = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="grader-bench-"))
    try:
        course, lam = work / "course.keras", work / "lambda.keras"
        code = BUILD.format(examples=str(REPO / "examples"), course=str(course), lam=str(lam))
        _, out = _timed([sys.executable, "-c", textwrap.dedent(code)])
        params = int(out.strip().splitlines()[-1])

        t0 = time.perf_counter()
        warm = WarmEvaluator(images=test_set.images_path).start()
        warm_start = time.perf_counter() - t0
        rec = _Recorder(warm)
        runs: dict[str, list[dict]] = {"baseline": [], "check_cold": [], "warm_worker": []}
        jobs = {
            "baseline": lambda: run_baseline(
                course, test_set.images_path, labels, settings.predict_batch_size
            ),
            "check_cold": lambda: run_check(course, args.data),
            "warm_worker": lambda: run_warm(rec, course, spec, test_set),
        }
        order = list(jobs)
        try:
            for i in range(n):
                for name in order[i % 3 :] + order[: i % 3]:
                    runs[name].append(jobs[name]())
                    wall = runs[name][-1]["wall"]
                    print(f"  {name} run {i + 1}/{n}: {wall:.2f} s", file=sys.stderr)
            zygote_mem = warm.zygote_memory()
            stats = dict(warm.stats)
        finally:
            warm.close()
        refused = [run_refused(lam, spec, test_set) for _ in range(max(n, 5))]
        tf_imported = "tensorflow" in sys.modules or "keras" in sys.modules
        assert not tf_imported, "refusing a Lambda file must not import TensorFlow"
        assert all(r["status"] == "not_gradable" for r in refused), refused[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    base = _median(runs["baseline"], "wall")
    result: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_start": [round(v, 2) for v in load_start],
            "load_average_end": [round(v, 2) for v in os.getloadavg()],
            "python": platform.python_version(),
            "tensorflow": _version("tensorflow-cpu") or _version("tensorflow"),
            "keras": _version("keras"),
        },
        "model": {"name": "examples/train_cifar10.build (untrained)", "params": params},
        "images": 10000 if len(test_set.labels) == 10000 else len(test_set.labels),
        "repeats": n,
        "baseline": {
            "what": "fresh python: import keras, load, predict (batch "
            f"{settings.predict_batch_size}), accuracy; no inspection, no sandbox",
            "wall_s": base,
            "runs_s": [round(r["wall"], 3) for r in runs["baseline"]],
            "phases_s": _phases(runs["baseline"]),
            "peak_rss_bytes": _median(runs["baseline"], "peak_rss_bytes"),
        },
    }
    for name, what in (
        ("check_cold", f"grader check FILE --assignment {ASSIGNMENT}, fresh process"),
        ("warm_worker", "grade_file(..., evaluator=WarmEvaluator) in a running worker"),
    ):
        wall = _median(runs[name], "wall")
        ratio = round(wall / base, 3) if wall and base else None
        result[name] = {
            "what": what,
            "wall_s": wall,
            "runs_s": [round(r["wall"], 3) for r in runs[name]],
            "phases_s": _phases(runs[name]),
            "ratio_to_baseline": ratio,
            "target_ratio_max": TARGETS[name],
            "met": ratio is not None and ratio <= TARGETS[name],
        }
    result["warm_worker"]["zygote_start_s"] = round(warm_start, 3)
    result["warm_worker"]["evaluator_stats"] = stats
    result["queued_20"] = None
    result["queued_20_note"] = "not measured: job queue not yet built"
    refused_s = _median(refused, "wall")
    result["refused_lambda"] = {
        "what": "grade_file on a Lambda model, in-process (worker time, upload not included)",
        "wall_s": refused_s,
        "runs_s": [round(r["wall"], 4) for r in refused],
        "status": refused[0]["status"],
        "reason": refused[0]["reason"],
        "tensorflow_imported": tf_imported,
        "target_s_max": TARGETS["refused_seconds"],
        "met": refused_s is not None and refused_s < TARGETS["refused_seconds"],
    }
    job_rss = _median(runs["warm_worker"], "peak_rss_bytes")
    result["peak_memory"] = {
        "baseline_rss_bytes": result["baseline"]["peak_rss_bytes"],
        "warm_job_rss_bytes": job_rss,
        "zygote_rss_bytes": zygote_mem.get("VmRSS"),
        "zygote_peak_rss_bytes": zygote_mem.get("VmHWM"),
        "note": "a job child shares the zygote's pages (TensorFlow, the mapped test set): "
        "its RSS counts them, the machine holds them once per worker",
        "target_bytes_max": TARGETS["peak_rss_bytes"],
        "met": job_rss is not None and job_rss <= TARGETS["peak_rss_bytes"],
    }
    _table(result)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _table(r: dict) -> None:
    mib = 1024 * 1024
    rows = [("measurement", "median s", "x baseline", "target", "phases (median s)")]
    for key, label in (
        ("baseline", "1 baseline (no safety)"),
        ("check_cold", "2 grader check, cold"),
        ("warm_worker", "3 warm worker, 1 job"),
    ):
        d = r[key]
        phases = " ".join(f"{k}={v:.2f}" for k, v in d["phases_s"].items())
        ratio = d.get("ratio_to_baseline")
        target = f"<= {d['target_ratio_max']}x" if "target_ratio_max" in d else ""
        mark = "" if "met" not in d else (" ok" if d["met"] else " MISSED")
        rows.append((label, f"{d['wall_s']:.2f}", f"{ratio:.2f}" if ratio else "1.00",
                     target + mark, phases))  # fmt: skip
    rows.append(("4 20 queued", "null", "", ">= 2x throughput", r["queued_20_note"]))
    f = r["refused_lambda"]
    ok = " ok" if f["met"] else " MISSED"
    tf = f"TensorFlow imported: {f['tensorflow_imported']}"
    rows.append(("5 refused Lambda file", f"{f['wall_s']:.3f}", "", "< 0.3 s" + ok, tf))
    m = r["peak_memory"]
    rows.append(("6 peak RSS, warm job", f"{(m['warm_job_rss_bytes'] or 0) / mib:.0f} MiB", "",
                 "<= 1.5 GB" + (" ok" if m["met"] else " MISSED"),
                 f"baseline {(m['baseline_rss_bytes'] or 0) / mib:.0f} MiB, zygote "
                 f"{(m['zygote_rss_bytes'] or 0) / mib:.0f} MiB"))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = [row[i].ljust(widths[i]) for i in range(4)]
        print("  ".join([*cells, row[4]]), file=sys.stderr)
    w = r["warm_worker"]
    print(f"warm worker start (once): {w['zygote_start_s']:.2f} s; machine load "
          f"{r['machine']['load_average_start']} -> {r['machine']['load_average_end']}",
          file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
