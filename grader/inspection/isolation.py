"""Run a piece of trusted-side inspection in a forked child with time and memory limits.

Whatever reads an uploaded file on the trusted side (libhdf5's C parser, the
JSON walk, shape inference) must end in bounded time and memory even when the
file is crafted: a one-byte change can make libhdf5 spin forever, and a config
can be built to make any walker work hard. The child gets CPU-seconds and
address-space limits and a wall-clock deadline; its answer comes back as JSON
over a pipe; a child that overstays is killed. The grading process itself
never grows.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import select
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import h5py

from grader.errors import NotGradable, SandboxUnavailable

MAX_OUTPUT_BYTES = 64 * 1024 * 1024
READ_CHUNK = 1024 * 1024
DAMAGED = (
    "The file is damaged or truncated{detail}. Save the model again with "
    "model.save('model.keras') and upload the new file."
)

# h5py serialises every libhdf5 call with this lock; holding it while forking
# guarantees the child does not inherit libhdf5 mid-call from another thread.
_H5_LOCK: Any = getattr(getattr(h5py, "_objects", None), "phil", None) or threading.RLock()
_inside_child = False  # a child runs nested work directly: it is already bounded


def run_isolated(
    work: Callable[[], Any], *, timeout_s: float, memory_bytes: int, too_slow: str
) -> Any:
    """``work()``'s JSON-able result, computed in a limited child.

    ``NotGradable`` raised by ``work`` comes back as itself; any other failure
    (a crash, a limit hit) as "damaged"; overstaying ``timeout_s`` as
    ``NotGradable(too_slow)``.
    """
    if _inside_child or not hasattr(os, "fork"):
        return work()
    read_fd, write_fd = os.pipe()
    try:
        with _H5_LOCK:  # no other thread can be inside libhdf5 while we fork
            pid = os.fork()
    except OSError as exc:
        os.close(read_fd)
        os.close(write_fd)
        raise SandboxUnavailable(f"cannot fork the inspection child: {exc}") from exc
    if pid == 0:  # child: never returns into the caller's code
        _child(work, read_fd, write_fd, timeout_s, memory_bytes)
    os.close(write_fd)
    try:
        output = _collect(read_fd, pid, timeout_s)
    except TimeoutError:
        cpu = _reap(pid)
        if cpu < timeout_s / 2:  # it was starved, not busy: the machine's fault, not the file's
            raise SandboxUnavailable(
                f"the inspection child got {cpu:.1f} s of CPU in {timeout_s:g} s: overloaded"
            ) from None
        raise NotGradable(too_slow) from None
    except BaseException:
        _reap(pid)
        raise
    else:
        _reap(pid)
    finally:
        os.close(read_fd)
    try:
        payload = json.loads(output)
    except ValueError:
        payload = {"damaged": True}
    if "refused" in payload:
        raise NotGradable(str(payload["refused"]))
    if "ok" not in payload:
        raise NotGradable(DAMAGED.format(detail=""))
    return payload["ok"]


def _child(work: Callable[[], Any], read_fd: int, write_fd: int, timeout_s: float,
           memory_bytes: int) -> None:  # fmt: skip
    global _inside_child
    code = 70
    try:
        _inside_child = True
        os.close(read_fd)
        _limit(timeout_s, memory_bytes)
        try:
            payload: dict[str, Any] = {"ok": work()}
        except NotGradable as exc:
            payload = {"refused": exc.reason}
        except RecursionError:
            payload = {"refused": "The file is nested too deeply to read."}
        except MemoryError:
            payload = {"refused": "Inspecting the file needs more memory than allowed; the "
                       "file is crafted or far larger than a course model."}  # fmt: skip
        except BaseException:
            payload = {"damaged": True}
        data = memoryview(json.dumps(payload).encode())
        while data:
            data = data[os.write(write_fd, data) :]
        code = 0
    finally:
        os._exit(code)


def _limit(timeout_s: float, memory_bytes: int) -> None:
    """CPU seconds and address space for the child."""
    cpu = math.ceil(timeout_s) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    with open("/proc/self/statm") as statm:
        current = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = current + memory_bytes
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _collect(read_fd: int, pid: int, timeout_s: float) -> bytes:
    """Read the child's answer; TimeoutError when it overstays its deadline."""
    deadline = time.monotonic() + timeout_s
    chunks: list[bytes] = []
    total = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        ready, _, _ = select.select([read_fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(read_fd, READ_CHUNK)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > MAX_OUTPUT_BYTES:  # the caller reaps (and kills) the child
            raise NotGradable("The file describes far too much to inspect.")


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _reap(pid: int) -> float:
    """Make sure the child is gone and reap it; the CPU seconds it used."""
    _kill(pid)
    try:
        _, _, usage = os.wait4(pid, 0)
    except ChildProcessError:  # already reaped
        return 0.0
    return usage.ru_utime + usage.ru_stime
