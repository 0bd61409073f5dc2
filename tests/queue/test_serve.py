"""``grader serve``: one command starts the web server and the workers (SQLite
database + SQLite broker, nothing else installed), grades, and Ctrl-C stops all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from queueutil import REPO, Stack, base_env, wait_until


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def test_serve_runs_web_and_worker_and_stops_cleanly(
    tmp_path: Path, models: dict[str, Path]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, **base_env(tmp_path)}
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_BROKER_KEYPREFIX"):
        env.pop(name, None)  # the embedded defaults
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "grader", "serve", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        text = lambda: log.read_text(errors="replace")  # noqa: E731
        wait_until(lambda: "Serving on" in text() or proc.poll() is not None, 60, "serve")
        assert proc.poll() is None, text()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10) as r:
            assert r.status == 200
        wait_until(lambda: text().count("ready.") >= 2, 60, "both workers")
        instance = tmp_path / "instance"
        assert (instance / "grader.db").exists() and (instance / "broker.sqlite").exists()
        # A submission made on the same instance is graded by serve's workers.
        stack = Stack(tmp_path, {
            **base_env(tmp_path),
            "DATABASE_URL": f"sqlite:///{instance / 'grader.db'}",
            "CELERY_BROKER_URL": f"sqla+sqlite:///{instance / 'broker.sqlite'}",
        })  # fmt: skip
        stack.app = stack.create_app()
        from grader.service.db import db
        from grader.service.models import User

        with stack.app.app_context():
            db.session.add(User(username="s0", role="student"))
            db.session.commit()
        sid = stack.submit("s0", "day096-conv2d", models["good"])
        assert stack.wait_final([sid], timeout=120)[sid]["state"] == "graded"
        stack.close()
        workers = _children(proc.pid)
        assert len(workers) == 2, text()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, text()
        assert "Stopped." in text()
        for pid in workers:
            assert not os.path.exists(f"/proc/{pid}") or _zombie(pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert REPO.exists()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_serve_demo_prints_logins_that_work_and_twice_duplicates_nothing(tmp_path: Path) -> None:
    """The README's first command: `grader serve --demo`, run twice on one instance,
    offline with no CIFAR-10 test set (the demo's CIFAR-10 submission, graded when the
    test set is there, is tested in tests/web/test_demo.py)."""
    env = {**os.environ, **base_env(tmp_path), "GRADER_CIFAR10": str(tmp_path / "no-cifar10")}
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_BROKER_KEYPREFIX"):
        env.pop(name, None)
    first, second = (_serve_demo_once(tmp_path, env, run) for run in range(2))
    assert "alice" in first and "password:" in first
    # Same generated passwords and the same three submissions (ids 1-3) the second time.
    assert _logins(first) == _logins(second)
    assert first.count("/submissions/") == second.count("/submissions/") == 3
    assert "/submissions/4" not in second


def _serve_demo_once(tmp_path: Path, env: dict[str, str], run: int) -> str:
    """Start `grader serve --demo`, check the page answers, stop it; return its banner."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / f"serve-{run}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "grader", "serve", "--demo", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        text = lambda: log.read_text(errors="replace")  # noqa: E731
        wait_until(lambda: "Serving on" in text() or proc.poll() is not None, 240, "serve")
        assert proc.poll() is None, text()
        out = text()
        assert f"http://127.0.0.1:{port}/" in out and "Try first" in out
        assert "No CIFAR-10 test set here yet" in out and "GRADER_CIFAR10" in out
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
            assert r.status == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    return out[out.index("Keras grader: DEMO COURSE") : out.index("Try first")]


def _logins(banner: str) -> list[str]:
    return [line.split()[-1] for line in banner.splitlines() if "password:" in line]
