"""Fixtures for the web tests: an app per test on SQLite and on PostgreSQL.

PostgreSQL runs in a schema of its own per test session (dropped at the end),
so parallel runs and other suites sharing the database do not collide.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from webutil import make_config, seed

from grader.service.db import db
from grader.web import create_app

PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _postgres_schema() -> str | None:
    try:
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", connect_timeout=3) as c:
            name = f"web_{secrets.token_hex(4)}"
            c.execute(f'CREATE SCHEMA "{name}"')
            return name
    except Exception as exc:
        print(f"PostgreSQL tests skipped: 127.0.0.1:5432/test unreachable ({exc})")
        return None


def _drop_schema(name: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test") as c:
        c.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.db'}"
        return
    schema = _postgres_schema()
    if schema is None:
        pytest.skip("PostgreSQL on 127.0.0.1:5432 is unreachable")
    yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    _drop_schema(schema)


@pytest.fixture
def app_config(tmp_path: Path, db_url: str) -> dict[str, Any]:
    return make_config(tmp_path, db_url)


@pytest.fixture
def app(app_config: dict[str, Any]) -> Iterator[Flask]:
    app = create_app(app_config)
    with app.app_context():
        db.drop_all()
        db.create_all()
        seed()
    yield app
    with app.app_context():
        app.extensions["grader_executor"].wait(timeout=120)
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The day096-conv2d architecture, built once per session (saving takes <1 s)."""
    import keras

    path = tmp_path_factory.mktemp("models") / "conv2d.keras"
    model = keras.Sequential(
        [
            keras.Input((224, 224, 3)),
            keras.layers.Conv2D(32, 3),
            keras.layers.Conv2D(64, 3),
        ]
    )
    model.save(path)
    return path
