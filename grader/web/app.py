"""The web service: an application factory in the style of the Flask tutorial."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import (
    Flask,
    current_app,
    has_app_context,
    jsonify,
    make_response,
    render_template,
    request,
)
from sqlalchemy import update
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from grader import units
from grader.service.context import Service, default_instance_dir, register_resolver
from grader.service.database import database_url
from grader.service.db import db
from grader.service.executors import make_executor
from grader.service.models import User
from grader.settings import get_settings
from grader.web import filters
from grader.web.extensions import csrf, limiter, login_manager

#: Seconds a client is asked to wait when the database is unavailable.
RETRY_AFTER_SECONDS = 30

# Multipart framing around the file; the file itself is capped exactly by storage.
UPLOAD_SLACK = 64 * 1024


def _secret_key(instance_path: str) -> str:
    """SECRET_KEY from the environment, else one generated once and kept in instance/."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _app_service() -> Service | None:
    """Inside an app context, the service is that app's."""
    return current_app.extensions.get("grader") if has_app_context() else None


def executor_mode(app: Flask) -> str:
    """The configured executor; ``GRADER_EXECUTOR`` may override the factory default."""
    mode = app.config.get("GRADER_EXECUTOR", "thread")
    override = app.config["GRADER_SETTINGS"].executor
    if mode == "thread" and override in ("celery", "thread", "sync", "none"):
        return override
    return mode


def _init_service(app: Flask) -> None:
    """The app's database, storage, settings and executor (the service layer's),
    active inside every app context and closed at its end."""
    service = Service(
        instance_path=app.instance_path,
        url=app.config["SQLALCHEMY_DATABASE_URI"],
        settings=app.config["GRADER_SETTINGS"],
        storage_config=app.config,
        password_method=app.config.get("PASSWORD_HASH_METHOD", "scrypt"),
    )
    service.executor = make_executor(
        executor_mode(app),
        service,
        workers=int(app.config.get("GRADER_WORKERS", 1)),
        broker_url=app.config.get("CELERY_BROKER_URL"),
    )
    app.extensions["grader"] = service
    app.extensions["grader_executor"] = service.executor
    register_resolver(_app_service)

    @app.teardown_appcontext
    def close_session(_exc: BaseException | None) -> None:
        service.session.remove()


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app; ``config`` overrides everything (tests pass a tmp instance dir)."""
    config = dict(config or {})
    instance_path = config.pop("INSTANCE_PATH", None) or default_instance_dir()
    app = Flask(
        __name__, instance_path=str(Path(instance_path).resolve()), instance_relative_config=True
    )
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    _configure(app, config)
    _init_service(app)
    _init_extensions(app)
    from grader.web import api, auth, authoring, instructor, student

    for blueprint in (auth.bp, student.bp, instructor.bp, authoring.bp, api.bp):
        app.register_blueprint(blueprint)
    csrf.exempt(api.bp)
    app.add_url_rule("/healthz", "healthz", healthz)
    _register_template_helpers(app)
    _register_error_handlers(app)
    app.after_request(_security_headers)
    return app


def _configure(app: Flask, config: dict[str, Any]) -> None:
    """Defaults from the settings and the environment, then ``config`` over them."""
    settings = config.get("GRADER_SETTINGS") or get_settings()
    broker = config.get("CELERY_BROKER_URL") or os.environ.get("CELERY_BROKER_URL") or ""
    app.config.update(
        SECRET_KEY=config.get("SECRET_KEY") or _secret_key(app.instance_path),
        SQLALCHEMY_DATABASE_URI=database_url(app.instance_path),
        GRADER_SETTINGS=settings,
        GRADER_SUBMISSIONS_DIR=str(settings.submissions_dir or Path.cwd() / "submissions"),
        GRADER_EXECUTOR="thread",
        GRADER_WORKERS=1,
        RATELIMIT_ENABLED=True,
        # Shared by every web process when Redis is there; else counted per process.
        RATELIMIT_STORAGE_URI=broker
        if broker.startswith(("redis://", "rediss://"))
        else "memory://",
        RATELIMIT_HEADERS_ENABLED=True,  # 429s say when to try again (Retry-After)
        LOGIN_RATE_LIMIT="10 per minute;50 per hour",  # per account and address
        LOGIN_ADDRESS_RATE_LIMIT="60 per minute;600 per hour",  # a classroom behind one NAT
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,
    )
    app.config.update(config)
    if "MAX_CONTENT_LENGTH" not in config:
        limit = app.config["GRADER_SETTINGS"].max_upload_bytes
        app.config["MAX_CONTENT_LENGTH"] = limit + UPLOAD_SLACK


def _init_extensions(app: Flask) -> None:
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to continue."
    login_manager.user_loader(_load_user)


def _load_user(user_id: str) -> User | None:
    try:
        return db.session.get(User, int(user_id))
    except ValueError:
        return None


def healthz() -> tuple[dict[str, str], int]:
    """For load balancers and compose: 200 only when the database answers and takes
    writes (a read-only SQLite file or a read-only replica is not healthy)."""
    try:
        with db.engine.connect() as connection:  # a write that touches no row, rolled back
            connection.execute(update(User).where(User.id == -1).values(active=User.active))
            connection.rollback()
    except Exception:  # any database failure means "not healthy"
        return {"status": "database unavailable"}, 503
    return {"status": "ok"}, 200


def _security_headers(response: Any) -> Any:
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; "
        "script-src 'self'; frame-ancestors 'none'; form-action 'self'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def _register_template_helpers(app: Flask) -> None:
    from grader.formats import EXTENSIONS as ACCEPTED_EXTENSIONS

    filters.register(app)

    @app.context_processor
    def inject() -> dict[str, Any]:
        max_bytes = app.config["GRADER_SETTINGS"].max_upload_bytes
        return {
            "accepted_extensions": ACCEPTED_EXTENSIONS,
            "max_upload_bytes": max_bytes,
            "max_upload_mb": units.size(max_bytes),
        }


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        code = exc.code or 500
        if _wants_json():
            message = exc.description
            if code == 413:  # Werkzeug's own words do not state the limit
                limit = current_app.config["GRADER_SETTINGS"].max_upload_bytes
                message = f"The file is larger than the {units.size(limit)} limit."
            response = jsonify(error=exc.name, message=message, status=code)
        else:
            response = make_response(render_template("error.html", code=code, error=exc))
        response.status_code = code
        # Keep Allow (405), Retry-After (429), WWW-Authenticate and the like.
        for key, value in exc.get_headers():
            if key.lower() != "content-type":
                response.headers[key] = value
        return response

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def database_down(exc: Exception) -> Any:
        """The database is unreachable or read-only: a 503 that says when to come back."""
        app.logger.warning("database unavailable: %s", str(exc).splitlines()[0][:200])
        db.session.rollback()
        message = "The database is unavailable right now; nothing was changed. Try again shortly."
        if _wants_json():
            response = jsonify(error="Service Unavailable", message=message, status=503)
        else:
            response = make_response(render_template("error.html", code=503, error=None))
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        app.logger.exception("unhandled error")
        if _wants_json():
            return jsonify(error="Internal Server Error", status=500), 500
        return render_template("error.html", code=500, error=None), 500
