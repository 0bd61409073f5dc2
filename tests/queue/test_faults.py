"""Fault tests with real workers, on the embedded default (SQLite + SQLite broker) and on
PostgreSQL + Redis: kill -9 mid-evaluation (the same node restarted, or another node
taking the job back), the broker lost and back empty, the database gone mid-evaluation;
plus sandbox limits and a Redis restart. Each asserts graded exactly once, no job in
``error`` (an infrastructure failure uses no attempt) and recovery within 60 s.
Parallel uploads against the daily cap: tests/queue/test_parallel_uploads.py.

Mid-evaluation is made deterministic with the evaluate task's test-only delay
(``GRADER_QUEUE_TEST_DELAY``: the worker sleeps inside the evaluation, after the
submission is marked ``evaluating``), so the kill always lands mid-job.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from queueutil import ASSIGNMENTS, REDIS, SqliteOutage, Stack, TcpProxy, wait_until


def _evaluating(stack: Stack, sid: int) -> bool:
    row = stack.rows([sid])[sid]
    return row["state"] == "evaluating" and "phase: evaluating" in row["log"]


@pytest.fixture(params=["embedded", "production"])
def layout(request: pytest.FixtureRequest) -> Stack:
    """The embedded default (SQLite + SQLite broker) and PostgreSQL + Redis."""
    name = "sqlite_stack" if request.param == "embedded" else "pg_redis_stack"
    stack: Stack = request.getfixturevalue(name)
    return stack


def _embedded(stack: Stack) -> bool:
    return stack.env["DATABASE_URL"].startswith("sqlite")


def _graded_once(stack: Stack, sid: int, row: dict) -> None:
    """Graded, one result, no infrastructure error (which would use no attempt, but is
    not what a recovered job should end as)."""
    assert row["state"] == "graded" and row["result"] == "passed", row
    assert row["log"].count("finished:") == 1, row["log"]
    assert stack.result_count() == 1


def test_kill9_mid_evaluation_then_restart_grades_once(
    layout: Stack, models: dict[str, Path]
) -> None:
    stack = layout
    stack.setup_db()
    stack.worker("inspect")
    doomed = stack.worker("evaluate", name="ev@test", GRADER_QUEUE_TEST_DELAY="60")
    sid = stack.submit("s0", "day096-conv2d", models["good"])
    wait_until(lambda: _evaluating(stack, sid), 90, "the evaluation to start")
    doomed.kill9()
    assert stack.rows([sid])[sid]["state"] == "evaluating"  # orphaned, not lost
    # A new worker with the same node name reclaims its predecessor's job at once.
    back = time.monotonic()
    stack.worker("evaluate", name="ev@test")
    row = stack.wait_final([sid], timeout=120)[sid]
    assert time.monotonic() - back < 60, "graded within 60 s of a worker being back"
    _graded_once(stack, sid, row)
    assert "restarted during the job" in row["log"]


def test_kill9_then_other_worker_takes_the_job_back_in_seconds(
    layout: Stack, models: dict[str, Path]
) -> None:
    stack = layout
    stack.setup_db()
    stack.worker("inspect")
    doomed = stack.worker("evaluate", name="first@test", GRADER_QUEUE_TEST_DELAY="60")
    sid = stack.submit("s0", "day096-conv2d", models["good"])
    wait_until(lambda: _evaluating(stack, sid), 90, "the evaluation to start")
    doomed.kill9()
    # Another machine's worker: its watchdog hears no heartbeat from the dead job (three
    # beats of 5 s) and takes it back long before the job's 300 s time limit.
    other = stack.worker("evaluate", name="second@test")
    other.wait_ready()
    back = time.monotonic()
    row = stack.wait_final([sid], timeout=150)[sid]
    assert time.monotonic() - back < 60, "graded within 60 s of a worker being back"
    _graded_once(stack, sid, row)
    assert row["worker"] == "second@test" and "first@test stopped beating" in row["log"]


def _lose_broker(stack: Stack) -> None:
    """The broker comes back empty: the SQLite broker's file is gone, or Redis lost its
    keys (restarted without persistence)."""
    if _embedded(stack):
        instance = Path(stack.env["GRADER_INSTANCE_DIR"])
        for path in instance.glob("broker.sqlite*"):
            path.unlink()
        return
    import redis

    r = redis.Redis.from_url(REDIS)
    keys = list(r.scan_iter(match=stack.env["CELERY_BROKER_KEYPREFIX"] + "*"))
    assert keys, "the uploads' messages were on the broker"
    r.delete(*keys)


def test_broker_lost_empty_then_every_job_graded_once(
    layout: Stack, models: dict[str, Path]
) -> None:
    stack = layout
    stack.setup_db()
    ids = [
        stack.submit(f"s{i}", "day096-conv2d", models[f]) for i, f in enumerate(["good", "lambda"])
    ]
    _lose_broker(stack)  # the messages are gone; the rows are queued in the database
    stack.worker("inspect").wait_ready()
    stack.worker("evaluate").wait_ready()
    back = time.monotonic()
    rows = stack.wait_final(ids, timeout=120)
    assert time.monotonic() - back < 60, "resent by the watchdog within seconds"
    assert [rows[i]["state"] for i in ids] == ["graded", "not_gradable"], rows
    assert all(rows[i]["log"].count("finished:") == 1 for i in ids)
    assert stack.result_count() == 2


def test_database_outage_mid_evaluation_recovers_and_grades_once(
    layout: Stack, models: dict[str, Path]
) -> None:
    """The database goes away while a model is evaluated, longer than any write waits
    (PostgreSQL: every connection dropped and refused; SQLite: its write lock held past
    the 30 s busy timeout). When it is back, the job is graded once, within seconds."""
    stack = layout
    stack.setup_db()
    if _embedded(stack):
        lock = SqliteOutage(Path(stack.env["GRADER_INSTANCE_DIR"]) / "grader.db")
        down, up, via, length = lock.start, lock.stop, {}, 35.0
    else:
        proxy = TcpProxy(5432).start()  # the workers reach PostgreSQL through it
        url = stack.env["DATABASE_URL"].replace("127.0.0.1:5432/", f"127.0.0.1:{proxy.port}/")
        down, up, via, length = proxy.stop, proxy.start, {"DATABASE_URL": url}, 20.0
    stack.worker("inspect", **via)
    stack.worker("evaluate", GRADER_QUEUE_TEST_DELAY="5", **via)
    sid = stack.submit("s0", "day096-conv2d", models["good"])
    wait_until(lambda: _evaluating(stack, sid), 90, "the evaluation to start")
    down()
    time.sleep(length)  # the evaluation ends meanwhile; nothing can be written
    up()
    back = time.monotonic()
    row = stack.wait_final([sid], timeout=150)[sid]
    assert time.monotonic() - back < 60, "graded within 60 s of the database being back"
    _graded_once(stack, sid, row)
    if _embedded(stack):
        # Down for everyone (SQLite's write lock): the finished evaluation is saved once
        # the database is back, not thrown away and run again. Its progress stamps failed
        # meanwhile, and the watchdog, which could still read, must not take silence for
        # death. (On PostgreSQL only the workers are cut off: taking the job back is right.)
        assert row["log"].count("phase: evaluating") == 1, row["log"]


def test_unreadable_storage_is_an_infrastructure_error_that_uses_no_attempt(
    layout: Stack, models: dict[str, Path]
) -> None:
    """The stored files vanish (a storage outage) after the upload: each try fails
    without blaming the file; after GRADER_MAX_TRIES the job is an infrastructure error,
    which costs the student no attempt, and a regrade once storage is back grades it."""
    stack = layout
    stack.setup_db()
    sid = stack.submit("s0", "day096-conv2d", models["lambda"])
    store = Path(stack.env["GRADER_SUBMISSIONS_DIR"])
    away = store.with_name("submissions-away")
    store.rename(away)
    stack.worker("inspect")
    row = stack.wait_final([sid], timeout=90)[sid]
    assert row["state"] == "error" and row["tries_total"] == 3, row
    assert row["error"].startswith("infrastructure error after 3 tries"), row["error"]
    from grader.service.db import db
    from grader.service.models import Submission
    from grader.service.submissions import regrade

    with stack.app.app_context():
        sub = db.session.get(Submission, sid)
        assert sub is not None and not sub.uses_attempt
        away.rename(store)  # storage is back: an instructor regrades
        regrade([sub], None)
        db.session.remove()
    row = stack.wait_final([sid], timeout=90)[sid]
    assert row["state"] == "not_gradable" and row["log"].count("finished:") == 1, row
    assert stack.result_count() == 1


def _timeout_spec(tmp: Path) -> None:
    text = (ASSIGNMENTS / "day097-cifar10.yaml").read_text()
    text = text.replace("id: day097-cifar10", "id: q-timeout")
    text = text.replace("time_limit_seconds: 300", "time_limit_seconds: 1")
    assert "q-timeout" in text and "time_limit_seconds: 1\n" in text
    (tmp / "specs").mkdir()
    (tmp / "specs" / "q-timeout.yaml").write_text(text)
    rng = np.random.default_rng(0)
    np.savez(
        tmp / "test.npz",
        x=rng.integers(0, 256, (50, 32, 32, 3), dtype=np.uint8),
        y=rng.integers(0, 10, 50),
    )


def test_sandbox_limits_give_clear_results_and_worker_keeps_serving(
    sqlite_stack: Stack, models: dict[str, Path], tmp_path: Path
) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from models import cifar_cnn, save

    stack = sqlite_stack
    _timeout_spec(tmp_path)
    stack.setup_db()
    cnn = save(cifar_cnn(), tmp_path / "cnn.keras")
    stack.worker("inspect")
    # Cold sandboxes: importing TensorFlow alone takes longer than the 1 s limit.
    ev = stack.worker("evaluate", GRADER_WARM="0", GRADER_CIFAR10=str(tmp_path / "test.npz"))
    slow = stack.submit("s0", "q-timeout", cnn)
    row = stack.wait_final([slow], timeout=120)[slow]
    assert row["state"] == "not_gradable" and "limit of 1 s" in row["reason"], row
    nxt = stack.submit("s1", "day096-conv2d", models["good"])
    assert stack.wait_final([nxt], timeout=120)[nxt]["state"] == "graded"
    assert ev.proc.poll() is None
    ev.stop()
    # Memory: a worker whose sandboxes get 1 GiB (TensorFlow needs more) says so.
    stack.worker("evaluate", GRADER_WARM="0", GRADER_SANDBOX_MEMORY_BYTES=str(1024**3))
    big = stack.submit("s1", "day096-conv2d", models["good"])
    row = stack.wait_final([big], timeout=120)[big]
    assert row["state"] == "not_gradable" and "memory" in row["reason"], row
    assert stack.result_count() == 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnRedis:
    """A private redis-server (AOF on) this test may stop and restart at will."""

    def __init__(self, directory: Path) -> None:
        self.dir, self.port = directory, _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(lambda: self.ping(), 15, "redis-server to start")

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=1).ping())
        except Exception:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: redis flushes the AOF and exits
            self.proc.wait(timeout=15)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")
def test_broker_restart_loses_nothing(
    pg_redis_stack: Stack, models: dict[str, Path], tmp_path: Path
) -> None:
    stack = pg_redis_stack
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    broker = OwnRedis(redis_dir)
    broker.start()
    stack.env["CELERY_BROKER_URL"] = f"redis://127.0.0.1:{broker.port}/0"
    try:
        stack.setup_db()
        files = ["good", "garbage", "lambda", "wrong"]
        first = [stack.submit(f"s{i % 2}", "day096-conv2d", models[f]) for i, f in enumerate(files)]
        broker.stop()  # queued messages only in the broker's AOF now
        broker.start()
        stack.worker("inspect")
        stack.worker("evaluate")
        rows = stack.wait_final(first, timeout=150)
        assert [rows[i]["state"] for i in first] == [
            "graded", "not_gradable", "not_gradable", "failed",
        ]  # fmt: skip
        # Broker down while students upload: the uploads succeed, the rows wait in the
        # database, and the watchdog sends them once the broker is back.
        broker.stop()
        t0 = time.monotonic()
        second = [stack.submit("s0", "day096-conv2d", models[f]) for f in ("garbage", "good")]
        assert time.monotonic() - t0 < 60
        broker.start()
        rows = stack.wait_final(second, timeout=150)
        assert [rows[i]["state"] for i in second] == ["not_gradable", "graded"]
        assert stack.result_count() == 6
    finally:
        for w in stack.workers:
            w.stop()
        broker.stop()
