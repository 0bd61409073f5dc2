"""Helpers shared by the cold and warm sandbox tests."""

from __future__ import annotations

import socket
from pathlib import Path

from grader.sandbox import SandboxLimits


def limits(**kw: int) -> SandboxLimits:
    """Generous defaults; each test tightens the one limit it probes."""
    base = dict(
        memory_bytes=4 * 1024**3,
        cpu_seconds=60,
        wall_seconds=60,
        max_processes=64,
        max_file_bytes=16 * 1024**2,
    )
    base.update(kw)
    return SandboxLimits(**base)


def world_dir(path: Path) -> Path:
    """A host dir nobody could use if it were visible (so only the sandbox blocks it)."""
    path.mkdir(parents=True, exist_ok=True)
    p = path
    while p != p.parent:
        if str(p).startswith("/tmp/") or p == path:
            p.chmod(0o777 if p == path else (p.stat().st_mode | 0o005) & 0o7777)
        p = p.parent
    return path


def accept_once(srv: socket.socket) -> str:
    """Who connected to a listener: "none" when nobody got through."""
    try:
        conn, addr = srv.accept()
    except OSError:
        return "none"
    conn.close()
    return "host" if addr[0] == "127.0.0.1" else str(addr)
