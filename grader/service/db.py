"""``db``: the active service's session and engine, under one name for every layer.

``db.session`` and ``db.engine`` belong to the active :class:`~grader.service.
context.Service`, so a Flask app, a Celery worker and a test each talk to their
own database through the same name.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import scoped_session

import grader.service.models  # noqa: F401  (registers the tables for create_all)
from grader.service.context import current
from grader.service.database import Base


class _Database:
    """``db.session``, ``db.engine``, ``db.create_all()``: the active service's."""

    Model = Base
    metadata = Base.metadata

    @property
    def session(self) -> scoped_session[Any]:
        return current().session

    @property
    def engine(self) -> Engine:
        return current().engine

    def create_all(self) -> None:
        Base.metadata.create_all(self.engine)

    def drop_all(self) -> None:
        Base.metadata.drop_all(self.engine)


db = _Database()
