"""50 uploads at once through the web (Flask test clients in threads), real workers, on
the embedded default (SQLite + SQLite broker) and on PostgreSQL + Redis: 50
submissions, 50 results, no duplicates. (The daily cap under parallel uploads, on
both databases: tests/web/test_upload_limits.py.)

A mix, for speed: 45 hostile or broken files refused by the inspect queue in
milliseconds, and 5 correct models evaluated in the sandbox.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from queueutil import PASSWORD, Stack


@pytest.mark.parametrize("layout", ["sqlite_stack", "pg_redis_stack"])
def test_fifty_parallel_uploads(
    layout: str, request: pytest.FixtureRequest, models: dict[str, Path]
) -> None:
    stack: Stack = request.getfixturevalue(layout)
    stack.setup_db(students=50)
    stack.worker("inspect")
    stack.worker("evaluate")
    kinds = ["good" if i % 10 == 0 else ("garbage", "lambda", "pickle")[i % 3] for i in range(50)]
    blobs = {k: models[k].read_bytes() for k in set(kinds)}

    def upload(i: int) -> int:
        client = stack.app.test_client()
        r = client.post("/login", data={"username": f"s{i}", "password": PASSWORD})
        assert r.status_code == 302
        r = client.post(
            "/assignments/day096-conv2d/submit",
            data={"model": (io.BytesIO(blobs[kinds[i]]), "model.keras")},
            content_type="multipart/form-data",
        )
        assert r.status_code == 302, r.data[:300]
        return int(r.headers["Location"].rsplit("/", 1)[1])

    with ThreadPoolExecutor(max_workers=10) as pool:
        ids = list(pool.map(upload, range(50)))
    assert len(set(ids)) == 50
    rows = stack.wait_final(ids, timeout=240)
    assert len(rows) == 50
    for i, sid in enumerate(ids):
        expected = "graded" if kinds[i] == "good" else "not_gradable"
        assert rows[sid]["state"] == expected, rows[sid]
        assert rows[sid]["log"].count("finished:") == 1
    assert stack.result_count() == 50
