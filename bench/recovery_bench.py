"""How long a student waits when something dies: recovery times with real workers.

    python bench/recovery_bench.py [--layout embedded|production|both] [--repeats N]
                                   [--out FILE]

Prints a table on stderr and one JSON object on stdout. Real Celery workers (the
harness of tests/queue: ``celery -A grader.queue.worker_app``) grade a real
day096-conv2d model, on the embedded default (SQLite + the SQLite broker) and/or
production (PostgreSQL 127.0.0.1:5432 + Redis 127.0.0.1:6379, a schema and key prefix
of their own). Each scenario lands its fault mid-evaluation (the evaluate worker waits
``GRADER_QUEUE_TEST_DELAY`` seconds inside the job first, so the fault always hits a
running job), then times until the result row is stored:

* ``kill9_restart``: kill -9 of the evaluating worker and its sandboxes; a worker of the
  same node name is started at once (what ``grader serve``'s supervisor, systemd or
  compose do). It reclaims its predecessor's job when it starts.
* ``kill9_other``: kill -9 as above; another machine's worker takes the job back once
  it has missed three heartbeats (``GRADER_HEARTBEAT_SECONDS``, 5 s by default).
* ``db_outage``: the database goes away mid-evaluation for longer than any write waits
  (SQLite: its write lock held for 35 s, past the 30 s busy timeout; PostgreSQL: every
  connection dropped and new ones refused for 20 s, through a proxy).

Watchdog sweeps every 2 s here (``GRADER_WATCHDOG_INTERVAL``; 10 s by default, which
adds up to 8 s to the heartbeat case). Targets: graded within 60 s of a worker, or the
database, being back; exactly one result; no job in ``error``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tests" / "queue")]

import queueutil as qu  # noqa: E402

TARGET_S = 60.0
DELAY = "5"  # seconds the evaluate worker sleeps inside the job before evaluating
ASSIGNMENT = "day096-conv2d"


@contextlib.contextmanager
def stack(layout: str, tmp: Path) -> Iterator[qu.Stack]:
    """A database, a broker and storage of their own, like tests/queue/conftest.py."""
    env = qu.base_env(tmp)
    (tmp / "instance").mkdir()
    schema = None
    if layout == "embedded":
        env["DATABASE_URL"] = f"sqlite:///{tmp / 'instance' / 'grader.db'}"
        env["CELERY_BROKER_URL"] = f"sqla+sqlite:///{tmp / 'instance' / 'broker.sqlite'}"
    else:
        schema = qu._pg_schema()
        if schema is None or not qu._redis_ok():
            raise SystemExit("production layout: PostgreSQL or Redis on 127.0.0.1 unreachable")
        env["DATABASE_URL"] = (
            f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
        )
        env["CELERY_BROKER_URL"] = qu.REDIS
        env["CELERY_BROKER_KEYPREFIX"] = f"rb-{os.urandom(4).hex()}:"
        os.environ["CELERY_BROKER_KEYPREFIX"] = env["CELERY_BROKER_KEYPREFIX"]
    s = qu.Stack(tmp, env)
    try:
        s.setup_db(students=2)
        yield s
    finally:
        s.close()
        if schema is not None:
            import psycopg

            with psycopg.connect(qu.PG) as c:
                c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _evaluating(s: qu.Stack, sid: int) -> bool:
    row = s.rows([sid])[sid]
    return row["state"] == "evaluating" and "phase: evaluating" in row["log"]


def _outcome(s: qu.Stack, sid: int, fault_at: float, back_at: float) -> dict[str, Any]:
    row = s.wait_final([sid], timeout=300)[sid]
    done = time.monotonic()
    ok = (
        row["state"] == "graded"
        and row["log"].count("finished:") == 1
        and s.result_count() == 1
        and done - back_at <= TARGET_S
    )
    return {
        "fault_to_graded_s": round(done - fault_at, 2),
        "back_to_graded_s": round(done - back_at, 2),
        "state": row["state"],
        "tries": row["tries_total"],
        "results": s.result_count(),
        "met": ok,
    }


def kill9(s: qu.Stack, model: Path, *, same_node: bool) -> dict[str, Any]:
    s.worker("inspect")
    doomed = s.worker("evaluate", name="ev@bench", GRADER_QUEUE_TEST_DELAY="60")
    sid = s.submit("s0", ASSIGNMENT, model)
    qu.wait_until(lambda: _evaluating(s, sid), 120, "the evaluation to start")
    doomed.kill9()
    fault = time.monotonic()
    worker = s.worker("evaluate", name="ev@bench" if same_node else "other@bench")
    worker.wait_ready(120)
    return {"worker_ready_s": round(time.monotonic() - fault, 2),
            **_outcome(s, sid, fault, time.monotonic())}  # fmt: skip


def db_outage(s: qu.Stack, model: Path) -> dict[str, Any]:
    if s.env["DATABASE_URL"].startswith("sqlite"):
        lock = qu.SqliteOutage(Path(s.env["GRADER_INSTANCE_DIR"]) / "grader.db")
        down, up, via, length = lock.start, lock.stop, {}, 35.0
    else:
        proxy = qu.TcpProxy(5432).start()
        url = s.env["DATABASE_URL"].replace("127.0.0.1:5432/", f"127.0.0.1:{proxy.port}/")
        down, up, via, length = proxy.stop, proxy.start, {"DATABASE_URL": url}, 20.0
    s.worker("inspect", **via)
    s.worker("evaluate", GRADER_QUEUE_TEST_DELAY=DELAY, **via)
    sid = s.submit("s0", ASSIGNMENT, model)
    qu.wait_until(lambda: _evaluating(s, sid), 120, "the evaluation to start")
    down()
    fault = time.monotonic()
    time.sleep(length)
    up()
    return {"outage_s": length, **_outcome(s, sid, fault, time.monotonic())}


SCENARIOS: dict[str, Callable[[qu.Stack, Path], dict[str, Any]]] = {
    "kill9_restart": lambda s, m: kill9(s, m, same_node=True),
    "kill9_other": lambda s, m: kill9(s, m, same_node=False),
    "db_outage": db_outage,
}


def _model(tmp: Path) -> Path:
    from models import conv_stack, save

    return save(conv_stack(), tmp / "good.keras")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layout", choices=("embedded", "production", "both"), default="both")
    p.add_argument("--scenario", choices=(*SCENARIOS, "all"), default="all")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    layouts = ("embedded", "production") if args.layout == "both" else (args.layout,)
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    load = os.getloadavg()
    result: dict[str, Any] = {"target_s": TARGET_S, "cpus": os.cpu_count(), "runs": {}}
    with tempfile.TemporaryDirectory(prefix="recovery-bench-") as work:
        model = _model(Path(work))
        for layout in layouts:
            for name in names:
                runs = []
                for i in range(max(1, args.repeats)):
                    tmp = Path(work) / f"{layout}-{name}-{i}"
                    tmp.mkdir()
                    with stack(layout, tmp) as s:
                        runs.append(SCENARIOS[name](s, model))
                    print(f"  {layout} {name} {i + 1}: {runs[-1]}", file=sys.stderr)
                result["runs"][f"{layout}/{name}"] = {
                    "back_to_graded_s": statistics.median(r["back_to_graded_s"] for r in runs),
                    "fault_to_graded_s": statistics.median(r["fault_to_graded_s"] for r in runs),
                    "met": all(r["met"] for r in runs),
                    "runs": runs,
                }
    result["load_average"] = [[round(v, 2) for v in load], [round(v, 2) for v in os.getloadavg()]]
    print(f"{'layout/scenario':<28}{'fault->graded s':>16}{'back->graded s':>16}  target",
          file=sys.stderr)  # fmt: skip
    for key, r in result["runs"].items():
        mark = "ok" if r["met"] else "MISSED"
        print(f"{key:<28}{r['fault_to_graded_s']:>16.1f}{r['back_to_graded_s']:>16.1f}  "
              f"<= {TARGET_S:.0f} s {mark}", file=sys.stderr)  # fmt: skip
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
