"""The one job body every executor runs: claim -> inspect (once) -> evaluate ->
finish, or release for a retry.

Executors (the in-process ones in :mod:`grader.service.executors`, Celery in
:mod:`grader.queue`) differ only in how a job reaches this code: they hand it a
:class:`JobHost` saying who is running it, how to deliver a submission to the
next queue, and which evaluator runs models. The retry limit, the
compare-and-set claim and "infrastructure failures cost no attempt" are the same
for all of them because they live here and in :mod:`grader.service.lifecycle`.

inspect: fetch the file (verified against its sha256) and inspect it as data. A
refused file is finished here with its reason; a file that passes is queued for
evaluation with its inspection stored on the row, so evaluation never inspects
again. evaluate: run the model in the sandbox, score it on this side, store the
one result. Anything that is not the file's fault releases the job.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError

from grader.data import test_set_available
from grader.errors import NotGradable, TestSetMissing
from grader.inspection.static import Inspection
from grader.pipeline import (
    EvaluationRefused,
    Evaluator,
    build_report,
    evaluate,
    inspect_file,
    model_info,
    refusal_report,
)
from grader.report import Report
from grader.sandbox import EvaluationResult, evaluate_model
from grader.service import copies, lifecycle
from grader.service.context import current
from grader.service.db import db
from grader.service.lifecycle import EVALUATE, INSPECT
from grader.service.models import Submission, utcnow
from grader.service.specs import spec_of
from grader.spec import AssignmentSpec

log = logging.getLogger(__name__)


def _no_delivery(submission_id: int, queue: str) -> None:
    raise RuntimeError(f"no executor to deliver submission {submission_id} to {queue}")


@dataclass
class JobHost:
    """What an executor lends the job body."""

    node: str  # who holds the claim, e.g. "celery@host" or "thread@host"
    deliver: Callable[[int, str], None] = _no_delivery  # send a submission to a queue
    evaluator: Evaluator = field(default=evaluate_model)


class Superseded(Exception):
    """The job's claim was taken away (requeued as stuck); stop without writing."""


def run(submission_id: int, queue: str, host: JobHost) -> str:
    """Claim the submission for ``queue`` and run that job, beating while it runs;
    returns what happened (for logs and tests)."""
    token = lifecycle.claim(submission_id, queue, host.node)
    if token is None:
        return "skipped"
    body = _inspect if queue == INSPECT else _evaluate
    with _heartbeat(submission_id, token):
        return body(submission_id, token, host)


def _load(submission_id: int) -> tuple[AssignmentSpec, Submission]:
    sub = db.session.get(Submission, submission_id)
    assert sub is not None
    spec = spec_of(sub.spec_version)
    db.session.expunge(sub)
    db.session.rollback()
    return spec, sub


def _fetch(sub: Submission, tmp: str) -> Path:
    # The pipeline sees a name chosen from the content, never the browser's, and the
    # copy it grades is the one verified against the sha256.
    return (
        current()
        .storage()
        .fetch(sub.file_sha256, Path(tmp) / f"model.{sub.file_format or 'keras'}")
    )


@contextmanager
def _heartbeat(submission_id: int, token: str) -> Iterator[None]:
    """Beat while the job runs, from a thread of its own (with its own session), so the
    watchdog can tell a slow job from one whose process died."""
    service = current()
    period = service.settings.heartbeat_seconds
    stop = threading.Event()

    def loop() -> None:
        with service.activate():
            while not stop.wait(period):
                try:
                    if not lifecycle.beat(submission_id, token):
                        return  # the claim was taken away
                except Exception:  # the database is down: the next beat may pass
                    db.session.rollback()

    thread = threading.Thread(target=loop, name=f"heartbeat-{submission_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=period + 5)


#: Seconds between attempts to save a finished job while the database is unavailable.
SAVE_BACKOFF = (1, 2, 4, 8, 16)


def _save(write: Callable[[], bool]) -> bool:
    """A finished evaluation is worth waiting for: a short database outage is retried
    with backoff before the result is given up (and the job is retried later)."""
    for delay in (*SAVE_BACKOFF, None):
        try:
            return write()
        except (OperationalError, InterfaceError):
            db.session.rollback()
            if delay is None:
                raise
            log.warning("database unavailable while saving; retrying in %s s", delay)
            time.sleep(delay)
    return False


def _progress(submission_id: int, token: str, line: str, **stamps: Any) -> None:
    """A progress stamp during an evaluation. A lost claim ends the job (Superseded); a
    database that is down for a moment does not: the evaluation goes on, and its result
    is saved with backoff (``_save``) rather than thrown away and run again."""
    try:
        ok = lifecycle.mark(submission_id, token, line, **stamps)
    except (OperationalError, InterfaceError):
        db.session.rollback()
        log.warning("submission %s: database unavailable for a progress stamp", submission_id)
        return
    if not ok:
        raise Superseded


def _look_for_copies(submission_id: int) -> None:
    """Index the weights and record copy pairs; never a reason for the job to fail."""
    try:
        copies.record(submission_id)
    except Exception:
        db.session.rollback()
        log.exception("copy detection failed for submission %s", submission_id)


def _release(submission_id: int, token: str | None, exc: BaseException, host: JobHost) -> str:
    db.session.rollback()
    reason = f"{type(exc).__name__}: {exc}"[:500]
    log.warning("submission %s: %s", submission_id, reason)
    outcome, queue = lifecycle.release(submission_id, token, reason, current().settings.max_tries)
    if queue is not None:
        _deliver(host, submission_id, queue)
    return outcome


def _deliver(host: JobHost, submission_id: int, queue: str) -> None:
    try:
        host.deliver(submission_id, queue)
    except Exception:  # a Celery host's watchdog resends what is queued in the database
        log.exception("could not send submission %s to %s", submission_id, queue)


def _inspect(submission_id: int, token: str, host: JobHost) -> str:
    try:
        spec, sub = _load(submission_id)
        with tempfile.TemporaryDirectory(prefix="inspect-") as tmp:
            model = _fetch(sub, tmp)
            started = time.perf_counter()
            try:
                inspection = inspect_file(model, spec, current().settings)
            except NotGradable as exc:  # the report comes from this one inspection
                spent = round(time.perf_counter() - started, 4)
                report = refusal_report(spec, exc.reason, file_sha256=sub.file_sha256,
                                        timings={"inspect": spent, "total": spent})  # fmt: skip
                saved = _save(lambda: lifecycle.finish(submission_id, token, report))
                return report.status if saved else "lost"
        stored = {
            "inspection": inspection.to_json(),
            "seconds": round(time.perf_counter() - started, 4),
        }
        if not lifecycle.handoff(submission_id, token, stored):
            return "lost"
    except Exception as exc:
        return _release(submission_id, token, exc, host)
    _deliver(host, submission_id, EVALUATE)
    return "handed off"


def _stored_or_fresh(stored: dict[str, Any], model: Path, spec: AssignmentSpec) -> Inspection:
    """The inspection the inspect job stored, or a fresh one when there is none or it was
    written by another grader version (rows queued before an upgrade)."""
    try:
        return Inspection.from_json(stored["inspection"])
    except (KeyError, TypeError, ValueError):
        return inspect_file(model, spec, current().settings)


def _evaluated(
    model: Path,
    inspection: Inspection,
    spec: AssignmentSpec,
    sha: str,
    evaluator: Evaluator,
    on_phase: Callable[[str], None],
) -> Report:
    """The report of a sandbox run; a refusal found after it keeps model, device, timings."""
    try:
        evaluation = evaluate(model, inspection, spec, settings=current().settings,
                              evaluator=evaluator, on_phase=on_phase)  # fmt: skip
    except EvaluationRefused as exc:
        return refusal_report(
            spec, exc.reason, file_sha256=sha, device=exc.evaluation.result.device,
            backend=exc.evaluation.result.backend,
            model=model_info(inspection.architecture, inspection.format),
            timings=exc.evaluation.timings,
        )  # fmt: skip
    except NotGradable as exc:  # the sandbox refused it (time, memory, a crash while loading)
        model = model_info(inspection.architecture, inspection.format)
        return refusal_report(spec, exc.reason, file_sha256=sha, model=model)
    return build_report(spec, inspection, evaluation, file_sha256=sha)


def _evaluate(submission_id: int, token: str, host: JobHost) -> str:
    settings = current().settings

    def on_phase(phase: str) -> None:
        if phase == "scoring":
            _progress(submission_id, token, "phase: scoring")

    def timed(*args: Any, **kwargs: Any) -> EvaluationResult:
        if settings.queue_test_delay > 0:  # tests kill a worker mid-evaluation
            time.sleep(settings.queue_test_delay)
        started = time.time()
        result = host.evaluator(*args, **kwargs)
        t = result.timings
        load_done = started + sum(t.get(k, 0.0) for k in ("sandbox_start", "import", "load"))
        loaded = datetime.fromtimestamp(min(load_done, time.time()), UTC).replace(tzinfo=None)
        _progress(submission_id, token, f"loaded and evaluated on {result.device}",
                  loaded_at=loaded, evaluated_at=utcnow())  # fmt: skip
        return result

    try:
        spec, sub = _load(submission_id)
        # (inspected_at is restamped here: the watchdog times this claim from started_at.)
        if not lifecycle.mark(submission_id, token, "phase: evaluating", inspected_at=utcnow()):
            return "lost"
        stored = sub.inspection or {}
        timings = {"inspect": float(stored.get("seconds", 0.0))}
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="evaluate-") as tmp:
            model = _fetch(sub, tmp)
            # Rows queued before inspections were stored are inspected here instead.
            try:
                inspection = _stored_or_fresh(stored, model, spec)
            except NotGradable as exc:
                report = refusal_report(spec, exc.reason, file_sha256=sub.file_sha256)
            else:
                report = _evaluated(model, inspection, spec, sub.file_sha256, timed, on_phase)
        timings.update(report.timings)
        timings["total"] = round(timings["inspect"] + time.perf_counter() - started, 4)
        report.timings = timings
        saved = _save(lambda: lifecycle.finish(submission_id, token, report))
        if saved:
            _look_for_copies(submission_id)
        return report.status if saved else "lost"
    except Superseded:
        return "lost"
    except TestSetMissing as exc:
        db.session.rollback()
        return "waiting" if lifecycle.wait_for_data(submission_id, token, str(exc)) else "lost"
    except Exception as exc:
        return _release(submission_id, token, exc, host)


def resume_waiting(host: JobHost) -> int:
    """Evaluations that waited for the test set go ahead once it is here."""
    ids = lifecycle.waiting()
    if not ids or not test_set_available(current().settings.cifar10):
        return 0
    resumed = [sid for sid in ids if lifecycle.stop_waiting(sid)]
    for sid in resumed:
        _deliver(host, sid, EVALUATE)
    return len(resumed)
