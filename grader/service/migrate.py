"""Run Alembic migrations from code (``grader init-db`` / ``grader upgrade`` / ``serve``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from flask import Flask

# Inside the package (not the checkout root) so a non-editable install finds them.
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(app: Flask, revision: str = "head") -> None:
    """Bring the app's database to the latest schema (creates it if empty)."""
    from grader.service.database import db

    with app.app_context():
        cfg = alembic_config(app.config["SQLALCHEMY_DATABASE_URI"])
        with db.engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)


def revision(app: Flask, message: str) -> None:
    """Autogenerate a migration from the models (developers only)."""
    cfg = alembic_config(app.config["SQLALCHEMY_DATABASE_URI"])
    command.revision(cfg, message=message, autogenerate=True)
