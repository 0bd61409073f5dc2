"""What several commands share: the --assignments-dir option and the web app they act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

assignments_option = click.option(
    "--assignments-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of assignment specs (default: the shipped assignments/).",
)


def assignments_dir(value: Path | None) -> Path:
    """``--assignments-dir``, else ``GRADER_ASSIGNMENTS_DIR``, else the shipped folder."""
    from grader.settings import get_settings

    return value or get_settings().assignments_dir


def web_app(config: dict[str, Any] | None = None) -> Any:
    """The web app (database, storage, executor) configured from the environment; its
    database is created or brought up to date first, so no command meets a missing
    table or column."""
    from grader.service.migrate import needs_upgrade, upgrade
    from grader.web import create_app

    app = create_app(config)
    if needs_upgrade(app):
        upgrade(app)
    return app
