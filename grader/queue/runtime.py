"""Per-process resources of a worker: the Flask app (database, storage), the
evaluator (warm sandbox when available) and the knobs read from the environment."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask

log = logging.getLogger(__name__)

_lock = threading.Lock()
_apps: dict[int, Flask] = {}
_evaluators: dict[int, Any] = {}


def env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def max_tries() -> int:
    """Tries before a job that keeps failing for infrastructure reasons is set to error."""
    return max(1, int(env_float("GRADER_MAX_TRIES", 3)))


def tune_sqlite(app: Flask) -> None:
    """SQLite shared by a web process and workers: WAL and a long busy timeout."""
    from sqlalchemy import event

    from grader.web.extensions import db

    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return
    with app.app_context():
        engine = db.engine
        if getattr(engine, "_grader_tuned", False):
            return

        def on_connect(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout = 30000")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.close()

        event.listen(engine, "connect", on_connect)
        engine._grader_tuned = True  # type: ignore[attr-defined]
        engine.dispose()  # connections opened before the listener get it too


def flask_app() -> Flask:
    """This process's Flask app (one per pid: a forked child must not share the parent's
    database connections)."""
    pid = os.getpid()
    with _lock:
        app = _apps.get(pid)
        if app is None:
            from grader.web import create_app

            app = create_app({"GRADER_EXECUTOR": "none"})
            tune_sqlite(app)
            _apps.clear()
            _apps[pid] = app
        return app


def evaluator() -> Callable[..., Any]:
    """The evaluator for this process: a WarmEvaluator (TensorFlow imported once per
    process) unless disabled (``GRADER_WARM=0``), unavailable or on a GPU worker,
    else a fresh sandbox per job. GPU workers pass their own GPU to the sandbox."""
    from functools import partial

    from grader.queue.gpu import worker_gpu
    from grader.sandbox import evaluate_model

    pid = os.getpid()
    with _lock:
        if pid in _evaluators:
            return _evaluators[pid]
        gpu = worker_gpu()
        chosen: Callable[..., Any] = evaluate_model
        if gpu is None and os.environ.get("GRADER_WARM", "1") != "0":
            try:
                from grader.sandbox.policy import SandboxLimits
                from grader.sandbox.warm import WarmEvaluator
                from grader.settings import get_settings

                settings = get_settings()
                chosen = WarmEvaluator(
                    SandboxLimits.from_settings(settings), images=_test_images(settings)
                )
            except Exception as exc:  # the warm pool is an optimisation, never a requirement
                log.warning("warm sandbox unavailable (%s); a fresh sandbox per job", exc)
        if gpu is not None:
            chosen = partial(chosen, gpu=gpu)
        _evaluators.clear()
        _evaluators[pid] = chosen
        return chosen


def _test_images(settings: Any) -> Any:
    """The CIFAR-10 images the warm sandbox maps once per worker (None: not found yet;
    jobs then bring their own copy)."""
    from grader.data import find_test_set
    from grader.errors import ConfigurationError

    try:
        return find_test_set(None, settings.cifar10).images_path
    except ConfigurationError as exc:
        log.warning("no CIFAR-10 test set for the warm sandbox yet: %s", exc)
        return None


def prewarm() -> None:
    """Start this process's warm sandbox now, so the first job does not pay for it."""
    start = getattr(evaluator(), "start", None)
    if start is not None:
        try:
            start()
        except Exception:  # the first job will try again, or fall back to cold sandboxes
            log.exception("starting the warm sandbox failed")


def close_evaluator() -> None:
    """Stop this process's warm sandbox, if any (worker shutdown)."""
    with _lock:
        ev = _evaluators.pop(os.getpid(), None)
    close = getattr(ev, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            log.exception("closing the warm sandbox failed")
