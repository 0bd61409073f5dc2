"""Spawn the sandbox, enforce the wall clock, and turn what comes back into a verdict.

The payload is hostile: its output files are size-capped, parsed without pickle and
re-validated here; its stdout/stderr go to files (capped by RLIMIT_FSIZE), and only a
scrubbed tail ever reaches a message shown to anyone.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path, PurePosixPath

from grader.errors import ConfigurationError, NotGradable, SandboxUnavailable
from grader.formats import EXTENSIONS
from grader.sandbox import launcher as _launcher
from grader.sandbox.policy import (
    DEFAULT_BACKEND,
    FMAP_IMAGES_NAME,
    IMAGES_NAME,
    LAUNCHER_NAME,
    NOBODY_GID,
    NOBODY_UID,
    OUT_DIR,
    SANDBOX_DIR,
    Bind,
    SandboxLimits,
    check_backend,
    launcher_args,
    python_roots,
    sandbox_argv,
    sandbox_env,
    trusted_argv,
)
from grader.sandbox.verdict import (
    EvaluationResult,
    collect,
    count_images,
    raise_for_failure,
    read_capped,
    tail,
)
from grader.settings import get_settings

log = logging.getLogger(__name__)
LAUNCHER_SOURCE = Path(_launcher.__file__)
#: Seconds the runner waits beyond ``timeout -k`` before killing the group itself.
RUNNER_SLACK_SECONDS = 10


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
        err = tail(proc.stderr, 2) or f"exit status {proc.returncode}"
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


def python_binds() -> list[Bind]:
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
    return proc.returncode, read_capped(out_path), read_capped(err_path), elapsed, killed


def run_sandboxed(
    argv: list[str],
    *,
    read_only: list[Path],
    limits: SandboxLimits,
    writable_dir: Path | None = None,
    backend: str = DEFAULT_BACKEND,
) -> subprocess.CompletedProcess:
    """Run ``argv`` in the same confinement as :func:`evaluate_model` (used to prove it).

    ``read_only`` host paths appear at the same path, read-only; ``writable_dir`` (if any)
    appears at its own path, writable. The caller must make them readable/writable by
    uid 65534. stdout/stderr are text, capped to their last 4 MiB. ``backend``: whose
    environment (``KERAS_BACKEND``, thread caps) the sandbox gets.
    """
    binds = python_binds() + [Bind(Path(p), PurePosixPath(str(p))) for p in read_only]
    if writable_dir is not None:
        binds.append(Bind(Path(writable_dir), PurePosixPath(str(writable_dir)), writable=True))
    full = sandbox_argv(list(argv), limits=limits, binds=binds, backend=backend)
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
    probes: tuple[str, ...] = (),
    probe_images: int = 0,
    feature_images: Path | None = None,
    backend: str | None = None,
) -> EvaluationResult:
    """Load ``model_path`` in the sandbox, describe it and predict ``images`` (uint8 NHWC).

    ``loader`` is "keras" (Keras 3) or "tf_keras" (files written by Keras 2).
    ``backend``: the Keras backend inside (None: ``GRADER_KERAS_BACKEND``).
    ``probes`` also predicts the first ``probe_images`` images under each named
    variant (see the launcher's ``probe_input``); they come back unscored.
    ``feature_images`` (uint8 NHWC, a few images) get their convolution and pooling
    activations returned, capped (``EvaluationResult.feature_maps``).
    Raises only NotGradable (the file's fault, plain words) or SandboxUnavailable.
    """
    if not trust:
        require_sandbox()
    backend = resolve_backend(backend, loader)
    model_path = Path(model_path)
    suffix = model_suffix(model_path)
    n_images = None
    if images is not None:
        n_images = count_images(Path(images))
    n_feature = count_images(Path(feature_images)) if feature_images is not None else 0

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
        if feature_images is not None:
            shutil.copyfile(feature_images, stage / FMAP_IMAGES_NAME)
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
                    probes=probes, probe_images=probe_images,
                    fmap_images=(str(root / FMAP_IMAGES_NAME)
                                 if feature_images is not None else None),
                ),
            ]  # fmt: skip

        spawn_t = time.time()
        if trust:
            argv = trusted_argv(launcher(stage, out, [str(home)]), limits=limits, gpu=gpu)
            env = sandbox_env(gpu, backend) | {
                "HOME": str(home),
                "TMPDIR": str(home),
                "KERAS_HOME": str(home / ".keras"),
                "MPLCONFIGDIR": str(home),
            }
            rc, _, err, elapsed, killed = _spawn(argv, work, limits.wall_seconds, env=env)
        else:
            os.chown(out, NOBODY_UID, NOBODY_GID)
            binds = [*python_binds(), Bind(stage, SANDBOX_DIR), Bind(out, OUT_DIR, True)]
            inner = launcher(SANDBOX_DIR, OUT_DIR, ["/tmp"])
            argv = sandbox_argv(inner, limits=limits, binds=binds, gpu=gpu, backend=backend)
            rc, _, err, elapsed, killed = _spawn(argv, work, limits.wall_seconds)

        raise_for_failure(rc, err, out, elapsed, killed, limits, scrub=[str(work)])
        return collect(out, n_images, spawn_t, limits, gpu, n_feature, backend=backend)


def resolve_backend(backend: str | None, loader: str = "keras") -> str:
    """The backend a run uses: ``backend`` or the setting; a Keras 2 file (tf_keras exists
    only for TensorFlow) falls back to TensorFlow, logged for the operator, and the
    report records the backend that really ran. ConfigurationError when it cannot."""
    chosen = check_backend(backend or get_settings().keras_backend)
    if loader != "tf_keras" or chosen == DEFAULT_BACKEND:
        return chosen
    if importlib.util.find_spec("tensorflow") is None:
        raise ConfigurationError(
            f"This Keras 2 file needs TensorFlow (tf_keras), which is not installed; this "
            f"worker runs the {chosen} backend. Install tensorflow and tf_keras, or route "
            "Keras 2 files to a TensorFlow worker."
        )
    log.warning("a Keras 2 file runs on TensorFlow, not on the %s backend", chosen)
    return DEFAULT_BACKEND


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
