"""Pure tests of the sandbox command-line builder (nothing is started here)."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path, PurePosixPath

import pytest

from grader.sandbox.policy import (
    GPU_ADDRESS_SPACE_BYTES,
    Bind,
    SandboxLimits,
    bwrap_argv,
    gpu_device_paths,
    launcher_args,
    minimal_roots,
    python_roots,
    sandbox_argv,
    sandbox_env,
    trusted_argv,
)
from grader.settings import Settings

LIMITS = SandboxLimits(
    memory_bytes=4 * 1024**3,
    cpu_seconds=600,
    wall_seconds=300,
    max_processes=256,
    max_file_bytes=64 * 1024**2,
)
BINDS = [
    Bind(Path("/opt/py"), PurePosixPath("/opt/py")),
    Bind(Path("/host/stage"), PurePosixPath("/sandbox")),
    Bind(Path("/host/out"), PurePosixPath("/out"), writable=True),
]
NO_SYSTEM: list[list[str]] = []


def _argv(gpu: int | None = None, exists=lambda p: False) -> list[str]:
    return sandbox_argv(
        ["python3", "payload.py"],
        limits=LIMITS,
        binds=BINDS,
        gpu=gpu,
        device_exists=exists,
        system=NO_SYSTEM,
    )


def _pairs(argv: list[str], flag: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == flag]


def _setenv(argv: list[str]) -> dict[str, str]:
    return dict(_pairs(argv, "--setenv"))


def _bwrap_part(argv: list[str]) -> list[str]:
    start = argv.index("bwrap")
    return argv[start : argv.index("--", start)]


def test_wrapper_order_is_timeout_prlimit_bwrap_setpriv_payload() -> None:
    argv = _argv()
    assert argv[:4] == ["timeout", "-k", "5", "300"]
    order = [argv.index(x) for x in ("prlimit", "bwrap", "setpriv")]
    assert order == sorted(order)
    assert argv[-2:] == ["python3", "payload.py"]


def test_rlimits_from_limits() -> None:
    argv = _argv()
    assert f"--as={4 * 1024**3}" in argv
    assert "--cpu=600" in argv
    assert "--nproc=256" in argv
    assert "--nofile=256" in argv
    assert f"--fsize={64 * 1024**2}" in argv
    assert "--core=0" in argv


def test_no_namespace_is_shared_network_included() -> None:
    bw = _bwrap_part(_argv())
    for flag in ("--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"):
        assert flag in bw
    assert not any(a.startswith("--share") for a in bw)
    assert "--die-with-parent" in bw and "--new-session" in bw
    assert "--clearenv" in bw
    assert bw.index("--clearenv") < bw.index("--setenv")


def test_only_setpriv_caps_survive_until_the_uid_drop() -> None:
    argv = _argv()
    bw = _bwrap_part(argv)
    assert bw[bw.index("--cap-drop") + 1] == "ALL"
    assert sorted(b for a, b in itertools.pairwise(bw) if a == "--cap-add") == [
        "CAP_SETGID",
        "CAP_SETPCAP",
        "CAP_SETUID",
    ]
    sp = argv[argv.index("setpriv") :]
    for flag in (
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--no-new-privs",
        "--bounding-set=-all",
        "--inh-caps=-all",
    ):
        assert flag in sp


def test_binds_are_read_only_except_the_output_dir() -> None:
    bw = _bwrap_part(_argv())
    ro = _pairs(bw, "--ro-bind")
    assert ("/usr", "/usr") in ro
    assert ("/opt/py", "/opt/py") in ro
    assert ("/host/stage", "/sandbox") in ro
    assert _pairs(bw, "--bind") == [("/host/out", "/out")]
    assert "--dev-bind" not in bw


def test_parent_dirs_are_made_traversable_for_nobody() -> None:
    bw = bwrap_argv(
        [Bind(Path("/root/.pyenv/versions/3.11.7"), PurePosixPath("/root/.pyenv/versions/3.11.7"))],
        env={},
        system=NO_SYSTEM,
    )
    for parent in ("/root", "/root/.pyenv", "/root/.pyenv/versions"):
        i = bw.index(parent)
        assert bw[i - 3 : i] == ["--perms", "0755", "--dir"]
    assert bw.index("/root") < bw.index("/root/.pyenv") < bw.index("--ro-bind", bw.index("/usr"))
    i = bw.index("/tmp")
    assert bw[i - 3 : i] == ["--perms", "1777", "--tmpfs"]


def test_cpu_run_hides_every_gpu() -> None:
    argv = _argv(gpu=None, exists=lambda p: True)
    assert _setenv(argv)["CUDA_VISIBLE_DEVICES"] == ""
    assert "--dev-bind" not in argv
    assert sandbox_env(None)["CUDA_VISIBLE_DEVICES"] == ""
    assert sandbox_env(None)["TF_CPP_MIN_LOG_LEVEL"] == "2"


# There is no GPU on this machine, so which /dev/nvidia* nodes exist is faked with a
# predicate; everything else is the real argv builder.
def test_gpu_run_binds_only_existing_nvidia_nodes() -> None:
    present = {"/dev/nvidia1", "/dev/nvidiactl", "/dev/nvidia-uvm"}
    argv = _argv(gpu=1, exists=present.__contains__)
    assert _pairs(argv, "--dev-bind") == [
        ("/dev/nvidia1", "/dev/nvidia1"),
        ("/dev/nvidiactl", "/dev/nvidiactl"),
        ("/dev/nvidia-uvm", "/dev/nvidia-uvm"),
    ]
    # device binds come after --dev /dev, otherwise the fresh /dev would hide them
    assert argv.index("--dev-bind") > argv.index("--dev")
    assert _setenv(argv)["CUDA_VISIBLE_DEVICES"] == "1"
    assert "/dev/nvidia0" not in argv
    assert gpu_device_paths(0, lambda p: True) == [
        "/dev/nvidia0",
        "/dev/nvidiactl",
        "/dev/nvidia-uvm",
        "/dev/nvidia-uvm-tools",
    ]


def test_gpu_run_raises_address_space_and_skips_landlock() -> None:
    assert f"--as={GPU_ADDRESS_SPACE_BYTES}" in _argv(gpu=0, exists=lambda p: True)
    assert GPU_ADDRESS_SPACE_BYTES >= 64 * 1024**3
    common = dict(
        model="/sandbox/model.keras",
        images="/sandbox/images.npy",
        out_dir="/out",
        scale=1 / 255,
        offset=0.0,
        batch_size=500,
        write_dirs=["/tmp"],
    )
    gpu_args = launcher_args(gpu=0, landlock=True, **common)
    assert "--landlock" not in gpu_args
    assert gpu_args[gpu_args.index("--gpu") + 1] == "0"
    cpu_args = launcher_args(gpu=None, landlock=True, **common)
    assert "--landlock" in cpu_args and "--gpu" not in cpu_args
    assert cpu_args[cpu_args.index("--write-dir") + 1] == "/tmp"


def test_trusted_mode_keeps_limits_but_no_namespaces() -> None:
    argv = trusted_argv(["python3", "x.py"], limits=LIMITS)
    assert argv[0] == "timeout" and "prlimit" in argv
    assert "bwrap" not in argv and "setpriv" not in argv


def test_limits_from_settings() -> None:
    s = Settings()
    lim = SandboxLimits.from_settings(s)
    assert lim.memory_bytes == s.sandbox_memory_bytes
    assert lim.wall_seconds == s.sandbox_wall_seconds
    assert lim.max_processes == s.sandbox_max_processes
    assert lim.max_open_files == 256
    with pytest.raises(AttributeError):
        lim.wall_seconds = 1  # type: ignore[misc]


def test_minimal_roots_and_python_roots() -> None:
    roots = minimal_roots([Path("/opt/a"), Path("/opt/a/lib"), Path("/usr/lib/x"), Path("/opt/b")])
    assert roots == [Path("/opt/a"), Path("/opt/b")]
    found = python_roots()
    prefix = Path(sys.prefix).resolve()
    if not str(prefix).startswith("/usr/"):
        assert any(prefix == r or r in prefix.parents for r in found)
