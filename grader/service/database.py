"""The database underneath, with no web framework: the declarative base, URL
normalisation and engine settings."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.orm import DeclarativeBase

# Explicit constraint names keep Alembic migrations identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def database_url(instance_path: str | Path, configured: str | None = None) -> str:
    """``configured``, else ``DATABASE_URL``, else SQLite in the instance folder;
    ``postgres://`` URLs are given the psycopg 3 driver."""
    url = configured or os.environ.get("DATABASE_URL")
    if not url:
        return f"sqlite:///{Path(instance_path) / 'grader.db'}"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str) -> Engine:
    """An engine that survives restarts of the database (pre-ping); SQLite shared by a
    web process and workers gets WAL and a long busy timeout."""
    engine = create_engine(url, pool_pre_ping=True)
    if url.startswith("sqlite") and url not in ("sqlite://", "sqlite:///:memory:"):

        @event.listens_for(engine, "connect")
        def _tune(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout = 30000")
            with contextlib.suppress(sqlite3.OperationalError):  # read-only: reads still work
                cur.execute("PRAGMA journal_mode = WAL")
            cur.close()

    return engine
