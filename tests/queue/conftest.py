"""Fixtures for the queue tests (helpers in queueutil: a unique module name, since
``conftest`` is taken by the other test folders)."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from queueutil import PG, REDIS, REPO, Stack, _pg_schema, _redis_ok, base_env


@pytest.fixture
def sqlite_stack(tmp_path: Path) -> Iterator[Stack]:
    env = base_env(tmp_path)
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'instance' / 'grader.db'}"
    env["CELERY_BROKER_URL"] = f"sqla+sqlite:///{tmp_path / 'instance' / 'broker.sqlite'}"
    (tmp_path / "instance").mkdir()
    stack = Stack(tmp_path, env)
    yield stack
    stack.close()


@pytest.fixture
def pg_redis_stack(tmp_path: Path) -> Iterator[Stack]:
    schema = _pg_schema()
    if schema is None or not _redis_ok():
        pytest.skip("PostgreSQL 127.0.0.1:5432 or Redis 127.0.0.1:6379 unreachable")
    env = base_env(tmp_path)
    env["DATABASE_URL"] = (
        f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    )
    env["CELERY_BROKER_URL"] = REDIS
    env["CELERY_BROKER_KEYPREFIX"] = f"gq-{secrets.token_hex(4)}:"
    (tmp_path / "instance").mkdir()
    stack = Stack(tmp_path, env)
    old = os.environ.get("CELERY_BROKER_KEYPREFIX")
    os.environ["CELERY_BROKER_KEYPREFIX"] = env["CELERY_BROKER_KEYPREFIX"]  # the web side too
    yield stack
    stack.close()
    if old is None:
        os.environ.pop("CELERY_BROKER_KEYPREFIX", None)
    else:
        os.environ["CELERY_BROKER_KEYPREFIX"] = old
    import psycopg

    with psycopg.connect(PG) as c:
        c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real files: a correct day096-conv2d model, and files refused by inspection."""
    sys.path.insert(0, str(REPO / "tests"))
    import hostile
    from models import conv_stack, save

    d = tmp_path_factory.mktemp("queue-models")
    return {
        "good": save(conv_stack(), d / "good.keras"),
        "wrong": save(conv_stack(filters=(16, 64)), d / "wrong.keras"),
        "garbage": hostile.garbage_file(d),
        "lambda": hostile.lambda_keras(d),
        "pickle": hostile.pickle_named_h5(d),
    }
