"""Per-process resources of a worker: its service (database, storage, settings)
and the evaluator (warm sandbox when available)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from grader.service.context import Service, default_instance_dir

log = logging.getLogger(__name__)

_lock = threading.Lock()
_services: dict[int, Service] = {}
_evaluators: dict[int, Any] = {}


def worker_service() -> Service:
    """This process's service: database, storage and settings from the environment, as
    for the web app, without building it (one per pid: a forked child must not share
    the parent's database connections)."""
    pid = os.getpid()
    with _lock:
        service = _services.get(pid)
        if service is None:
            service = Service(instance_path=default_instance_dir())
            _services.clear()
            _services[pid] = service
        return service


def evaluator() -> Callable[..., Any]:
    """The evaluator for this process: a WarmEvaluator (Keras and its backend imported
    once per process) unless disabled (``GRADER_WARM=0``), unavailable or on a GPU
    worker, else a fresh sandbox per job. GPU workers pass their own GPU to the sandbox;
    every job runs the backend of ``GRADER_KERAS_BACKEND``."""
    from functools import partial

    from grader.queue.gpu import worker_gpu
    from grader.sandbox import evaluate_model
    from grader.settings import get_settings

    pid = os.getpid()
    with _lock:
        if pid in _evaluators:
            return _evaluators[pid]
        settings = get_settings()
        gpu = worker_gpu()
        chosen: Callable[..., Any] = partial(evaluate_model, backend=settings.keras_backend)
        if gpu is None and settings.warm:
            try:
                from grader.sandbox.policy import SandboxLimits
                from grader.sandbox.warm import WarmEvaluator

                chosen = WarmEvaluator(
                    SandboxLimits.from_settings(settings),
                    images=_test_images(settings),
                    backend=settings.keras_backend,
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
