"""The watchdog: no job is lost or stuck, whatever died.

Runs as a timer thread inside every worker (no celery beat: nothing extra to run,
and N watchdogs are as safe as one because every fix is a compare-and-set on the
submission row). Each sweep:

1. **Lost and stuck jobs.** A running job beats every ``GRADER_HEARTBEAT_SECONDS``
   from a thread of its own; one silent for three beats lost its process (a kill -9,
   an out-of-memory kill) and is taken back within seconds. As a last resort, one
   running for longer than its time limit (the assignment's ``time_limit_seconds``,
   or the sandbox wall limit, plus ``GRADER_WATCHDOG_GRACE``) is taken back too.
   Either is requeued where it stopped, or after ``GRADER_MAX_TRIES`` tries set to
   ``error`` ("infrastructure error", which uses no student attempt).
2. **Lost messages.** Submissions queued in the database but missing from the
   broker (the broker lost them, or was down when they were sent) are sent again
   once the shortfall has lasted two sweeps. A duplicate is harmless: one claim wins.

And when a worker starts, it first reclaims the jobs its own node name was
running (a worker killed with ``kill -9`` and restarted does not wait for the limit).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from celery import Celery
from sqlalchemy import select, update

from grader.queue.celery_app import broker_depth, dispatch
from grader.queue.runtime import worker_service
from grader.service import jobs, lifecycle
from grader.service.context import current
from grader.service.db import db
from grader.service.lifecycle import EVALUATE, INSPECT, QUEUE_ALIASES, RUNNING
from grader.service.models import INSPECTING, QUEUED, Submission, utcnow
from grader.service.specs import spec_of
from grader.settings import get_settings

log = logging.getLogger(__name__)


#: Heartbeats a running job may miss before its process counts as gone.
SILENT_BEATS = 3


def time_limit(sub: Submission, wall_default: int, grace: float) -> float:
    """Seconds a running job may hold its claim before it counts as stuck."""
    if sub.state == INSPECTING:
        return grace
    wall: float = wall_default
    try:
        evaluation = spec_of(sub.spec_version).evaluation
        if evaluation is not None:
            wall = evaluation.time_limit_seconds
    except Exception:  # an unreadable spec: the default limit still ends the wait
        pass
    return wall + grace


def _resend(celery: Celery, ids: list[int], queue: str) -> int:
    sent = 0
    for sid in ids:
        try:
            dispatch(celery, sid, queue)
            sent += 1
        except Exception:
            log.warning("broker unreachable; submission %s stays queued", sid)
            break
    return sent


def _can_write() -> None:
    """A write that changes nothing. Reading is not enough to judge heartbeats: SQLite
    serves reads while its write lock is held (so does a read-only replica), and jobs
    that cannot write their beats then look silent although they are alive."""
    db.session.execute(
        update(Submission).where(Submission.id == 0).values(heartbeat_at=Submission.heartbeat_at)
    )
    db.session.commit()


@dataclass
class Watchdog:
    """One sweep at a time; ``start()`` runs sweeps every ``interval`` seconds."""

    celery: Celery
    interval: float = field(default_factory=lambda: get_settings().watchdog_interval)
    grace: float = field(default_factory=lambda: get_settings().watchdog_grace)
    _suspects: dict[str, set[int]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _reachable_since: datetime | None = None  # the first of an unbroken run of good sweeps
    _thread: threading.Thread | None = None

    def sweep(self) -> dict[str, int]:
        """Requeue or fail jobs whose process is gone (silent heartbeat) or that ran past
        their time limit, and resend lost messages (inside an active service)."""
        counts = {"requeued": 0, "error": 0, "resent": 0}
        _can_write()  # raises while the database cannot take a heartbeat either
        now = utcnow()
        if self._reachable_since is None:
            self._reachable_since = now
        settings = current().settings
        silent = timedelta(seconds=SILENT_BEATS * settings.heartbeat_seconds)
        running = db.session.scalars(select(Submission).where(Submission.state.in_(RUNNING)))
        stuck = []
        for sub in running.all():
            limit = time_limit(sub, settings.sandbox_wall_seconds, self.grace)
            # Silence counts only once this watchdog has itself reached the database for a
            # whole window: after an outage, nobody could beat.
            heard = self._reachable_since is not None and now - self._reachable_since >= silent
            if heard and sub.heartbeat_at is not None and sub.heartbeat_at < now - silent:
                why = f"{sub.worker_host} stopped beating while {sub.state}"
            elif sub.started_at is not None and sub.started_at < now - timedelta(seconds=limit):
                why = f"no result from {sub.worker_host} within {limit:.0f} s while {sub.state}"
            else:
                continue
            stuck.append((sub.id, sub.job_id, why))
        db.session.rollback()
        for sid, token, reason in stuck:
            outcome, queue = lifecycle.release(sid, token, reason, settings.max_tries)
            if outcome in counts:
                counts[outcome] += 1
            if queue is not None:
                _resend(self.celery, [sid], queue)
            log.warning("watchdog: submission %s %s (%s)", sid, outcome, reason)
        for queue in (INSPECT, EVALUATE):
            counts["resent"] += self._lost_messages(queue)
        host = jobs.JobHost(node="watchdog", deliver=lambda sid, q: dispatch(self.celery, sid, q))
        counts["resumed"] = jobs.resume_waiting(host)
        return counts

    def _lost_messages(self, queue: str) -> int:

        queued = set(
            db.session.scalars(
                select(Submission.id).where(
                    Submission.state == QUEUED, Submission.queue.in_(QUEUE_ALIASES[queue])
                )
            ).all()
        )
        db.session.rollback()
        depth = broker_depth(self.celery, queue)
        if depth is None or len(queued) <= depth:
            self._suspects.pop(queue, None)
            return 0
        # Short of messages: resend those queued in the database at both sweeps (a
        # message a worker has just received but not yet claimed is not lost).
        previous = self._suspects.get(queue)
        self._suspects[queue] = queued
        if previous is None:
            return 0
        again = sorted(queued & previous)
        self._suspects.pop(queue, None)
        if again:
            log.warning("watchdog: resending %d queued submissions to %s", len(again), queue)
        return _resend(self.celery, again, queue)

    def reclaim(self, node: str, booted: datetime | None = None) -> int:
        """At start-up: release the jobs this node name held when it last died."""

        rows = db.session.execute(
            select(Submission.id, Submission.job_id).where(
                Submission.state.in_(RUNNING),
                Submission.worker_host == node[:200],
                Submission.started_at < (booted or utcnow()),  # not this worker's own jobs
            )
        ).all()
        db.session.rollback()
        n = 0
        for sid, token in rows:
            outcome, queue = lifecycle.release(
                sid, token, f"worker {node} restarted during the job", current().settings.max_tries
            )
            if queue is not None:
                _resend(self.celery, [sid], queue)
            n += outcome != "lost"
        if n:
            log.warning("reclaimed %d jobs left running by a previous %s", n, node)
        return n

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with worker_service().activate():
                    self.sweep()
            except Exception:  # the database or broker is down: try again next time
                self._reachable_since = None
                log.exception("watchdog sweep failed")

    def start(self) -> Watchdog:
        self._thread = threading.Thread(target=self._loop, name="grader-watchdog", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
