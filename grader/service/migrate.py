"""Run Alembic migrations from code (``grader init-db`` / ``grader upgrade`` / ``serve``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

from grader.service.context import Service

# Inside the package (not the checkout root) so a non-editable install finds them.
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(target: Service | Any, revision: str = "head") -> None:
    """Bring the database to the latest schema (creates it if empty). ``target`` is a
    Service, or a host holding one as ``extensions["grader"]`` (the Flask app)."""
    service = _service_of(target)
    cfg = alembic_config(service.url)
    with service.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def revision(target: Service | Any, message: str) -> None:
    """Autogenerate a migration from the models (developers only)."""
    cfg = alembic_config(_service_of(target).url)
    command.revision(cfg, message=message, autogenerate=True)


def _service_of(target: Service | Any) -> Service:
    return target if isinstance(target, Service) else target.extensions["grader"]


def needs_upgrade(target: Service | Any) -> bool:
    """A fresh database, or one Alembic manages at an older revision (a database made
    by ``create_all`` in tests has no revision and is left alone)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import inspect

    service = _service_of(target)
    with service.engine.connect() as connection:
        if not inspect(connection).has_table("users"):
            return True
        current = MigrationContext.configure(connection).get_current_revision()
    head = ScriptDirectory.from_config(alembic_config(service.url)).get_current_head()
    return current is not None and current != head
