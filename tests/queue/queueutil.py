"""Helpers for the queue tests: real Celery worker subprocesses against a real broker.

Backends: SQLite database + SQLite broker (the embedded default), and PostgreSQL
(127.0.0.1:5432, a schema per test) + Redis (127.0.0.1:6379, a key prefix per test,
since other suites share that Redis). Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ASSIGNMENTS = REPO / "assignments"
PG = "postgresql://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/0"
PASSWORD = "correct horse battery"


def wait_until(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _pg_schema() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG, connect_timeout=3) as c:
            name = f"queue_{secrets.token_hex(4)}"
            c.execute(f'CREATE SCHEMA "{name}"')
            return name
    except Exception:
        return None


def _redis_ok(url: str = REDIS) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except Exception:
        return False


@dataclass
class Stack:
    """One database + broker + storage, a Flask app on it, and worker processes."""

    tmp: Path
    env: dict[str, str]
    app: Any = None
    workers: list[Worker] = field(default_factory=list)

    def create_app(self, **extra: Any) -> Any:
        from grader.web import create_app

        config = {
            "TESTING": True,
            "SECRET_KEY": "test",
            "INSTANCE_PATH": self.env["GRADER_INSTANCE_DIR"],
            "SQLALCHEMY_DATABASE_URI": self.env["DATABASE_URL"],
            "GRADER_SUBMISSIONS_DIR": self.env["GRADER_SUBMISSIONS_DIR"],
            "CELERY_BROKER_URL": self.env["CELERY_BROKER_URL"],
            "GRADER_EXECUTOR": "celery",
            "WTF_CSRF_ENABLED": False,
            "RATELIMIT_ENABLED": False,
            "SERVER_NAME": "localhost",
            "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
        }
        config.update(extra)
        app = create_app(config)
        return app

    def setup_db(self, students: int = 2) -> None:
        from grader.service.db import db
        from grader.service.models import User
        from grader.service.specs import import_spec_files

        self.app = self.create_app()
        with self.app.app_context():
            db.create_all()
            for i in range(students):
                user = User(username=f"s{i}", role="student", name=f"S{i}")
                user.set_password(PASSWORD)
                db.session.add(user)
            db.session.commit()
            import_spec_files(sorted(ASSIGNMENTS.glob("*.yaml")))
            extra = self.tmp / "specs"
            if extra.is_dir():
                import_spec_files(sorted(extra.glob("*.yaml")))

    def submit(self, username: str, assignment: str, path: Path) -> int:
        """Upload as a student would (storage + row + executor), return the id."""
        from grader.service.db import db
        from grader.service.models import Assignment, User
        from grader.service.submissions import create_submission

        with self.app.app_context():
            user = db.session.query(User).filter_by(username=username).one()
            item = db.session.get(Assignment, assignment)
            with path.open("rb") as fh:
                return create_submission(user, item, fh, path.name).id

    def rows(self, ids: list[int] | None = None) -> dict[int, Any]:
        from grader.service.db import db
        from grader.service.models import Submission

        with self.app.app_context():
            query = db.session.query(Submission)
            if ids is not None:
                query = query.filter(Submission.id.in_(ids))
            out = {}
            for s in query.all():
                out[s.id] = {
                    "state": s.state,
                    "queue": s.queue,
                    "tries_total": s.tries_total,
                    "worker": s.worker_host,
                    "result": s.result.status if s.result else None,
                    "reason": s.result.reason if s.result else None,
                    "error": s.error_message,
                    "log": s.log,
                    "times": [
                        s.created_at,
                        s.started_at,
                        s.inspected_at,
                        s.loaded_at,
                        s.evaluated_at,
                        s.finished_at,
                    ],
                }
            db.session.remove()
            return out

    def result_count(self) -> int:
        from grader.service.db import db
        from grader.service.models import Result

        with self.app.app_context():
            n = db.session.query(Result).count()
            db.session.remove()
            return n

    def wait_final(self, ids: list[int], timeout: float) -> dict[int, Any]:
        from grader.service.models import TERMINAL_STATES

        def done() -> dict[int, Any] | None:
            rows = self.rows(ids)
            return rows if all(r["state"] in TERMINAL_STATES for r in rows.values()) else None

        try:
            return wait_until(done, timeout, f"submissions {ids} to finish", interval=0.5)
        except AssertionError:
            for w in self.workers:
                print(f"--- {w.name} log ---\n{w.log_text()[-4000:]}")
            print(self.rows(ids))
            raise

    def worker(self, queues: str = "inspect,evaluate", name: str | None = None,
               **env: str) -> Worker:  # fmt: skip
        from grader.queue.gpu import WorkerSpec, celery_argv

        name = name or f"w{len(self.workers)}-{queues.replace(',', '-')}@test"
        spec = WorkerSpec(name=name, queues=tuple(queues.split(",")), concurrency=1)
        log = self.tmp / f"worker-{len(self.workers)}.log"
        proc = subprocess.Popen(
            celery_argv(spec, sys.executable, "INFO"),
            env={**os.environ, **self.env, **env},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
        w = Worker(name, proc, log)
        self.workers.append(w)
        return w

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        if self.app is not None:
            from grader.service.db import db

            with self.app.app_context():
                executor = self.app.extensions.get("grader_executor")
                if hasattr(executor, "shutdown"):
                    executor.shutdown()
                db.session.remove()
                db.engine.dispose()


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_ready(self, timeout: float = 60) -> None:
        wait_until(
            lambda: "ready." in self.log_text() or self.proc.poll() is not None,
            timeout,
            f"worker {self.name} to start",
        )
        assert self.proc.poll() is None, self.log_text()[-3000:]

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)  # the worker and its sandboxes
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def base_env(tmp: Path) -> dict[str, str]:
    return {
        "GRADER_INSTANCE_DIR": str(tmp / "instance"),
        "GRADER_SUBMISSIONS_DIR": str(tmp / "submissions"),
        "GRADER_WATCHDOG_INTERVAL": "2",
        "GRADER_WATCHDOG_GRACE": "60",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONPATH": str(REPO),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TcpProxy:
    """127.0.0.1:``port`` forwarded to ``target``. ``stop()`` drops every connection and
    refuses new ones (the database is down, as a worker sees it); ``start()`` serves
    again on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target, self.port = target_port, free_port()
        self.listener: socket.socket | None = None
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        with self.lock:
            for sock in self.open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.open.clear()


class SqliteOutage:
    """Holds SQLite's write lock on ``path`` (as a backup tool or an open shell would):
    every write waits for it, and gives up after the 30 s busy timeout."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None

    def start(self) -> None:
        self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self.conn.execute("BEGIN EXCLUSIVE")

    def stop(self) -> None:
        if self.conn is not None:
            self.conn.execute("ROLLBACK")
            self.conn.close()
            self.conn = None
