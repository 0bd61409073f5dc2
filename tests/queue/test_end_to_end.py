"""Submissions in, results out, through real Celery workers on both backends."""

from __future__ import annotations

from pathlib import Path

from queueutil import Stack


def _round_trip(stack: Stack, models: dict[str, Path]) -> None:
    stack.setup_db()
    inspect = stack.worker("inspect")
    evaluate = stack.worker("evaluate")
    ids = {
        "good": stack.submit("s0", "day096-conv2d", models["good"]),
        "wrong": stack.submit("s1", "day096-conv2d", models["wrong"]),
        "garbage": stack.submit("s0", "day096-conv2d", models["garbage"]),
        "lambda": stack.submit("s1", "day096-conv2d", models["lambda"]),
    }
    inspect.wait_ready()
    evaluate.wait_ready()
    rows = stack.wait_final(list(ids.values()), timeout=150)
    good, wrong = rows[ids["good"]], rows[ids["wrong"]]
    assert good["state"] == "graded" and good["result"] == "passed", good
    assert wrong["state"] == "failed" and wrong["result"] == "failed", wrong
    for key in ("garbage", "lambda"):
        row = rows[ids[key]]
        assert row["state"] == "not_gradable" and row["reason"], row
        assert "inspect started" in row["log"] and "evaluate started" not in row["log"]
    # Every phase has its timestamp, in order, and the worker's name (with its host).
    times = good["times"]
    assert all(t is not None for t in times), times
    assert times == sorted(times)
    assert good["worker"].startswith("w1-evaluate@")
    assert good["tries_total"] == 1
    assert stack.result_count() == len(ids)


def test_sqlite_broker_round_trip(sqlite_stack: Stack, models: dict[str, Path]) -> None:
    _round_trip(sqlite_stack, models)
    assert (Path(sqlite_stack.env["GRADER_INSTANCE_DIR"]) / "broker.sqlite").exists()


def test_redis_postgres_round_trip(pg_redis_stack: Stack, models: dict[str, Path]) -> None:
    _round_trip(pg_redis_stack, models)
