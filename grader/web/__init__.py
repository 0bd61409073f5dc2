"""The web service (Flask). Importing this package does not import Flask, so the
``grader submit``/``status`` client commands work without the web extras."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Application factory; see ``grader.web.app.create_app``."""
    from grader.web.app import create_app as _create_app

    return _create_app(config)


__all__ = ["create_app"]
