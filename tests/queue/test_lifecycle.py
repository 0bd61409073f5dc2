"""Compare-and-set transitions and the watchdog, without workers, on both databases."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest
from queueutil import Stack

from grader.queue.watchdog import Watchdog
from grader.service import lifecycle


class FakeCelery:
    """Records sends; ``depth`` is what the broker claims to hold."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[int], str]] = []

    def send_task(self, name: str, args: list[int], queue: str) -> None:
        self.sent.append((name, args, queue))


@pytest.fixture(params=["sqlite", "postgres"])
def stack(request: pytest.FixtureRequest, models: dict[str, Path]) -> Stack:
    s: Stack = request.getfixturevalue(
        f"{'sqlite' if request.param == 'sqlite' else 'pg_redis'}_stack"
    )
    s.setup_db()
    s.app = s.create_app(GRADER_EXECUTOR="none")
    return s


def _report(status: str = "passed") -> Any:
    from grader.report import Report

    return Report(status=status, assignment="day096-conv2d", grader_version="t", score=1.0)


def test_one_claim_wins_and_one_result_is_written(stack: Stack, models: dict[str, Path]) -> None:
    from grader.service.db import db

    sid = stack.submit("s0", "day096-conv2d", models["good"])
    tokens: list[str | None] = []

    def race() -> None:
        with stack.app.app_context():
            tokens.append(lifecycle.claim(sid, "inspect", "n@h"))
            db.session.remove()

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    winners = [t for t in tokens if t]
    assert len(winners) == 1 and len(tokens) == 8
    token = winners[0]
    with stack.app.app_context():
        assert not lifecycle.finish(sid, "not-the-token", _report())
        assert lifecycle.finish(sid, token, _report())
        assert not lifecycle.finish(sid, token, _report("failed"))  # already final
        db.session.remove()
    row = stack.rows([sid])[sid]
    assert row["state"] == "graded" and row["result"] == "passed"
    assert stack.result_count() == 1


def test_release_requeues_then_fails_as_infrastructure_error(
    stack: Stack, models: dict[str, Path]
) -> None:
    from grader.service.db import db
    from grader.service.models import FREE_STATES

    sid = stack.submit("s0", "day096-conv2d", models["good"])
    with stack.app.app_context():
        outcomes = []
        for _ in range(3):
            token = lifecycle.claim(sid, "inspect", "n@h")
            assert token
            outcomes.append(lifecycle.release(sid, token, "boom", max_tries=3))
        assert outcomes == [("requeued", "inspect"), ("requeued", "inspect"), ("error", None)]
        assert lifecycle.claim(sid, "inspect", "n@h") is None  # final: nothing to claim
        db.session.remove()
    row = stack.rows([sid])[sid]
    assert row["state"] == "error" and row["state"] in FREE_STATES  # no student attempt
    assert row["error"].startswith("infrastructure error after 3 tries: boom")


def test_watchdog_requeues_stuck_jobs_and_resends_lost_messages(
    stack: Stack, models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from grader.queue import watchdog as wd
    from grader.service.db import db
    from grader.service.models import Submission

    stuck = stack.submit("s0", "day096-conv2d", models["good"])
    lost = stack.submit("s1", "day096-conv2d", models["good"])
    celery = FakeCelery()
    monkeypatch.setattr(wd, "broker_depth", lambda _c, _q: 0)
    with stack.app.app_context():
        assert lifecycle.handoff(stuck, lifecycle.claim(stuck, "inspect", "gone@h") or "")
        token = lifecycle.claim(stuck, "evaluate", "gone@h")
        db.session.get(Submission, stuck).started_at -= dt.timedelta(seconds=400)
        db.session.commit()
        dog = Watchdog(celery, interval=0, grace=60)  # type: ignore[arg-type]
        first = dog.sweep()
        assert first["requeued"] == 1
        row = db.session.get(Submission, stuck)
        assert row.state == "queued" and row.queue == "evaluate" and row.job_id != token
        assert ("grader.evaluate", [stuck], "evaluate") in celery.sent
        # ``lost`` has been queued with no message on the broker for two sweeps: resent.
        assert ("grader.inspect", [lost], "inspect") not in celery.sent
        dog.sweep()
        assert ("grader.inspect", [lost], "inspect") in celery.sent
        # The stale claim cannot write any more.
        assert not lifecycle.finish(stuck, token or "", _report())
        db.session.remove()


def test_queue_position_and_phase(stack: Stack, models: dict[str, Path]) -> None:
    from grader.service.db import db
    from grader.service.lifecycle import current_phase, queue_position
    from grader.service.models import Submission

    ids = [stack.submit(f"s{i % 2}", "day096-conv2d", models["garbage"]) for i in range(3)]
    with stack.app.app_context():
        subs = [db.session.get(Submission, i) for i in ids]
        assert [queue_position(s) for s in subs] == [0, 1, 2]
        assert current_phase(subs[0]) == "waiting for inspection"
        lifecycle.claim(ids[0], "inspect", "n@h")
        subs = [db.session.get(Submission, i) for i in ids]
        assert [queue_position(s) for s in subs] == [None, 0, 1]
        assert current_phase(subs[0]) == "inspecting the file"
        # The sandbox loads and predicts in one run: the phase says both until it ends.
        subs[1].state = "evaluating"
        assert current_phase(subs[1]) == "loading the model and predicting in the sandbox"
        subs[1].evaluated_at = subs[1].created_at
        assert current_phase(subs[1]) == "scoring"
        db.session.rollback()
        db.session.remove()
    client = stack.app.test_client()
    client.post("/login", data={"username": "s0", "password": "correct horse battery"})
    page = client.get(f"/submissions/{ids[2]}/status").get_data(as_text=True)
    assert "1 ahead in the inspect queue" in page and "waiting for inspection" in page
