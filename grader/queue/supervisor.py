"""Start, watch and stop the Celery worker processes of one machine.

Used by ``grader worker`` (several processes: an inspect worker, one per GPU) and
``grader serve`` (web server + workers in one command). Children are started in
their own session, so Ctrl-C reaches only the supervisor, which then stops them
in order: SIGTERM (Celery's warm shutdown: finish the current job), SIGQUIT after
``grace`` seconds, SIGKILL last. A child that dies on its own is restarted. If the
supervisor itself is killed, the kernel sends its children SIGTERM (PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping

from grader.queue.gpu import WorkerSpec, celery_argv

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    """Runs ``plan`` as child processes with ``env`` added to this process's environment."""

    def __init__(
        self,
        plan: list[WorkerSpec],
        env: Mapping[str, str] | None = None,
        *,
        python: str = sys.executable,
        loglevel: str = "INFO",
    ) -> None:
        self.plan = plan
        self.env = dict(env or {})
        self.python = python
        self.loglevel = loglevel
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.restarts: dict[str, int] = {}
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def _spawn(self, spec: WorkerSpec) -> subprocess.Popen[bytes]:
        env = {**os.environ, **self.env, **spec.env}
        return subprocess.Popen(
            celery_argv(spec, self.python, self.loglevel),
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def start(self, watch: bool = True) -> Supervisor:
        for spec in self.plan:
            self.procs[spec.name] = self._spawn(spec)
            log.info("started worker %s (pid %s)", spec.name, self.procs[spec.name].pid)
        if watch:
            self._watcher = threading.Thread(target=self._watch, daemon=True, name="supervisor")
            self._watcher.start()
        return self

    def _watch(self) -> None:
        while not self._stopping.wait(2.0):
            for spec in self.plan:
                proc = self.procs.get(spec.name)
                if proc is not None and proc.poll() is not None and not self._stopping.is_set():
                    n = self.restarts[spec.name] = self.restarts.get(spec.name, 0) + 1
                    log.warning("worker %s exited (%s); restart %d", spec.name, proc.returncode, n)
                    time.sleep(min(30.0, 2.0**n))
                    if not self._stopping.is_set():
                        self.procs[spec.name] = self._spawn(spec)

    def wait(self) -> None:
        """Block until stopped (``grader worker`` in the foreground)."""
        while not self._stopping.wait(1.0):
            pass

    def stop(self, grace: float = 20.0) -> None:
        """Warm shutdown, then cold, then kill; returns when every child is gone."""
        self._stopping.set()
        live = [p for p in self.procs.values() if p.poll() is None]
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
            for proc in live:
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and any(p.poll() is None for p in live):
                time.sleep(0.1)
            live = [p for p in live if p.poll() is None]
            if not live:
                return
