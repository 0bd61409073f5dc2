"""Spawn the sandbox, enforce the wall clock, and turn what comes back into a verdict.

The payload is hostile: its output files are size-capped, parsed without pickle and
re-validated here; its stdout/stderr go to files (capped by RLIMIT_FSIZE), and only a
scrubbed tail ever reaches a message shown to anyone.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from grader.errors import NotGradable, SandboxUnavailable
from grader.formats import EXTENSIONS
from grader.sandbox import launcher as _launcher
from grader.sandbox.policy import (
    IMAGES_NAME,
    LAUNCHER_NAME,
    NOBODY_GID,
    NOBODY_UID,
    OUT_DIR,
    SANDBOX_DIR,
    Bind,
    SandboxLimits,
    launcher_args,
    python_roots,
    sandbox_argv,
    sandbox_env,
    trusted_argv,
)

LAUNCHER_SOURCE = Path(_launcher.__file__)
SUMMARY_MAX_BYTES = 16 * 1024 * 1024
STREAM_MAX_BYTES = 4 * 1024 * 1024
#: Seconds the runner waits beyond ``timeout -k`` before killing the group itself.
RUNNER_SLACK_SECONDS = 10


@dataclass
class EvaluationResult:
    """What the sandbox reported about one model, after validation on the trusted side."""

    layers: list[dict]
    total_params: int
    trainable_params: int
    input_shape: list | None
    predictions: np.ndarray | None
    timings: dict[str, float] = field(default_factory=dict)
    peak_rss_bytes: int | None = None
    device: str = "cpu"


# --------------------------------------------------------------------------- status
@functools.lru_cache(maxsize=1)
def sandbox_status() -> tuple[bool, str]:
    """Can untrusted code be confined here? Probes the real wrapper chain once."""
    if sys.platform != "linux":
        return False, "the sandbox needs Linux (bubblewrap)"
    missing = [t for t in ("bwrap", "setpriv", "prlimit", "timeout") if shutil.which(t) is None]
    if missing:
        return (
            False,
            f"missing program(s): {', '.join(missing)} (install bubblewrap and util-linux)",
        )
    if os.geteuid() != 0:
        return False, "the sandbox must be started as root (it drops to uid 65534 itself)"
    limits = SandboxLimits(
        memory_bytes=1024**3,
        cpu_seconds=20,
        wall_seconds=20,
        max_processes=64,
        max_file_bytes=1024 * 1024,
    )
    code = "import os,sys; sys.stdout.write('ok %d' % os.getuid())"
    try:
        proc = run_sandboxed([sys.executable, "-I", "-c", code], read_only=[], limits=limits)
    except Exception as exc:  # OSError, timeouts: any failure means "no sandbox"
        return False, f"bubblewrap could not start: {exc}"
    if proc.returncode != 0 or proc.stdout.strip() != f"ok {NOBODY_UID}":
        err = _tail(proc.stderr, 2) or f"exit status {proc.returncode}"
        return False, f"bubblewrap could not start a sandbox here: {err}"
    return True, "bubblewrap sandbox available"


# --------------------------------------------------------------------------- spawning
@contextmanager
def _private_tmp() -> Iterator[Path]:
    """A root-only temp dir (0700), always removed; children are opened up as needed."""
    root = Path(tempfile.mkdtemp(prefix="grader-sbx-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _python_binds() -> list[Bind]:
    return [Bind(p, PurePosixPath(str(p))) for p in python_roots()]


def _spawn(
    argv: list[str], workdir: Path, wall_seconds: int, env: dict[str, str] | None = None
) -> tuple[int, str, str, float, bool]:
    """Run ``argv`` in its own process group with output in files; kill the group on overrun.

    Returns (returncode, stdout, stderr, elapsed seconds, killed_by_runner).
    """
    out_path, err_path = workdir / "stdout.txt", workdir / "stderr.txt"
    killed = False
    t0 = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            env=env,
            cwd="/",
        )
        try:
            proc.wait(timeout=wall_seconds + RUNNER_SLACK_SECONDS)
        except BaseException as exc:  # overrun, or the grader itself is interrupted
            killed = isinstance(exc, subprocess.TimeoutExpired)
            # The group is still owned by the unreaped leader, so this cannot hit a
            # recycled pgid. bwrap's --die-with-parent takes the namespace down with it.
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if not killed:
                raise
    elapsed = time.monotonic() - t0
    return proc.returncode, _read_capped(out_path), _read_capped(err_path), elapsed, killed


def _read_capped(path: Path, limit: int = STREAM_MAX_BYTES) -> str:
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > limit:
                fh.seek(size - limit)
            return fh.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


def run_sandboxed(
    argv: list[str],
    *,
    read_only: list[Path],
    limits: SandboxLimits,
    writable_dir: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run ``argv`` in the same confinement as :func:`evaluate_model` (used to prove it).

    ``read_only`` host paths appear at the same path, read-only; ``writable_dir`` (if any)
    appears at its own path, writable. The caller must make them readable/writable by
    uid 65534. stdout/stderr are text, capped to their last 4 MiB.
    """
    binds = _python_binds() + [Bind(Path(p), PurePosixPath(str(p))) for p in read_only]
    if writable_dir is not None:
        binds.append(Bind(Path(writable_dir), PurePosixPath(str(writable_dir)), writable=True))
    full = sandbox_argv(list(argv), limits=limits, binds=binds)
    with _private_tmp() as work:
        rc, out, err, _, _ = _spawn(full, work, limits.wall_seconds)
    return subprocess.CompletedProcess(full, rc, out, err)


# --------------------------------------------------------------------------- evaluate
def evaluate_model(
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
) -> EvaluationResult:
    """Load ``model_path`` in the sandbox, describe it and predict ``images`` (uint8 NHWC).

    ``loader`` is "keras" (Keras 3) or "tf_keras" (files written by Keras 2).
    Raises only NotGradable (the file's fault, plain words) or SandboxUnavailable.
    """
    if not trust:
        require_sandbox()
    model_path = Path(model_path)
    suffix = model_suffix(model_path)
    n_images = None
    if images is not None:
        n_images = _count_images(Path(images))

    with _private_tmp() as work:
        stage = work / "sandbox"  # visible inside as /sandbox (read-only)
        out = work / "out"  # visible inside as /out (writable by uid 65534 only)
        stage.mkdir(mode=0o755)
        out.mkdir(mode=0o700)
        home = work / "home"
        home.mkdir(mode=0o700)
        try:
            shutil.copyfile(model_path, stage / f"model{suffix}")
        except OSError as exc:
            raise NotGradable(f"The model file could not be read ({exc.strerror}).") from exc
        shutil.copyfile(LAUNCHER_SOURCE, stage / LAUNCHER_NAME)
        if images is not None:
            shutil.copyfile(images, stage / IMAGES_NAME)
        for f in stage.iterdir():
            f.chmod(0o444)
        stage.chmod(0o755)

        def launcher(
            root: Path | PurePosixPath, out_dir: Path | PurePosixPath, write_dirs: list[str]
        ) -> list[str]:
            """The launcher's command line, with the files staged under ``root``
            (the host folder when trusted, its mount point in the sandbox otherwise)."""
            return [
                sys.executable, "-I", "-B", str(root / LAUNCHER_NAME),
                *launcher_args(
                    model=str(root / f"model{suffix}"),
                    images=str(root / IMAGES_NAME) if images is not None else None,
                    out_dir=str(out_dir), scale=scale, offset=offset, batch_size=batch_size,
                    gpu=gpu, landlock=True, write_dirs=write_dirs, loader=loader,
                ),
            ]  # fmt: skip

        spawn_t = time.time()
        if trust:
            argv = trusted_argv(launcher(stage, out, [str(home)]), limits=limits, gpu=gpu)
            env = sandbox_env(gpu) | {
                "HOME": str(home),
                "TMPDIR": str(home),
                "KERAS_HOME": str(home / ".keras"),
                "MPLCONFIGDIR": str(home),
            }
            rc, _, err, elapsed, killed = _spawn(argv, work, limits.wall_seconds, env=env)
        else:
            os.chown(out, NOBODY_UID, NOBODY_GID)
            binds = [*_python_binds(), Bind(stage, SANDBOX_DIR), Bind(out, OUT_DIR, True)]
            inner = launcher(SANDBOX_DIR, OUT_DIR, ["/tmp"])
            argv = sandbox_argv(inner, limits=limits, binds=binds, gpu=gpu)
            rc, _, err, elapsed, killed = _spawn(argv, work, limits.wall_seconds)

        _raise_for_failure(rc, err, out, elapsed, killed, limits, scrub=[str(work)])
        return _collect(out, n_images, spawn_t, limits, gpu)


def require_sandbox() -> None:
    """Raise SandboxUnavailable (the operator's problem) when nothing can be confined here."""
    ok, why = sandbox_status()
    if not ok:
        raise SandboxUnavailable(
            f"No sandbox can be set up on this machine ({why}). Install bubblewrap "
            "and run as root, or pass --trust to evaluate a model file you made yourself."
        )


def model_suffix(model_path: Path) -> str:
    """The file's suffix, lower-cased; NotGradable unless it is a Keras model format."""
    suffix = Path(model_path).suffix.lower()
    if suffix not in EXTENSIONS:
        raise NotGradable(
            f"The model file must end in .keras, .h5 or .hdf5, not {suffix or 'nothing'!r}."
        )
    return suffix


def _count_images(path: Path) -> int:
    """Row count of the trusted images file (header only, no pickle)."""
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    if arr.ndim != 4 or arr.dtype != np.uint8:
        raise ValueError(f"images must be uint8 NHWC, got {arr.dtype} {arr.shape}")
    return int(arr.shape[0])


# --------------------------------------------------------------------------- verdicts
_MEMORY_HINTS = (
    "MemoryError",
    "bad_alloc",
    "Cannot allocate memory",
    "OOM when allocating",
    "ResourceExhaustedError",
    "out of memory",
)

_THREAD_HINTS = (
    "pthread_create",
    "Resource temporarily unavailable",
    "libgcc_s.so.1 must be installed",  # glibc failed to dlopen it: mmap refused
)


def _raise_for_failure(
    rc: int,
    err: str,
    out: Path,
    elapsed: float,
    killed: bool,
    limits: SandboxLimits,
    scrub: list[str],
) -> None:
    """Map how the sandbox ended to a NotGradable with a plain-words reason."""
    if rc == 0:
        return
    timed_out = killed or (
        rc in (124, 137, -signal.SIGKILL) and elapsed >= limits.wall_seconds - 0.5
    )
    if timed_out:
        raise NotGradable(
            f"Evaluation took longer than the limit of {limits.wall_seconds} s and was stopped."
        )
    info = _read_error_json(out / "error.json")
    if info is not None:
        kind, msg = info
        if kind == "load":
            raise NotGradable(f"The model could not be loaded: {msg}")
        if kind == "predict":
            raise NotGradable(f"The model could not make predictions on the images: {msg}")
        if kind == "memory":
            raise NotGradable(_memory_message(limits))
    if rc in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        raise NotGradable(
            f"Evaluation used more CPU time than the limit of {limits.cpu_seconds} s "
            "and was stopped."
        )
    if any(h in err for h in _MEMORY_HINTS) or rc in (-signal.SIGKILL, 137):
        raise NotGradable(_memory_message(limits))
    if any(h in err for h in _THREAD_HINTS):
        # RLIMIT_AS (thread stacks, dlopen) or RLIMIT_NPROC (threads count as processes).
        raise NotGradable(
            "Evaluation used more memory than the limit of "
            f"{limits.memory_bytes // (1024 * 1024)} MiB (or more than "
            f"{limits.max_processes} threads) and was stopped."
        )
    if info is not None:
        raise NotGradable(f"Evaluation failed: {_scrub(info[1], scrub)}")
    status = (
        f"signal {signal.Signals(-rc).name}"
        if rc < 0 and -rc in _SIGNALS
        else (f"exit status {rc}")
    )
    tail = _tail(_scrub(err, scrub), 5)
    raise NotGradable(
        f"Evaluation stopped unexpectedly ({status})."
        + (f" Last lines of its error output:\n{tail}" if tail else "")
    )


_SIGNALS = {s.value for s in signal.Signals}


def _memory_message(limits: SandboxLimits) -> str:
    mib = limits.memory_bytes // (1024 * 1024)
    return f"Evaluation used more memory than the limit of {mib} MiB and was stopped."


def _read_error_json(path: Path) -> tuple[str, str] | None:
    try:
        if path.stat().st_size > 64 * 1024:
            return None
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("error"), str):
        return None
    kind = data.get("kind") if isinstance(data.get("kind"), str) else "other"
    return kind, _scrub(data["error"], [])[:300]


_PATH_RE = re.compile(r"(?:/[\w.@+-]+){2,}")


def _scrub(text: str, extra: list[str]) -> str:
    """Remove host paths (temp dirs, the Python installation) from sandbox output."""
    for root in [*extra, *map(str, python_roots()), sys.prefix]:
        if root and root != "/":
            text = text.replace(root, "…")
    return _PATH_RE.sub(lambda m: "…/" + m.group(0).rsplit("/", 1)[-1], text)


_NOISE = re.compile(r"^(@ |\*\*\* |\[symbolize|WARNING: All log messages|[IW]\d{4} )")


def _tail(text: str, n: int) -> str:
    """Last ``n`` meaningful lines (no stack-frame addresses or TF info chatter)."""
    lines = (ln.strip() for ln in text.splitlines())
    keep = [ln[:200] for ln in lines if ln and not _NOISE.match(ln)]
    return "\n".join(keep[-n:])


# --------------------------------------------------------------------------- results
def _bad(reason: str) -> NotGradable:
    return NotGradable(f"The evaluation returned unusable results: {reason}.")


def _collect(
    out: Path, n_images: int | None, spawn_t: float, limits: SandboxLimits, gpu: int | None
) -> EvaluationResult:
    """Parse and validate everything the sandbox wrote; trust none of it."""
    path = out / "summary.json"
    try:
        if path.is_symlink() or path.stat().st_size > SUMMARY_MAX_BYTES:
            raise _bad("the summary is missing or too large")
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise _bad("the summary is missing or unreadable") from exc
    if os.environ.get("GRADER_SANDBOX_DEBUG"):
        print("sandbox confinement:", data.get("confinement"), file=sys.stderr)
    if not isinstance(data, dict):
        raise _bad("the summary is not an object")

    layers = data.get("layers")
    if not isinstance(layers, list) or not all(isinstance(r, dict) for r in layers):
        raise _bad("the layer table is malformed")
    clean_layers = [_clean_layer(r) for r in layers]
    total, trainable = data.get("total_params"), data.get("trainable_params")
    if not _is_count(total) or not _is_count(trainable):
        raise _bad("parameter counts are missing")
    input_shape = _clean_shape(data.get("input_shape"))

    timings: dict[str, float] = {}
    raw_t = data.get("timings") if isinstance(data.get("timings"), dict) else {}
    started = data.get("started_at")
    if isinstance(started, int | float) and math.isfinite(started):
        timings["sandbox_start"] = max(0.0, float(started) - spawn_t)
    for key in ("import", "load", "predict"):
        v = raw_t.get(key)
        if isinstance(v, int | float) and math.isfinite(v):
            timings[key] = float(v)
    rss = data.get("peak_rss_bytes")

    predictions = None
    if n_images is not None:
        predictions = _load_predictions(out / "predictions.npy", n_images, limits)
    return EvaluationResult(
        layers=clean_layers,
        total_params=int(total),
        trainable_params=int(trainable),
        input_shape=input_shape,
        predictions=predictions,
        timings=timings,
        peak_rss_bytes=int(rss) if _is_count(rss) else None,
        device="cpu" if gpu is None else f"gpu:{gpu}",
    )


def _is_count(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _clean_shape(v: object) -> list | None:
    if not isinstance(v, list):
        return None
    if all(d is None or _is_count(d) for d in v):
        return list(v)
    if all(isinstance(d, list) for d in v):  # several outputs
        return [_clean_shape(d) for d in v]
    return None


def _clean_layer(r: dict) -> dict:
    def text(key: str) -> str:
        v = r.get(key)
        return v[:200] if isinstance(v, str) else ""

    params, trainable = r.get("params"), r.get("trainable_params")
    return {
        "name": text("name"),
        "type": text("type"),
        "output_shape": _clean_shape(r.get("output_shape")),
        "params": int(params) if _is_count(params) else 0,
        "trainable_params": int(trainable) if _is_count(trainable) else 0,
        "path": text("path"),
    }


def _load_predictions(path: Path, n_images: int, limits: SandboxLimits) -> np.ndarray:
    try:
        if path.is_symlink() or not path.is_file():
            raise _bad("no predictions were written")
        if path.stat().st_size > limits.max_file_bytes:
            raise _bad("the predictions file is too large")
        with open(path, "rb") as fh:
            arr = np.load(fh, allow_pickle=False)
    except NotGradable:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise _bad("the predictions file is unreadable") from exc
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
        raise NotGradable("The model's predictions are not numbers.")
    if arr.ndim != 2:
        raise NotGradable(
            f"The model's output has shape {list(arr.shape)}; expected one row of "
            "class scores per image (a 2-D output)."
        )
    if arr.shape[0] != n_images:
        raise NotGradable(f"The model returned {arr.shape[0]} predictions for {n_images} images.")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise NotGradable("The model's predictions contain NaN or infinite values.")
    return arr
