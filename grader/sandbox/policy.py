"""Pure logic: the argv of the wrapper commands that confine an untrusted model.

Nothing here starts a process, so every isolation decision can be unit-tested.

Chain (measured on this machine, see shared/notes/sandbox.md)::

    timeout -k 5 T  prlimit --as --cpu --nproc --nofile --fsize --core=0
      bwrap (as root: fresh mount/pid/net/ipc/uts/cgroup namespaces, only read-only binds)
        setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs (all caps dropped)
          python -I -B launcher.py ...   (launcher adds seccomp + Landlock, then evaluates)

Why bwrap runs as root and drops the uid *inside*: the Python installation lives under
``/root`` (mode 0700), which an unprivileged bwrap cannot bind, and bwrap's own
``--uid`` would map the sandbox user onto host root (RLIMIT_NPROC is not enforced for
host root, and root-owned files would look owned by the payload). So bwrap only keeps
CAP_SETUID/SETGID/SETPCAP until ``setpriv`` switches to the real host uid 65534 and
clears every capability set.
"""

from __future__ import annotations

import os
import site
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from grader.settings import Settings

GiB = 1024**3
NOBODY_UID = 65534
NOBODY_GID = 65534
#: CUDA reserves a huge virtual address range; 8 GiB failed, 64 GiB worked (notes).
GPU_ADDRESS_SPACE_BYTES = 64 * GiB
#: Extra seconds between SIGTERM and SIGKILL from ``timeout``.
KILL_GRACE_SECONDS = 5

# Fixed paths inside the sandbox.
SANDBOX_DIR = PurePosixPath("/sandbox")
OUT_DIR = PurePosixPath("/out")
LAUNCHER_NAME = "launcher.py"
IMAGES_NAME = "images.npy"
#: The two images whose feature maps are shown (uint8, the model's input size).
FMAP_IMAGES_NAME = "fmap_images.npy"

_BASE_ENV: dict[str, str] = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "KERAS_HOME": "/tmp/.keras",
    "MPLCONFIGDIR": "/tmp",
    "PYTHONDONTWRITEBYTECODE": "1",
    "OMP_NUM_THREADS": "4",
}

#: The Keras backends a sandbox can run (``KERAS_BACKEND`` inside it).
BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT_BACKEND = "tensorflow"
#: What each backend needs on top of the base environment. RLIMIT_NPROC counts threads,
#: so every backend's pools stay bounded whatever the core count (threads measured on
#: CPU after predicting: tensorflow 7, jax 20, torch 3; README "Backends").
_BACKEND_ENV: dict[str, dict[str, str]] = {
    "tensorflow": {"TF_NUM_INTRAOP_THREADS": "4", "TF_NUM_INTEROP_THREADS": "2"},
    # No 75% pre-allocation of the GPU's memory; on CPU no probing for CUDA plugins.
    "jax": {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"},
    # torch's intra-op pool follows OMP_NUM_THREADS; the launcher caps the inter-op pool.
    "torch": {"MKL_NUM_THREADS": "4"},
}


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits for one sandboxed run (applied with prlimit + a wall clock)."""

    memory_bytes: int
    cpu_seconds: int
    wall_seconds: int
    max_processes: int
    max_file_bytes: int
    max_open_files: int = 256

    @classmethod
    def from_settings(cls, s: Settings) -> SandboxLimits:
        """Take the operator's limits from :class:`grader.settings.Settings`."""
        return cls(
            memory_bytes=s.sandbox_memory_bytes,
            cpu_seconds=s.sandbox_cpu_seconds,
            wall_seconds=s.sandbox_wall_seconds,
            max_processes=s.sandbox_max_processes,
            max_file_bytes=s.sandbox_max_file_bytes,
        )


@dataclass(frozen=True)
class Bind:
    """One host path made visible in the sandbox (read-only unless ``writable``)."""

    source: Path
    dest: PurePosixPath
    writable: bool = False


def check_backend(backend: str) -> str:
    """``backend`` if the sandbox knows it; ValueError naming the choices otherwise."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown Keras backend {backend!r} (choose {', '.join(BACKENDS)})")
    return backend


def sandbox_env(gpu: int | None, backend: str = DEFAULT_BACKEND) -> dict[str, str]:
    """Environment inside the sandbox; ``CUDA_VISIBLE_DEVICES=""`` keeps every backend
    off any GPU, and ``KERAS_BACKEND`` is set before the launcher imports Keras."""
    env = dict(_BASE_ENV)
    env["KERAS_BACKEND"] = check_backend(backend)
    env.update(_BACKEND_ENV[backend])
    env["CUDA_VISIBLE_DEVICES"] = "" if gpu is None else str(int(gpu))
    if backend == "jax":
        env["JAX_PLATFORMS"] = "cpu" if gpu is None else "cuda"
    return env


def address_space_bytes(limits: SandboxLimits, gpu: int | None) -> int:
    """RLIMIT_AS to apply: the memory limit on CPU, at least 64 GiB when CUDA is used."""
    if gpu is None:
        return limits.memory_bytes
    return max(limits.memory_bytes, GPU_ADDRESS_SPACE_BYTES)


def prlimit_argv(limits: SandboxLimits, gpu: int | None = None) -> list[str]:
    """``prlimit`` prefix; soft == hard so the payload cannot raise anything back."""
    return [
        "prlimit",
        f"--as={address_space_bytes(limits, gpu)}",
        f"--cpu={limits.cpu_seconds}",
        f"--nproc={limits.max_processes}",
        f"--nofile={limits.max_open_files}",
        f"--fsize={limits.max_file_bytes}",
        "--core=0",
        "--",
    ]


def timeout_argv(limits: SandboxLimits) -> list[str]:
    """Wall clock: RLIMIT_CPU does not stop a sleeping process."""
    return ["timeout", "-k", str(KILL_GRACE_SECONDS), str(limits.wall_seconds)]


def setpriv_argv(uid: int = NOBODY_UID, gid: int = NOBODY_GID) -> list[str]:
    """Switch to an unprivileged host uid and drop every capability for good."""
    return [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={gid}",
        "--clear-groups",
        "--no-new-privs",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
    ]


def gpu_device_paths(gpu: int, exists: Callable[[str], bool] = os.path.exists) -> list[str]:
    """The NVIDIA device nodes CUDA needs for GPU ``gpu`` (only those present)."""
    candidates = [
        f"/dev/nvidia{int(gpu)}",
        "/dev/nvidiactl",
        "/dev/nvidia-uvm",
        "/dev/nvidia-uvm-tools",
    ]
    return [p for p in candidates if exists(p)]


def python_roots() -> list[Path]:
    """Host directories holding the running Python and its packages (bound read-only)."""
    candidates: list[str] = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    candidates += site.getsitepackages()
    user_site = site.getusersitepackages()
    if user_site and os.path.isdir(user_site):
        candidates.append(user_site)
    candidates.append(os.path.dirname(os.path.realpath(sys.executable)))
    return minimal_roots(Path(c) for c in candidates if c and os.path.isdir(c))


def minimal_roots(paths: Iterable[Path]) -> list[Path]:
    """Drop duplicates, paths inside another one, and paths already under ``/usr``."""
    resolved = sorted(
        {Path(os.path.realpath(p)) for p in paths}, key=lambda p: (len(p.parts), str(p))
    )
    kept: list[Path] = []
    for p in resolved:
        if p == Path("/") or _under(p, Path("/usr")):
            continue
        if any(_under(p, k) for k in kept):
            continue
        kept.append(p)
    return kept


def _under(p: Path | PurePosixPath, root: Path | PurePosixPath) -> bool:
    return p == root or root in p.parents


def system_binds(root: Path = Path("/")) -> list[list[str]]:
    """bwrap args that reproduce ``/lib``, ``/lib64``, ``/bin``, ``/sbin`` and the loader cache.

    On merged-/usr systems these are symlinks into ``/usr``; elsewhere real directories.
    """
    args: list[list[str]] = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = root / name
        if host.is_symlink():
            args.append(["--symlink", os.readlink(host), f"/{name}"])
        elif host.is_dir():
            args.append(["--ro-bind", str(host), f"/{name}"])
    cache = root / "etc" / "ld.so.cache"
    if cache.is_file():
        args.append(["--perms", "0755", "--dir", "/etc"])
        args.append(["--ro-bind", str(cache), "/etc/ld.so.cache"])
    return args


def _parent_dirs(dest: PurePosixPath, covered: list[PurePosixPath], made: set[str]) -> list[str]:
    """``--perms 0755 --dir`` for each missing ancestor (bwrap would make them 0700)."""
    out: list[str] = []
    for parent in reversed(dest.parents):
        if parent == PurePosixPath("/") or any(_under(parent, c) for c in covered):
            continue
        if str(parent) in made:
            continue
        made.add(str(parent))
        out += ["--perms", "0755", "--dir", str(parent)]
    return out


def bwrap_argv(
    binds: list[Bind],
    *,
    env: Mapping[str, str],
    gpu_devices: Iterable[str] = (),
    system: list[list[str]] | None = None,
) -> list[str]:
    """``bwrap`` prefix: new namespaces (network included), read-only view, clean env.

    Runs as root without a user namespace, keeping only the three capabilities the
    following ``setpriv`` needs to become uid 65534; see the module docstring.
    """
    argv = [
        "bwrap",
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "CAP_SETUID",
        "--cap-add",
        "CAP_SETGID",
        "--cap-add",
        "CAP_SETPCAP",
        "--clearenv",
    ]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    argv += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"]
    for dev in gpu_devices:
        argv += ["--dev-bind", dev, dev]
    argv += ["--ro-bind", "/usr", "/usr"]
    for item in system if system is not None else system_binds():
        argv += item
    # Only /usr is a host directory with its own (traversable) subdirectories; below the
    # fresh tmpfs /tmp or /dev, missing parents must be created like anywhere else.
    covered = [PurePosixPath("/usr")]
    made: set[str] = set()
    for b in binds:
        argv += _parent_dirs(b.dest, covered, made)
        argv += ["--bind" if b.writable else "--ro-bind", str(b.source), str(b.dest)]
        covered.append(b.dest)
    argv.append("--")
    return argv


def sandbox_argv(
    inner: list[str],
    *,
    limits: SandboxLimits,
    binds: list[Bind],
    gpu: int | None = None,
    env: Mapping[str, str] | None = None,
    device_exists: Callable[[str], bool] = os.path.exists,
    system: list[list[str]] | None = None,
    backend: str = DEFAULT_BACKEND,
) -> list[str]:
    """The full confined command line for ``inner`` (an argv valid inside the sandbox);
    ``env`` defaults to :func:`sandbox_env` for ``gpu`` and ``backend``."""
    devices = gpu_device_paths(gpu, device_exists) if gpu is not None else []
    return (
        timeout_argv(limits)
        + prlimit_argv(limits, gpu)
        + bwrap_argv(
            binds,
            env=sandbox_env(gpu, backend) if env is None else env,
            gpu_devices=devices,
            system=system,
        )
        + setpriv_argv()
        + inner
    )


def trusted_argv(inner: list[str], *, limits: SandboxLimits, gpu: int | None = None) -> list[str]:
    """``--trust``: same wall clock and rlimits, but no namespaces and no uid change."""
    return timeout_argv(limits) + prlimit_argv(limits, gpu) + inner


def launcher_args(
    *,
    model: str,
    images: str | None,
    out_dir: str,
    scale: float,
    offset: float,
    batch_size: int,
    gpu: int | None,
    landlock: bool,
    write_dirs: list[str],
    loader: str = "keras",
    probes: tuple[str, ...] = (),
    probe_images: int = 0,
    fmap_images: str | None = None,
) -> list[str]:
    """Arguments for ``launcher.py`` (identical in the sandbox and in trusted mode)."""
    args = [
        "--model",
        model,
        "--out",
        out_dir,
        "--scale",
        repr(float(scale)),
        "--offset",
        repr(float(offset)),
        "--batch-size",
        str(int(batch_size)),
    ]
    if images is not None:
        args += ["--images", images]
    if loader != "keras":
        args += ["--loader", loader]
    if probes and probe_images > 0:
        args += ["--probes", ",".join(probes), "--probe-images", str(int(probe_images))]
    if fmap_images is not None:
        args += ["--fmap-images", fmap_images]
    if gpu is not None:
        args += ["--gpu", str(int(gpu))]
    # Landlock broke CUDA in the measurements, so a GPU run never enables it.
    if landlock and gpu is None:
        args.append("--landlock")
        for d in write_dirs:
            args += ["--write-dir", d]
    return args
