"""Warm sandboxed evaluation: pay TensorFlow's import once per worker, not once per job.

Design (chosen after measuring, see bench/README.md): ONE long-lived "zygote" runs under
exactly the cold path's wrapper chain (timeout, prlimit, bwrap with fresh namespaces and
a read-only view, uid 65534 without capabilities). It imports TensorFlow/Keras and maps
the test images once, then applies seccomp (everything but fork) and Landlock, marks
itself non-dumpable and waits. It never opens a student's file.

Per job, the trusted side places the model file (and nothing else) in a fresh job folder
``/jobs/<random>/``, sends one JSON line, and the zygote forks a child that, before it
opens the file: takes its own process group, points stdio at its own log files, lowers
RLIMIT_AS/CPU/FSIZE to the job's limits, applies the full seccomp deny list (fork, exec,
non-unix sockets, ptrace, SysV/POSIX IPC...) and a Landlock domain that can write only
its own ``out``/``tmp`` and five harmless device files. The child is used for exactly one
job; the trusted side enforces the wall clock by killing it (and the zygote if the zygote
stops answering), deletes the job folder before the next job starts, and validates the
results with the cold path's own code (:mod:`grader.sandbox.runner`). A dead zygote is
replaced transparently. Forking after ``import tensorflow`` but before any op runs was
measured safe here (one idle extra thread; predictions bit-identical to the cold path).

Fallbacks: ``trust=True``, a GPU, or a kernel without Landlock (needed to keep jobs
apart inside one shared sandbox) use the cold :func:`evaluate_model`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from types import TracebackType

from grader.errors import NotGradable
from grader.sandbox.policy import (
    DEFAULT_BACKEND,
    FMAP_IMAGES_NAME,
    IMAGES_NAME,
    LAUNCHER_NAME,
    NOBODY_GID,
    NOBODY_UID,
    SANDBOX_DIR,
    Bind,
    SandboxLimits,
    sandbox_argv,
)
from grader.sandbox.runner import (
    LAUNCHER_SOURCE,
    evaluate_model,
    model_suffix,
    python_binds,
    require_sandbox,
    resolve_backend,
)
from grader.sandbox.verdict import (
    EvaluationResult,
    collect,
    count_images,
    raise_for_failure,
    read_capped,
    tail,
)

log = logging.getLogger(__name__)

JOBS_DIR = PurePosixPath("/jobs")
#: The zygote's own wall clock (``timeout``); it is replaced before it can expire mid-job.
ZYGOTE_LIFETIME_SECONDS = 6 * 3600
#: TensorFlow's import under a loaded 2-core machine took up to ~10 s; leave room.
START_TIMEOUT_SECONDS = 180
#: How long the zygote may take to confirm a fork, or a kill, before it is replaced.
ANSWER_SECONDS = 15
#: The zygote needs TensorFlow's address space itself; each job lowers it to its own limit.
ZYGOTE_MIN_ADDRESS_SPACE = 4 * 1024**3
_MAX_LINE = 64 * 1024


class _ZygoteGone(Exception):
    """The zygote stopped answering or exited; ``before_start``: no child was forked."""

    def __init__(self, message: str, before_start: bool) -> None:
        super().__init__(message)
        self.before_start = before_start


@dataclass(frozen=True)
class _FileKey:
    path: str
    dev: int
    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> _FileKey:
        st = os.stat(path)
        return cls(os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass
class _JobOutcome:
    rc: int
    elapsed: float
    killed: bool
    spawn_t: float
    out: Path
    job_dir: Path


class _Zygote:
    """One sandboxed pre-imported process and the host folders it sees."""

    def __init__(
        self,
        images: Path | None,
        ceiling: SandboxLimits,
        allow_payloads: bool,
        backend: str = DEFAULT_BACKEND,
    ) -> None:
        self.images_key = _FileKey.of(images) if images is not None else None
        self.ceiling = ceiling
        self.work = Path(tempfile.mkdtemp(prefix="grader-warm-"))  # 0700, root only
        self.jobs = self.work / "jobs"
        stage = self.work / "sandbox"
        stage.mkdir(mode=0o755)
        self.jobs.mkdir(mode=0o755)
        shutil.copyfile(LAUNCHER_SOURCE, stage / LAUNCHER_NAME)
        inner = [
            sys.executable, "-I", "-B", str(SANDBOX_DIR / LAUNCHER_NAME), "--zygote",
            "--jobs", str(JOBS_DIR),
        ]  # fmt: skip
        if images is not None:
            shutil.copyfile(images, stage / IMAGES_NAME)  # once per worker, mapped once
            inner += ["--images", str(SANDBOX_DIR / IMAGES_NAME)]
        if allow_payloads:
            inner.append("--allow-payloads")
        for f in stage.iterdir():
            f.chmod(0o444)
        binds = [*python_binds(), Bind(stage, SANDBOX_DIR), Bind(self.jobs, JOBS_DIR, True)]
        chain = replace(
            ceiling,
            memory_bytes=max(ceiling.memory_bytes, ZYGOTE_MIN_ADDRESS_SPACE),
            wall_seconds=ZYGOTE_LIFETIME_SECONDS,
        )
        self.stderr_path = self.work / "zygote-stderr.txt"
        self.started = time.monotonic()
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                sandbox_argv(inner, limits=chain, binds=binds, backend=backend),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
                cwd="/",
            )
        self._buf = b""
        self.ready: dict | None = None
        self.host_pid: int | None = None

    # ----------------------------------------------------------------- protocol
    def _read_msg(self, deadline: float) -> dict | None:
        """Next JSON line from the zygote; None on timeout; _ZygoteGone on EOF/garbage."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise _ZygoteGone("the warm sandbox exited", before_start=False)
            self._buf += chunk
            if len(self._buf) > _MAX_LINE:
                raise _ZygoteGone("the warm sandbox sent garbage", before_start=False)
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            msg = json.loads(line)
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            raise _ZygoteGone("the warm sandbox sent garbage", before_start=False)
        return msg

    def wait_ready(self, timeout: float = START_TIMEOUT_SECONDS) -> dict:
        try:
            msg = self._read_msg(time.monotonic() + timeout)
        except _ZygoteGone:
            msg = None
        if not msg or msg.get("ready") is not True or not isinstance(msg.get("pid"), int):
            last = tail(read_capped(self.stderr_path), 3)
            self.kill()
            raise RuntimeError(f"the warm sandbox did not start: {last or 'no output'}")
        self.ready = msg
        self.host_pid = self._host_pid_of(msg["pid"], parent=None)
        return msg

    def send(self, req: dict) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(req) + "\n").encode())
            self.proc.stdin.flush()
        except OSError as exc:
            raise _ZygoteGone("the warm sandbox exited", before_start=True) from exc

    # ----------------------------------------------------------------- jobs
    def new_job(
        self,
        model_path: Path | None,
        suffix: str,
        images: Path | None = None,
        feature_images: Path | None = None,
    ) -> tuple[Path, dict]:
        """A fresh job folder: the model (read-only) plus out/ and tmp/ for uid 65534.

        ``images`` that are not the zygote's own test set are copied in (like the cold
        path does); the zygote's are already mapped and shared by every job.
        ``feature_images`` (the few images whose feature maps are shown) are copied in.
        """
        token = secrets.token_hex(8)
        job = self.jobs / token
        job.mkdir(mode=0o755)
        inside = JOBS_DIR / token
        req: dict = {"out": str(inside / "out"), "tmp": str(inside / "tmp")}
        if model_path is not None:
            try:
                shutil.copyfile(model_path, job / f"model{suffix}")
            except OSError as exc:
                shutil.rmtree(job, ignore_errors=True)
                raise NotGradable(f"The model file could not be read ({exc.strerror}).") from exc
            (job / f"model{suffix}").chmod(0o444)
            req["model"] = str(inside / f"model{suffix}")
        req["images"] = None
        if images is not None:
            if self.images_key is not None and self.images_key == _FileKey.of(images):
                req["images"] = "preloaded"
            else:
                shutil.copyfile(images, job / IMAGES_NAME)
                (job / IMAGES_NAME).chmod(0o444)
                req["images"] = str(inside / IMAGES_NAME)
        if feature_images is not None:
            shutil.copyfile(feature_images, job / FMAP_IMAGES_NAME)
            (job / FMAP_IMAGES_NAME).chmod(0o444)
            req["fmap_images"] = str(inside / FMAP_IMAGES_NAME)
        for name in ("out", "tmp"):
            (job / name).mkdir(mode=0o700)
            os.chown(job / name, NOBODY_UID, NOBODY_GID)
        return job, req

    def run(self, req: dict, job: Path, wall_seconds: int) -> _JobOutcome:
        """Send one job, enforce its wall clock from the fork on, return how it ended."""
        spawn_t = time.time()
        t0 = time.monotonic()
        self.send(req)
        try:
            msg = self._read_msg(t0 + ANSWER_SECONDS)
        except _ZygoteGone as exc:
            raise _ZygoteGone(str(exc), before_start=True) from exc
        if msg is None or not isinstance(msg.get("started"), int):
            self.kill()
            raise _ZygoteGone("the warm sandbox did not fork", before_start=True)
        child = msg["started"]
        killed = False
        msg = self._read_msg(t0 + wall_seconds)
        if msg is None:  # over the wall clock: kill the child from the host side
            killed = True
            self._kill_child(child)
            msg = self._read_msg(time.monotonic() + ANSWER_SECONDS)
            if msg is None:
                self.kill()
                msg = {"exit": -signal.SIGKILL}
        rc = msg.get("exit")
        if not isinstance(rc, int) or isinstance(rc, bool):
            self.kill()
            raise _ZygoteGone("the warm sandbox sent garbage", before_start=False)
        return _JobOutcome(rc, time.monotonic() - t0, killed, spawn_t, job / "out", job)

    def _kill_child(self, inner_pid: int) -> None:
        host = self._host_pid_of(inner_pid, parent=self.host_pid)
        if host is None:
            self.kill()  # cannot find it: take the whole sandbox down
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(host, signal.SIGKILL)

    def _host_pid_of(self, inner_pid: int, parent: int | None) -> int | None:
        """Host pid of the sandbox process numbered ``inner_pid`` in its pid namespace."""
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                status = (d / "status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            nspid = fields.get("NSpid", "").split()
            if len(nspid) < 2 or nspid[-1] != str(inner_pid):
                continue
            ppid = int(fields.get("PPid", "0").strip() or 0)
            if parent is not None and ppid != parent:
                continue
            if parent is None and not self._descends_from(int(d.name), self.proc.pid):
                continue
            return int(d.name)
        return None

    @staticmethod
    def _descends_from(pid: int, root: int) -> bool:
        for _ in range(32):
            if pid == root:
                return True
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                return False
            pid = int(stat.rsplit(")", 1)[1].split()[1])
            if pid <= 1:
                return False
        return False

    # ----------------------------------------------------------------- lifecycle
    def alive(self) -> bool:
        return self.proc.poll() is None

    def memory(self) -> dict[str, int]:
        """The zygote's resident memory (VmRSS) and its peak (VmHWM), in bytes."""
        if self.host_pid is None:
            return {}
        out: dict[str, int] = {}
        try:
            for line in Path(f"/proc/{self.host_pid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0]) * 1024
        except (OSError, ValueError):
            return {}
        return out

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def close(self) -> None:
        if self.alive():
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()  # EOF: the zygote leaves its loop
                self.proc.wait(timeout=3)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        shutil.rmtree(self.work, ignore_errors=True)


class WarmEvaluator:
    """A drop-in ``evaluator`` for :func:`grader.pipeline.grade_file` that stays warm.

    Use as a context manager (or ``start()``/``close()``). One job runs at a time per
    instance; a worker that wants two jobs in parallel holds two instances.
    """

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        images: Path | None = None,
        test_hooks: bool = False,
        backend: str | None = None,
    ) -> None:
        """``backend``: the Keras backend the zygote pre-imports (None: the setting); a
        job asking for another one (a Keras 2 file: TensorFlow) takes a cold sandbox."""
        from grader.settings import get_settings

        if limits is None:
            limits = SandboxLimits.from_settings(get_settings())
        self.backend = resolve_backend(backend)
        self._ceiling = limits
        self._images = Path(images) if images is not None else None
        self._test_hooks = test_hooks
        self._zygote: _Zygote | None = None
        self._lock = threading.RLock()
        self._warm_refused: str | None = None
        self.stats: dict[str, float] = {
            "zygote_starts": 0,
            "warm_jobs": 0,
            "cold_jobs": 0,
            "last_start_seconds": 0.0,
        }

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> WarmEvaluator:
        """Start the zygote now and wait until it is ready (seconds: ``stats``)."""
        require_sandbox()
        with self._lock:
            self._ensure(self._ceiling, wall_seconds=0)
        return self

    def close(self) -> None:
        """Stop the zygote and delete its folders."""
        with self._lock:
            if self._zygote is not None:
                self._zygote.close()
                self._zygote = None

    def __enter__(self) -> WarmEvaluator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def warm(self) -> bool:
        """True when jobs run on the warm path (False: Landlock missing, cold fallback)."""
        return self._warm_refused is None

    def zygote_memory(self) -> dict[str, int]:
        """VmRSS/VmHWM of the zygote, in bytes ({} when none runs)."""
        with self._lock:
            return self._zygote.memory() if self._zygote is not None else {}

    def _fits(self, z: _Zygote, limits: SandboxLimits) -> bool:
        c = z.ceiling
        return (
            limits.memory_bytes <= max(c.memory_bytes, ZYGOTE_MIN_ADDRESS_SPACE)
            and limits.cpu_seconds <= c.cpu_seconds
            and limits.max_file_bytes <= c.max_file_bytes
            and limits.max_processes == c.max_processes
            and limits.max_open_files == c.max_open_files
        )

    def _ensure(self, limits: SandboxLimits, wall_seconds: int) -> _Zygote:
        """A ready zygote that can serve this job, (re)started if needed."""
        z = self._zygote
        too_old = (
            z is not None
            and time.monotonic() - z.started > ZYGOTE_LIFETIME_SECONDS - wall_seconds - 120
        )
        if z is not None and (not z.alive() or too_old or not self._fits(z, limits)):
            z.close()
            z = self._zygote = None
        if z is None:
            c = self._ceiling  # the zygote's limits: the most any job so far asked for
            ceiling = self._ceiling = replace(
                limits,
                memory_bytes=max(limits.memory_bytes, c.memory_bytes),
                cpu_seconds=max(limits.cpu_seconds, c.cpu_seconds),
                max_file_bytes=max(limits.max_file_bytes, c.max_file_bytes),
            )
            t0 = time.monotonic()
            z = _Zygote(self._images, ceiling, self._test_hooks, self.backend)
            self.stats["zygote_starts"] += 1
            try:
                ready = z.wait_ready()
            except BaseException:
                z.close()
                raise
            self.stats["last_start_seconds"] = round(time.monotonic() - t0, 3)
            self._zygote = z
            if not ready.get("seccomp") or not ready.get("landlock_abi"):
                self._warm_refused = "seccomp or Landlock unavailable: jobs could not be kept apart"
                log.warning("warm sandbox refused (%s); using cold sandboxes", self._warm_refused)
        return z

    # ----------------------------------------------------------------- jobs
    def __call__(
        self,
        model_path: Path,
        images: Path | None,
        *,
        scale: float = 1 / 255,
        offset: float = 0.0,
        limits: SandboxLimits,
        trust: bool = False,
        gpu: int | None = None,
        batch_size: int = 500,
        loader: str = "keras",
        probes: tuple[str, ...] = (),
        probe_images: int = 0,
        feature_images: Path | None = None,
        backend: str | None = None,
    ) -> EvaluationResult:
        """Same contract as :func:`grader.sandbox.evaluate_model`, on the warm path
        (the zygote holds Keras 3 on its backend: a Keras 2 file, or another backend,
        takes a cold sandbox)."""
        backend = resolve_backend(backend or self.backend, loader)
        cold = dict(
            scale=scale, offset=offset, limits=limits, trust=trust, gpu=gpu, batch_size=batch_size,
            loader=loader, probes=probes, probe_images=probe_images,
            feature_images=feature_images, backend=backend,
        )  # fmt: skip
        other = loader != "keras" or backend != self.backend
        if trust or gpu is not None or self._warm_refused or other:
            self.stats["cold_jobs"] += 1
            return evaluate_model(model_path, images, **cold)  # type: ignore[arg-type]
        require_sandbox()
        model_path = Path(model_path)
        suffix = model_suffix(model_path)
        n_images = count_images(Path(images)) if images is not None else None
        n_feature = count_images(Path(feature_images)) if feature_images is not None else 0
        req = {
            "op": "evaluate",
            "scale": float(scale),
            "offset": float(offset),
            "batch_size": int(batch_size),
            "probes": ",".join(probes),
            "probe_images": int(probe_images),
            "memory_bytes": limits.memory_bytes,
            "cpu_seconds": limits.cpu_seconds,
            "max_file_bytes": limits.max_file_bytes,
        }
        with self._lock:
            for attempt in (1, 2):
                try:
                    z = self._ensure(limits, limits.wall_seconds)
                except RuntimeError as exc:
                    log.warning("%s; using a cold sandbox", exc)
                    self.stats["cold_jobs"] += 1
                    return evaluate_model(model_path, images, **cold)  # type: ignore[arg-type]
                if self._warm_refused:
                    self.stats["cold_jobs"] += 1
                    return evaluate_model(model_path, images, **cold)  # type: ignore[arg-type]
                job, paths = z.new_job(
                    model_path,
                    suffix,
                    Path(images) if images else None,
                    Path(feature_images) if feature_images else None,
                )
                try:
                    try:
                        res = z.run({**req, **paths}, job, limits.wall_seconds)
                    except _ZygoteGone as exc:
                        z.kill()
                        if exc.before_start and attempt == 1:
                            continue  # not the file's fault: once more on a fresh zygote
                        raise NotGradable(
                            "Evaluation stopped unexpectedly (the sandbox ended)."
                        ) from exc
                    self.stats["warm_jobs"] += 1
                    err = read_capped(res.out / "stderr.txt")
                    scrub = [str(z.work), str(JOBS_DIR / job.name)]
                    raise_for_failure(
                        res.rc, err, res.out, res.elapsed, res.killed, limits, scrub=scrub
                    )
                    return collect(
                        res.out, n_images, res.spawn_t, limits, None, n_feature, backend=backend
                    )
                finally:
                    shutil.rmtree(job, ignore_errors=True)
        raise NotGradable("Evaluation stopped unexpectedly (the sandbox ended).")

    def run_payload(
        self,
        code: str,
        *,
        limits: SandboxLimits,
        model_path: Path | None = None,
    ) -> tuple[int, str, str, bool]:
        """TESTS ONLY: run ``code`` in a job child, confined exactly where a model would load.

        ``JOB`` inside holds the job's paths. Returns (exit code, stdout, stderr, killed).
        Needs ``test_hooks=True`` (the zygote refuses payloads otherwise).
        """
        if not self._test_hooks:
            raise RuntimeError("run_payload needs WarmEvaluator(test_hooks=True)")
        suffix = model_suffix(model_path) if model_path is not None else ""
        with self._lock:
            z = self._ensure(limits, limits.wall_seconds)
            job, paths = z.new_job(model_path, suffix)
            req = {
                "op": "payload",
                "code": code,
                "memory_bytes": limits.memory_bytes,
                "cpu_seconds": limits.cpu_seconds,
                "max_file_bytes": limits.max_file_bytes,
                **paths,
            }
            try:
                try:
                    res = z.run(req, job, limits.wall_seconds)
                except _ZygoteGone:
                    z.kill()
                    raise
                return (
                    res.rc,
                    read_capped(res.out / "stdout.txt"),
                    read_capped(res.out / "stderr.txt"),
                    res.killed,
                )
            finally:
                shutil.rmtree(job, ignore_errors=True)
