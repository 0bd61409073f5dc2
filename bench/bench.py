"""Grading speed and memory, side by side with a no-safety baseline (issue 6).

    python bench/bench.py [--data PATH] [--repeats N] [--out FILE]
                          [--queued 20] [--queue-baseline-runs 20] [--broker sqlite|redis]
                          [--eval-slots 2] [--queue-only]

Prints a readable table on stderr and one JSON object on stdout. Every figure is the
median of ``--repeats`` runs; the three timed paths are interleaved (order rotated each
repeat) so that load from other processes on the machine hits them alike. This process
never imports TensorFlow: models are built in a child process, like a worker would.

Item 4 runs the real service: ``grader serve`` in a temporary instance folder (SQLite
database; the embedded SQLite broker or Redis under a unique key prefix), one inspect
worker and ``--eval-slots`` evaluate processes, each with its own warm sandbox. Once the
sandboxes are warm (not timed), ``--queued`` students upload the same model through the
JSON API at the same moment, and the clock stops when the last result row is in the
database. It is compared with ``--queue-baseline-runs`` baseline runs one after another.
The same service then times a refused (Lambda) upload from POST to stored verdict.
Everything the service started is stopped at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path
from typing import Any

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
    "queued_throughput": 2.0,  # x baseline throughput, at least
    "warm_api": 0.5,  # x baseline, at most: one upload through grader serve, end to end
    "refused_api_seconds": 0.3,  # POST to stored verdict through grader serve
}
TERMINAL = ("graded", "failed", "not_gradable", "error")
REDIS_URL = "redis://127.0.0.1:6379/0"
BROKERS = {
    "sqlite": "SQLite (embedded: grader.queue.sqlbroker, polls every 0.05 s)",
    "redis": f"Redis {REDIS_URL}, own key prefix",
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


# Students and API tokens for the service, written by a child process with the web
# app's own models (so this process imports neither Flask nor SQLAlchemy).
USERS = """
import json, secrets, sys
from grader.web import create_app
from grader.service.db import db
from grader.service.models import ApiToken, User, hash_token
app = create_app({"GRADER_EXECUTOR": "none", "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000"})
tokens = {}
with app.app_context():
    for name in sys.argv[1:]:
        user = User(username=name, role="student", name=name)
        user.set_password(secrets.token_urlsafe(12))
        db.session.add(user)
        db.session.flush()
        raw = "gr_" + secrets.token_urlsafe(32)
        db.session.add(ApiToken(user_id=user.id, name="bench", token_hash=hash_token(raw),
                                prefix=raw[:8]))
        tokens[name] = raw
    db.session.commit()
print("BENCH" + json.dumps(tokens))
"""


def _utc(text: str | None) -> float | None:
    """A naive-UTC timestamp from the database as epoch seconds."""
    if not text:
        return None
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def _proc_table() -> dict[int, tuple[int, str, str]]:
    """pid -> (ppid, start time, command line) for every live process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        table[int(entry)] = (int(fields[1]), fields[19], cmd)
    return table


class Service:
    """``grader serve`` in a temporary instance folder: web + inspect worker + evaluate
    worker with ``slots`` processes (each with its own WarmEvaluator), on SQLite and
    either the embedded SQLite broker or Redis under a unique key prefix."""

    def __init__(self, work: Path, data: Path, broker: str, slots: int) -> None:
        self.dir, self.broker, self.slots = work / "service", broker, slots
        self.instance = self.dir / "instance"
        self.db_path = self.instance / "grader.db"
        self.log_path = self.dir / "serve.log"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.prefix = f"grader-bench-{secrets.token_hex(4)}:"
        self.env = _env()
        for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_BROKER_KEYPREFIX"):
            self.env.pop(name, None)
        self.env.update(
            GRADER_INSTANCE_DIR=str(self.instance),
            GRADER_SUBMISSIONS_DIR=str(self.dir / "submissions"),
            GRADER_CIFAR10=str(data),
            SECRET_KEY=secrets.token_hex(16),
        )
        if broker == "redis":
            self.env.update(CELERY_BROKER_URL=REDIS_URL, CELERY_BROKER_KEYPREFIX=self.prefix)
        self.proc: subprocess.Popen[bytes] | None = None
        self.known: dict[int, str] = {}  # pid -> start time of everything it started
        self.ready_s = self.warmup_s = 0.0

    # ------------------------------------------------------------ lifecycle
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _wait(self, pred: Any, timeout: float, what: str, interval: float = 0.25) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = pred()
            if value:
                return value
            if self.proc is not None and self.proc.poll() is not None:
                raise SystemExit(f"grader serve exited while waiting for {what}:\n"
                                 f"{self.log()[-3000:]}")  # fmt: skip
            time.sleep(interval)
        raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}:\n"
                         f"{self.log()[-3000:]}")  # fmt: skip

    def start(self) -> Service:
        self.dir.mkdir(parents=True)
        if self.broker == "redis":
            import redis

            redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
        argv = [sys.executable, "-m", "grader", "serve", "--host", "127.0.0.1",
                "--port", str(self.port), "--workers", str(self.slots)]  # fmt: skip
        t0 = time.perf_counter()
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv, env=self.env, cwd=self.dir, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal reaches only this script
            )  # fmt: skip
        self._wait(lambda: "Serving on" in self.log(), 120, "the web server")
        self._wait(lambda: self.log().count(" ready.") >= 2, 120, "both workers")
        self.ready_s = time.perf_counter() - t0
        self._remember()
        return self

    def _remember(self) -> dict[int, tuple[int, str, str]]:
        """Record every descendant of the server (workers, sandboxes) for close()."""
        table = _proc_table()
        if self.proc is None:
            return {}
        mine, grew = {self.proc.pid}, True
        while grew:
            more = {pid for pid, (ppid, _, _) in table.items() if ppid in mine} - mine
            mine |= more
            grew = bool(more)
        found = {pid: table[pid] for pid in mine if pid in table}
        self.known.update({pid: row[1] for pid, row in found.items()})
        return found

    def zygotes(self) -> int:
        """Warm sandboxes running under the server: the python inside bwrap."""
        return sum(
            1 for _, _, cmd in self._remember().values()
            if "--zygote" in cmd and cmd.split(" ", 1)[0].rsplit("/", 1)[-1].startswith("python")
        )  # fmt: skip

    def warm_up(self, tokens: list[str], model: Path) -> None:
        """One job per evaluate slot until every slot has started its warm sandbox."""
        t0 = time.perf_counter()
        for round_ in range(4):
            batch = tokens[round_ * self.slots : (round_ + 1) * self.slots]
            ids = [sid for sid, _ in self.upload_all(batch, model)]
            self.wait_done(ids, timeout=300)
            if self.zygotes() >= self.slots:
                break
        self.warmup_s = time.perf_counter() - t0
        if self.zygotes() < self.slots:
            print(f"  warning: {self.zygotes()} warm sandboxes for {self.slots} slots",
                  file=sys.stderr)  # fmt: skip

    def close(self) -> None:
        """Ctrl-C for ``grader serve`` (workers finish their job, sandboxes close), then
        kill whatever it started that is still alive, and drop the Redis keys."""
        with contextlib.suppress(Exception):
            self._remember()
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        table = _proc_table()
        for pid, started in self.known.items():
            if pid in table and table[pid][1] == started:  # the same process, not a reuse
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self.broker == "redis":
            with contextlib.suppress(Exception):
                import redis

                r = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
                keys = list(r.scan_iter(match=self.prefix + "*", count=1000))
                if keys:
                    r.delete(*keys)

    # ------------------------------------------------------------ use
    def create_students(self, names: list[str]) -> dict[str, str]:
        proc = subprocess.run(
            [sys.executable, "-c", USERS, *names], capture_output=True, text=True,
            env=self.env, cwd=self.dir, timeout=300,
        )  # fmt: skip
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH")), None)
        if proc.returncode or line is None:
            raise SystemExit(f"creating students failed:\n{proc.stderr[-2000:]}")
        return json.loads(line[5:])

    def upload(self, token: str, body: bytes, ctype: str) -> tuple[int, float]:
        """POST one model to the JSON API; (submission id, seconds for the request)."""
        req = urllib.request.Request(
            f"{self.url}/api/v1/assignments/{ASSIGNMENT}/submissions", data=body, method="POST"
        )
        req.add_header("Authorization", f"Bearer {token}")
        req.add_header("Content-Type", ctype)
        req.add_header("Accept", "application/json")
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=120) as response:
                data = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"upload refused: {exc.code} {exc.read()[:300]!r}") from None
        return int(data["id"]), time.perf_counter() - t0

    def upload_all(self, tokens: list[str], model: Path) -> list[tuple[int, float]]:
        """Every token uploads ``model`` at the same moment, one thread each."""
        body, ctype = _multipart(model)
        gate = threading.Barrier(len(tokens))
        out: list = [None] * len(tokens)

        def one(i: int) -> None:
            gate.wait()
            try:
                out[i] = self.upload(tokens[i], body, ctype)
            except BaseException as exc:  # reported below, in the main thread
                out[i] = exc

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(tokens))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for item in out:
            if isinstance(item, BaseException):
                raise item
        return out

    def rows(self, ids: list[int]) -> dict[int, dict]:
        con = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)
        try:
            marks = ",".join("?" * len(ids))
            cur = con.execute(
                "SELECT s.id, s.state, s.created_at, s.started_at, s.inspected_at, "
                "s.loaded_at, s.evaluated_at, s.finished_at, r.status, r.report "
                "FROM submissions s LEFT JOIN results r ON r.submission_id = s.id "
                f"WHERE s.id IN ({marks})",
                ids,
            )
            keys = ("id", "state", "created", "started", "inspected", "loaded", "evaluated",
                    "finished", "status", "report")  # fmt: skip
            return {row[0]: dict(zip(keys, row, strict=True)) for row in cur.fetchall()}
        finally:
            con.close()

    def wait_done(self, ids: list[int], timeout: float, interval: float = 0.1) -> dict:
        """Poll the database until every submission is final and has its result row."""

        def done() -> dict | None:
            try:
                rows = self.rows(ids)
            except sqlite3.OperationalError:  # a writer holds a lock for a moment
                return None
            final = all(r["state"] in TERMINAL and r["status"] for r in rows.values())
            return rows if len(rows) == len(ids) and final else None

        return self._wait(done, timeout, f"{len(ids)} results", interval)


def _multipart(path: Path) -> tuple[bytes, str]:
    boundary = "----bench" + secrets.token_hex(12)
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="model"; '
        f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    return head + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode(), (
        f"multipart/form-data; boundary={boundary}"
    )


def _job_phases(row: dict, upload_s: float) -> dict[str, float]:
    """One queued job's phases: the worker's report timings plus the queue's own."""
    t = {k: _utc(row[k]) for k in ("created", "started", "evaluated", "finished")}
    report = json.loads(row["report"]) if row["report"] else {}
    phases = {"upload": upload_s}
    if t["created"] and t["started"]:  # inspect queue, inspection, evaluate queue
        phases["wait"] = t["started"] - t["created"]
    phases.update({k: v for k, v in (report.get("timings") or {}).items() if k in PHASES})
    if t["evaluated"] and t["finished"]:
        phases["store"] = t["finished"] - t["evaluated"]
    if t["created"] and t["finished"]:
        phases["latency"] = t["finished"] - t["created"]
    return phases


def run_queued(svc: Service, tokens: list[str], model: Path) -> dict:
    """All tokens upload ``model`` at once; wall time until every result is stored."""
    t0 = time.perf_counter()
    t0_epoch = time.time()
    sent = svc.upload_all(tokens, model)
    uploaded = time.perf_counter() - t0
    ids = [sid for sid, _ in sent]
    rows = svc.wait_done(ids, timeout=max(600.0, 60.0 * len(ids)))
    polled = time.perf_counter() - t0
    last = max(_utc(r["finished"]) or 0.0 for r in rows.values())
    jobs = [{"phases": _job_phases(rows[sid], up)} for sid, up in sent]
    return {
        "wall": polled,
        "wall_by_timestamps_s": round(last - t0_epoch, 3),
        "uploads_done_s": round(uploaded, 3),
        "states": sorted({r["state"] for r in rows.values()}),
        "statuses": sorted({r["status"] for r in rows.values()}),
        "jobs": jobs,
        "ids": ids,
    }


def run_refused_api(svc: Service, token: str, model: Path) -> dict:
    """Upload one Lambda model through the API and wait for its stored verdict."""
    body, ctype = _multipart(model)
    t0 = time.perf_counter()
    t0_epoch = time.time()
    sid, up = svc.upload(token, body, ctype)
    row = svc.wait_done([sid], timeout=120, interval=0.01)[sid]
    wall = time.perf_counter() - t0
    return {
        "wall": wall,
        "upload_s": up,
        "stored_after_s": (_utc(row["finished"]) or 0.0) - t0_epoch,
        "status": row["status"],
    }


def run_warm_api(svc: Service, token: str, model: Path) -> dict:
    """One CIFAR-10 upload through the API of the idle, warm service, until its result
    row is stored (polled every 10 ms): what a student waits for."""
    body, ctype = _multipart(model)
    t0 = time.perf_counter()
    sid, up = svc.upload(token, body, ctype)
    row = svc.wait_done([sid], timeout=300, interval=0.01)[sid]
    wall = time.perf_counter() - t0
    return {"wall": wall, "upload_s": up, "phases": _job_phases(row, up), "status": row["status"]}


def run_service(
    args: argparse.Namespace, work: Path, course: Path, lam: Path, baseline: Any
) -> dict:
    """Items 4, 5 (through the API) and 7: a real ``grader serve`` and its workers."""
    n_jobs, n_refused = args.queued, max(args.repeats, 5)
    n_latency = max(0, args.latency_runs)
    svc = Service(work, args.data, args.broker, args.eval_slots)
    out: dict = {}
    try:
        svc.start()
        print(f"  service up in {svc.ready_s:.1f} s ({args.broker} broker, "
              f"{args.eval_slots} evaluate slots)", file=sys.stderr)  # fmt: skip
        names = [f"q{i:02d}" for i in range(n_jobs)]
        warm = [f"w{i}" for i in range(4 * args.eval_slots)]
        refusers = [f"r{i}" for i in range(n_refused)]
        latency = [f"a{i}" for i in range(n_latency)]
        tokens = svc.create_students(names + warm + refusers + latency)
        svc.warm_up([tokens[w] for w in warm], course)
        out["zygotes"] = svc.zygotes()
        print(f"  warm-up {svc.warmup_s:.1f} s, {out['zygotes']} warm sandboxes",
              file=sys.stderr)  # fmt: skip
        # Item 7: one upload at a time on the idle service, side by side with a baseline
        # run (alternating, order rotated), so load from elsewhere hits both alike.
        out["latency"], out["latency_baseline"] = [], []
        for i, name in enumerate(latency):
            for step in ("api", "baseline") if i % 2 == 0 else ("baseline", "api"):
                if step == "api":
                    out["latency"].append(run_warm_api(svc, tokens[name], course))
                else:
                    out["latency_baseline"].append(baseline())
            print(f"  warm CIFAR-10 via API {i + 1}/{n_latency}: "
                  f"{out['latency'][-1]['wall']:.2f} s (baseline "
                  f"{out['latency_baseline'][-1]['wall']:.2f} s)", file=sys.stderr)  # fmt: skip
        out["refused"] = [run_refused_api(svc, tokens[r], lam) for r in refusers]
        median = statistics.median(r["wall"] for r in out["refused"])
        print(f"  refused via API: {median:.3f} s", file=sys.stderr)
        if n_jobs:
            out["queued"] = run_queued(svc, [tokens[n] for n in names], course)
            print(f"  {n_jobs} queued: {out['queued']['wall']:.2f} s", file=sys.stderr)
        out["zygotes_after"] = svc.zygotes()
    finally:
        svc.close()
    out["service"] = {"ready_s": round(svc.ready_s, 2), "warmup_s": round(svc.warmup_s, 2)}
    return out


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
    q = p.add_argument_group("item 4, queued submissions through grader serve")
    q.add_argument("--queued", type=int, default=20, help="uploads at once (default 20)")
    q.add_argument("--queue-baseline-runs", type=int, default=20, metavar="N",
                   help="baseline runs one after another to compare with; fewer than "
                   "--queued are extrapolated (default 20)")  # fmt: skip
    q.add_argument(
        "--broker",
        choices=("sqlite", "redis"),
        default="sqlite",
        help=f"sqlite: the embedded broker; redis: {REDIS_URL}, own key prefix",
    )
    q.add_argument(
        "--eval-slots",
        type=int,
        default=2,
        help="evaluate worker processes, one warm sandbox each (default 2)",
    )
    q.add_argument("--queue-only", action="store_true", help="skip items 1-3 and 6")
    q.add_argument("--latency-runs", type=int, default=None, metavar="N",
                   help="item 7: single uploads through the API, each beside a baseline "
                   "run (default: --repeats)")  # fmt: skip
    args = p.parse_args(argv)
    args.data = args.data.resolve()
    n = max(1, args.repeats)
    if args.latency_runs is None:
        args.latency_runs = n
    signal.signal(signal.SIGTERM, _interrupt)  # clean up the service as on Ctrl-C

    settings = get_settings()
    spec = find_spec(ASSIGNMENT, settings.assignments_dir)
    test_set = find_test_set(args.data)
    labels = _labels_for(test_set)
    load_start = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="grader-bench-"))
    runs: dict[str, list[dict]] = {"baseline": [], "check_cold": [], "warm_worker": []}
    warm_start, zygote_mem, stats = None, {}, {}
    try:
        course, lam = work / "course.keras", work / "lambda.keras"
        code = BUILD.format(examples=str(REPO / "examples"), course=str(course), lam=str(lam))
        _, out = _timed([sys.executable, "-c", textwrap.dedent(code)])
        params = int(out.strip().splitlines()[-1])

        def baseline() -> dict:
            return run_baseline(course, test_set.images_path, labels, settings.predict_batch_size)

        if not args.queue_only:
            t0 = time.perf_counter()
            warm = WarmEvaluator(images=test_set.images_path).start()
            warm_start = time.perf_counter() - t0
            rec = _Recorder(warm)
            jobs = {
                "baseline": baseline,
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

        sequential: list[dict] = []
        t0 = time.perf_counter()
        for i in range(max(0, args.queue_baseline_runs)):
            sequential.append(baseline())
            print(f"  baseline, one after another {i + 1}/{args.queue_baseline_runs}: "
                  f"{sequential[-1]['wall']:.2f} s", file=sys.stderr)  # fmt: skip
        sequential_wall = time.perf_counter() - t0
        wanted = args.queued > 0 or args.latency_runs > 0
        service = run_service(args, work, course, lam, baseline) if wanted else None
    finally:
        shutil.rmtree(work, ignore_errors=True)

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
        "images": len(test_set.labels),
        "repeats": n,
    }
    base = _median(runs["baseline"], "wall")
    if not args.queue_only:
        result["baseline"] = {
            "what": "fresh python: import keras, load, predict (batch "
            f"{settings.predict_batch_size}), accuracy; no inspection, no sandbox",
            "wall_s": base,
            "runs_s": [round(r["wall"], 3) for r in runs["baseline"]],
            "phases_s": _phases(runs["baseline"]),
            "peak_rss_bytes": _median(runs["baseline"], "peak_rss_bytes"),
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
        result["warm_worker"]["zygote_start_s"] = round(warm_start or 0.0, 3)
        result["warm_worker"]["evaluator_stats"] = stats
    result["queued_20"] = _queued_result(args, sequential, sequential_wall, base, service)
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
    if service:
        api = service["refused"]
        api_s = _median(api, "wall")
        result["refused_lambda_api"] = {
            "what": "POST a Lambda model to the API of the running service, until its "
            "result is stored (polled every 10 ms); the queue was otherwise idle",
            "broker": BROKERS[args.broker],
            "wall_s": api_s,
            "stored_after_s": _median(api, "stored_after_s"),
            "upload_s": _median(api, "upload_s"),
            "runs_s": [round(r["wall"], 3) for r in api],
            "statuses": sorted({r["status"] for r in api}),
            "target_s_max": TARGETS["refused_api_seconds"],
            "met": api_s is not None and api_s <= TARGETS["refused_api_seconds"],
        }
        result["warm_api"] = _warm_api_result(service, args.broker)
    if not args.queue_only:
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


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _warm_api_result(service: dict, broker: str) -> dict | None:
    """Item 7: one warm CIFAR-10 upload through grader serve against baseline runs taken
    beside it."""
    runs, base_runs = service.get("latency") or [], service.get("latency_baseline") or []
    if not runs:
        return None
    wall, base = _median(runs, "wall"), _median(base_runs, "wall")
    ratio = round(wall / base, 3) if wall and base else None
    return {
        "what": "POST the course's CIFAR-10 model to the API of the idle, warm grader serve, "
        "until its result row is stored (polled every 10 ms); each run beside a baseline run",
        "broker": BROKERS[broker],
        "wall_s": wall,
        "runs_s": [round(r["wall"], 3) for r in runs],
        "baseline_s": base,
        "baseline_runs_s": [round(r["wall"], 3) for r in base_runs],
        "phases_s": _phases_any(runs),
        "statuses": sorted({r["status"] for r in runs}),
        "ratio_to_baseline": ratio,
        "target_ratio_max": TARGETS["warm_api"],
        "met": ratio is not None and ratio <= TARGETS["warm_api"],
    }


def _queued_result(
    args: argparse.Namespace, sequential: list[dict], sequential_wall: float,
    base: float | None, service: dict | None,
) -> dict | None:  # fmt: skip
    """Item 4: the queued run against ``--queued`` baseline runs one after another."""
    if service is None or "queued" not in service:
        return None
    n_jobs = args.queued
    if len(sequential) >= n_jobs:
        base_total, how = sequential_wall, f"{n_jobs} baseline runs, one after another"
    elif sequential:
        base_total = sequential_wall / len(sequential) * n_jobs
        how = f"{len(sequential)} baseline runs one after another, extrapolated x{n_jobs}"
    elif base:
        base_total, how = base * n_jobs, f"median baseline (item 1) x{n_jobs}, extrapolated"
    else:
        base_total, how = None, "no baseline measured"
    q = service["queued"]
    ratio = round(base_total / q["wall"], 3) if base_total else None
    return {
        "what": f"{n_jobs} uploads of the same model at once (one API client thread and one "
        "student each) to grader serve; wall time from the first POST until the last result "
        "row is in the database (polled every 0.1 s)",
        "jobs": n_jobs,
        "layout": {
            "web": "grader serve (werkzeug, threaded)",
            "inspect_workers": 1,
            "evaluate_slots": args.eval_slots,
            "pool": "prefork" if args.eval_slots > 1 else "solo",
            "evaluator": "one WarmEvaluator per evaluate process",
            "database": "SQLite (WAL)",
            "broker": BROKERS[args.broker],
        },
        "service_start_s": service["service"]["ready_s"],
        "warmup_s": service["service"]["warmup_s"],
        "warm_sandboxes": service["zygotes"],
        "warm_sandboxes_after": service["zygotes_after"],
        "wall_s": round(q["wall"], 3),
        "wall_by_timestamps_s": q["wall_by_timestamps_s"],
        "uploads_done_s": q["uploads_done_s"],
        "throughput_jobs_per_min": round(60 * n_jobs / q["wall"], 2),
        "states": q["states"],
        "baseline_total_s": round(base_total, 3) if base_total else None,
        "baseline_how": how,
        "baseline_runs_s": [round(r["wall"], 3) for r in sequential],
        "baseline_phases_s": _phases(sequential) if sequential else None,
        "throughput_ratio": ratio,
        "target_ratio_min": TARGETS["queued_throughput"],
        "met": ratio is not None and ratio >= TARGETS["queued_throughput"],
        "job_phases_median_s": _phases_any(q["jobs"]),
    }


def _phases_any(runs: list[dict]) -> dict[str, float]:
    """Median of every phase any run has, in first-seen order."""
    keys = list(dict.fromkeys(k for r in runs for k in r["phases"]))
    return {k: round(statistics.median(r["phases"].get(k, 0.0) for r in runs), 3) for k in keys}


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
        d = r.get(key)
        if d is None:
            continue
        phases = " ".join(f"{k}={v:.2f}" for k, v in d["phases_s"].items())
        ratio = d.get("ratio_to_baseline")
        target = f"<= {d['target_ratio_max']}x" if "target_ratio_max" in d else ""
        mark = "" if "met" not in d else (" ok" if d["met"] else " MISSED")
        rows.append((label, f"{d['wall_s']:.2f}", f"{ratio:.2f}" if ratio else "1.00",
                     target + mark, phases))  # fmt: skip
    q = r.get("queued_20")
    if q is None:
        rows.append(("4 queued", "null", "", ">= 2x throughput", "not measured"))
    else:
        ratio = q["throughput_ratio"]
        mark = "" if ratio is None else (" ok" if q["met"] else " MISSED")
        phases = " ".join(f"{k}={v:.2f}" for k, v in q["job_phases_median_s"].items())
        base = q["baseline_total_s"]
        base_text = f"baseline total {base:.1f} s" if base else "no baseline"
        rows.append((f"4 {q['jobs']} queued",
                     f"{q['wall_s']:.1f} total", f"{ratio:.2f}x thr" if ratio else "",
                     ">= 2x throughput" + mark,
                     f"{base_text}; per job: {phases}"))  # fmt: skip
    f = r["refused_lambda"]
    ok = " ok" if f["met"] else " MISSED"
    tf = f"TensorFlow imported: {f['tensorflow_imported']}"
    rows.append(("5 refused Lambda file", f"{f['wall_s']:.3f}", "", "< 0.3 s" + ok, tf))
    a = r.get("refused_lambda_api")
    if a:
        mark = " ok" if a["met"] else " MISSED"
        rows.append(("5 refused, API to stored", f"{a['wall_s']:.3f}", "", "<= 0.3 s" + mark,
                     f"upload {a['upload_s']:.3f} s, {a['statuses']}"))  # fmt: skip
    w7 = r.get("warm_api")
    if w7:
        mark = "" if w7["ratio_to_baseline"] is None else (" ok" if w7["met"] else " MISSED")
        phases = " ".join(f"{k}={v:.2f}" for k, v in w7["phases_s"].items())
        ratio = w7["ratio_to_baseline"]
        rows.append(("7 warm CIFAR-10, API to stored", f"{w7['wall_s']:.2f}",
                     f"{ratio:.2f}" if ratio else "", "<= 0.5x" + mark,
                     f"beside baseline {w7['baseline_s']}; {phases}"))  # fmt: skip
    m = r.get("peak_memory")
    if m:
        rows.append(("6 peak RSS, warm job", f"{(m['warm_job_rss_bytes'] or 0) / mib:.0f} MiB",
                     "", "<= 1.5 GB" + (" ok" if m["met"] else " MISSED"),
                     f"baseline {(m['baseline_rss_bytes'] or 0) / mib:.0f} MiB, zygote "
                     f"{(m['zygote_rss_bytes'] or 0) / mib:.0f} MiB"))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = [row[i].ljust(widths[i]) for i in range(4)]
        print("  ".join([*cells, row[4]]), file=sys.stderr)
    w = r.get("warm_worker")
    if w:
        print(f"warm worker start (once): {w['zygote_start_s']:.2f} s", file=sys.stderr)
    if q:
        lay = q["layout"]
        print(f"queued: {lay['broker']}; 1 inspect worker + {lay['evaluate_slots']} evaluate "
              f"({lay['pool']}); service start {q['service_start_s']:.1f} s, warm-up "
              f"{q['warmup_s']:.1f} s (not counted); {q['baseline_how']}",
              file=sys.stderr)  # fmt: skip
    print(f"machine load {r['machine']['load_average_start']} -> "
          f"{r['machine']['load_average_end']}", file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
