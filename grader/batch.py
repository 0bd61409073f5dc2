"""Offline batch grading: one folder of submissions in, a gradebook CSV and JSON reports out.

Why it is shaped this way:

* Every file still goes through :func:`grader.pipeline.grade_file`, so each one is
  inspected as data first and evaluated in its own sandbox; a file that crashes or
  hangs its sandbox becomes ``not_gradable`` and the batch goes on.
* Sandboxes are subprocesses, so a thread pool is enough to run several at once.
* The spec and the test set are loaded once for the whole batch, not per file.
* A result is written as soon as it is known (``<reports>/<student>.json`` with the
  file's sha256), so an interrupted batch resumes where it stopped: a re-run skips
  files whose report is there and whose bytes did not change, unless ``force``.
* Operator problems (no sandbox, no test set) abort the batch: they would fail every
  file the same way. Any other unexpected exception is recorded for that one file as
  status ``error`` and is retried on the next run.
* The same protection as the service: each row carries the generalisation probe's
  verdict (``integrity_flag`` with both accuracies), and files of different students
  with the same or nearly the same weights are paired by ``grader.copymatch`` (the
  fingerprint is kept in each report, so a resumed batch still pairs skipped files).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from grader import csvout
from grader.copymatch import Graded, Match, find_pairs
from grader.data import TestSet, find_test_set
from grader.errors import ConfigurationError, NotGradable, SandboxUnavailable
from grader.inspection.static import inspect_model
from grader.pipeline import file_sha256, grade_file
from grader.settings import Settings, get_settings
from grader.spec import AssignmentSpec
from grader.units import pct

CSV_COLUMNS = (
    "student", "file", "status", "score", "max_score", "accuracy", "total_params", "reason",
    "integrity_flag", "probe_accuracy", "probe_variant", "variant_accuracy", "possible_copies",
)  # fmt: skip
DEFAULT_INCLUDE = ("*.keras", "*.h5", "*.hdf5")
GRADED = ("passed", "failed", "not_gradable")  # final verdicts, safe to skip on a re-run
SCORED = ("passed", "failed")  # evaluated: a probe verdict, and weights worth comparing
ERROR = "error"

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._@+-]")


@dataclass(frozen=True)
class Submission:
    """One file to grade and the student it belongs to."""

    student: str
    path: Path
    report_name: str  # file name of its JSON report, unique within the batch


@dataclass
class FileResult:
    """One gradebook row, plus how it was obtained."""

    student: str
    file: str
    status: str  # passed | failed | not_gradable | error
    score: float | None = None
    max_score: float | None = None
    accuracy: float | None = None
    total_params: int | None = None
    reason: str | None = None
    integrity_flag: str | None = None  # "yes" | "no"; None when the model was not evaluated
    probe_accuracy: float | None = None  # on the probe's first test images, as given
    probe_variant: str | None = None  # the change with the largest drop: "flip" | "shift"
    variant_accuracy: float | None = None  # on the same images under that change
    integrity_message: str = ""
    possible_copies: str | None = None  # "student (file): kind, similarity; ..."
    skipped: bool = False  # taken from an earlier run's report
    seconds: float = 0.0
    report_path: Path | None = None
    sha256: str | None = None
    prints: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def row(self) -> list[Any]:
        """The gradebook cells, in CSV_COLUMNS order (escaped by the CSV writer)."""
        return [getattr(self, name) for name in CSV_COLUMNS]

    @property
    def label(self) -> str:
        return f"{self.student} ({self.file})"


@dataclass(frozen=True)
class CopyPair:
    """Two different students' files with the same or nearly the same weights."""

    first: FileResult
    second: FileResult
    match: Match

    def line(self) -> str:
        return (
            f"{self.first.label} and {self.second.label}: {self.match.kind}, "
            f"{pct(self.match.similarity)} of the weights in common"
        )


@dataclass
class BatchSummary:
    """What a batch did; ``results`` are sorted by student, then file."""

    results: list[FileResult]
    csv_path: Path
    reports_dir: Path
    seconds: float
    warnings: list[str] = field(default_factory=list)
    pairs: list[CopyPair] = field(default_factory=list)

    @property
    def counts(self) -> Counter[str]:
        return Counter(r.status for r in self.results)

    @property
    def flagged(self) -> list[FileResult]:
        return [r for r in self.results if r.integrity_flag == "yes"]

    @property
    def skipped(self) -> int:
        return sum(r.skipped for r in self.results)

    @property
    def graded(self) -> int:
        return len(self.results) - self.skipped

    def line(self) -> str:
        """The one-line summary the CLI ends with."""
        c = self.counts
        return (
            f"{len(self.results)} files: {c['passed']} passed, {c['failed']} failed, "
            f"{c['not_gradable']} not gradable, {c[ERROR]} errors "
            f"({self.graded} graded, {self.skipped} unchanged and skipped) "
            f"in {self.seconds:.1f} s; {len(self.flagged)} flagged by the integrity probe, "
            f"{len(self.pairs)} possible copies"
        )


# --------------------------------------------------------------------------- naming


def compile_student_pattern(pattern: str | re.Pattern[str] | None) -> re.Pattern[str] | None:
    """Validate the instructor's pattern early: a bad regex is a usage error, not a crash."""
    if pattern is None or isinstance(pattern, re.Pattern):
        return pattern
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigurationError(
            f"--student-pattern {pattern!r} is not a valid regex: {exc}"
        ) from None


def student_of(path: Path, pattern: re.Pattern[str] | None) -> str | None:
    """The student id in a file name: group ``student``, else group 1, else the whole match.

    ``re.search`` on the file name (with its extension); no pattern means the file stem.
    None when the pattern does not match.
    """
    if pattern is None:
        return path.stem
    match = pattern.search(path.name)
    if match is None:
        return None
    if "student" in pattern.groupindex:
        found = match.group("student")
    elif pattern.groups:
        found = match.group(1)
    else:
        found = match.group(0)
    return found or None


def _safe_name(text: str) -> str:
    name = _UNSAFE_NAME.sub("_", text)
    return f"_{name}" if name.startswith(".") or not name else name


def collect_submissions(
    directory: Path,
    pattern: re.Pattern[str] | None = None,
    include: Sequence[str] = DEFAULT_INCLUDE,
    exclude: Sequence[Path] = (),
) -> tuple[list[Submission], list[str]]:
    """The files to grade, and warnings about files left out or named oddly.

    Hidden files are ignored. A file the pattern does not match is still graded,
    under its stem, with a warning: silently dropping a submission is worse.
    """
    warnings: list[str] = []
    excluded = {p.resolve() for p in exclude}
    chosen: list[tuple[str, Path]] = []
    ignored: list[str] = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.resolve() in excluded:
            continue
        if not any(fnmatch(path.name.lower(), glob.lower()) for glob in include):
            ignored.append(path.name)
            continue
        student = student_of(path, pattern)
        if student is None:
            warnings.append(
                f"{path.name}: does not match the student pattern; graded as {path.stem!r}"
            )
            student = path.stem
        chosen.append((student, path))
    if ignored:
        shown = ", ".join(ignored[:5]) + (", ..." if len(ignored) > 5 else "")
        warnings.append(
            f"ignored {len(ignored)} file(s) not matching {', '.join(include)}: {shown}"
        )
    per_student = Counter(student for student, _ in chosen)
    submissions = []
    for student, path in chosen:
        name = _safe_name(student)
        if per_student[student] > 1:  # two files for one student: keep both reports
            name = f"{name}__{_safe_name(path.name)}"
        submissions.append(Submission(student, path, f"{name}.json"))
    duplicated = sorted(s for s, n in per_student.items() if n > 1)
    if duplicated:
        warnings.append(f"several files for: {', '.join(duplicated)} (each graded)")
    return submissions, warnings


# --------------------------------------------------------------------------- one file


def _result_from_report(sub: Submission, data: dict[str, Any], **extra: Any) -> FileResult:
    metrics = data.get("metrics") or {}
    model = data.get("model") or {}
    verdict = data.get("integrity") or {}
    prints = data.get("fingerprint")
    return FileResult(
        student=sub.student,
        file=sub.path.name,
        status=data.get("status", ERROR),
        score=data.get("score"),
        max_score=data.get("max_score"),
        accuracy=metrics.get("accuracy"),
        total_params=model.get("total_params"),
        reason=data.get("reason") or _failed_checks(data),
        integrity_flag=("yes" if verdict["flagged"] else "no") if verdict else None,
        probe_accuracy=verdict.get("accuracy"),
        probe_variant=verdict.get("variant"),
        variant_accuracy=verdict.get("variant_accuracy"),
        integrity_message=verdict.get("message") or "",
        sha256=data.get("file_sha256"),
        prints=prints if isinstance(prints, list) else [],
        **extra,
    )


def _failed_checks(data: dict[str, Any]) -> str | None:
    """A failed file has no ``reason``; the gradebook says which checks failed instead."""
    parts = []
    for check in data.get("checks") or []:
        if isinstance(check, dict) and not check.get("passed", True):
            parts.append(
                check.get("message")
                or f"{check.get('name')}: expected {check.get('expected')}, "
                f"got {check.get('actual')}"
            )
    return "; ".join(parts) or None


def _sha256(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:  # a folder, or unreadable: nothing to compare, always regrade
        return None


def _fingerprint(path: Path, settings: Settings) -> list[dict[str, Any]]:
    """The weights' fingerprint (copy detection), from the same bounded inspection as
    grading; empty when the file cannot be read (it is then compared by sha256 only)."""
    try:
        return inspect_model(path, settings).fingerprint
    except NotGradable:
        return []


def _previous(
    sub: Submission, report_path: Path, spec: AssignmentSpec, settings: Settings
) -> FileResult | None:
    """The earlier verdict for this exact file under this assignment, if there is one."""
    try:
        data = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("status") not in GRADED:
        return None
    sha = _sha256(sub.path)
    if sha is None or data.get("file_sha256") != sha or data.get("assignment") != spec.id:
        return None
    if data["status"] in SCORED and not isinstance(data.get("fingerprint"), list):
        data["fingerprint"] = _fingerprint(sub.path, settings)  # a report from before them
    return _result_from_report(sub, data, skipped=True, report_path=report_path)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    tmp.replace(path)


def _grade_one(
    sub: Submission,
    spec: AssignmentSpec,
    report_path: Path,
    settings: Settings,
    test_set: TestSet | None,
    grade: Callable[..., Any],
) -> FileResult:
    started = time.perf_counter()
    try:
        report = grade(sub.path, spec, settings=settings, test_set=test_set)
        data = report.model_dump(mode="json")
    except (ConfigurationError, SandboxUnavailable):
        raise
    except Exception as exc:  # a grader bug for this file: record it, keep going
        data = {"status": ERROR, "reason": f"{type(exc).__name__}: {exc}", "assignment": spec.id}
    data = {"student": sub.student, "file": sub.path.name, **data}
    # The pipeline hashes every regular file it reads; hash here only what it could not
    # (an oversized file, or a file whose grading raised), so re-runs can still skip it.
    data["file_sha256"] = data.get("file_sha256") or _sha256(sub.path)
    if data.get("status") in SCORED:
        data["fingerprint"] = _fingerprint(sub.path, settings)
    _write_json(report_path, data)
    seconds = time.perf_counter() - started
    return _result_from_report(sub, data, seconds=seconds, report_path=report_path)


# --------------------------------------------------------------------------- the batch


def default_reports_dir(out_csv: Path) -> Path:
    """``grades.csv`` -> ``grades_reports/`` beside it."""
    return out_csv.with_name(f"{out_csv.stem}_reports")


def write_csv(path: Path, results: Sequence[FileResult]) -> None:
    """Write the gradebook atomically: a half-written CSV must never replace a good one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        csvout.write_csv(handle, CSV_COLUMNS, (result.row() for result in results))
    tmp.replace(path)


def grade_directory(
    directory: Path,
    spec: AssignmentSpec,
    out_csv: Path,
    *,
    reports_dir: Path | None = None,
    student_pattern: str | re.Pattern[str] | None = None,
    include: Sequence[str] = DEFAULT_INCLUDE,
    jobs: int | None = None,
    force: bool = False,
    data: Path | None = None,
    test_set: TestSet | None = None,
    settings: Settings | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_result: Callable[[FileResult], None] | None = None,
    grade: Callable[..., Any] = grade_file,
) -> BatchSummary:
    """Grade every model file in ``directory``; write ``out_csv`` and one JSON per file.

    ``on_start(to_grade, skipped)`` is called once the work is known and
    ``on_result`` once per freshly graded file, both from the calling thread (for
    a progress bar). Raises ConfigurationError / SandboxUnavailable for operator
    problems; a bad or failing file never stops the batch.
    """
    started = time.perf_counter()
    settings = settings or get_settings()
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigurationError(f"{directory}: not a folder of submissions")
    jobs = max(1, jobs or os.cpu_count() or 1)
    pattern = compile_student_pattern(student_pattern)
    reports_dir = Path(reports_dir) if reports_dir is not None else default_reports_dir(out_csv)
    subs, warnings = collect_submissions(
        directory, pattern, include, exclude=[out_csv, reports_dir]
    )
    reports_dir.mkdir(parents=True, exist_ok=True)

    results: list[FileResult] = []
    todo: list[Submission] = []
    for sub in subs:
        previous = None if force else _previous(sub, reports_dir / sub.report_name, spec, settings)
        if previous is not None:
            results.append(previous)
        else:
            todo.append(sub)
    if todo and spec.evaluation is not None and test_set is None:
        test_set = find_test_set(data, settings.cifar10)  # once for the whole batch
    if on_start is not None:
        on_start(len(todo), len(results))

    if todo:
        with ThreadPoolExecutor(max_workers=min(jobs, len(todo))) as pool:
            pending: set[Future[FileResult]] = {
                pool.submit(
                    _grade_one, sub, spec, reports_dir / sub.report_name, settings, test_set, grade
                )
                for sub in todo
            }
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        result = future.result()  # re-raises operator errors
                        results.append(result)
                        if on_result is not None:
                            on_result(result)
            except BaseException:
                for future in pending:  # stop what has not started; running ones finish
                    future.cancel()
                raise

    results.sort(key=lambda r: (r.student, r.file))
    pairs = copy_pairs(results)
    write_csv(out_csv, results)
    return BatchSummary(
        results=results,
        csv_path=out_csv,
        reports_dir=reports_dir,
        seconds=time.perf_counter() - started,
        warnings=warnings,
        pairs=pairs,
    )


def copy_pairs(results: Sequence[FileResult]) -> list[CopyPair]:
    """Pairs of different students' evaluated files with the same or nearly the same
    weights (``grader.copymatch``); each row's ``possible_copies`` names its partners."""
    scored = [r for r in results if r.status in SCORED]
    found = find_pairs([Graded(r.student, r.sha256, r.prints) for r in scored])
    pairs = [CopyPair(scored[i], scored[j], match) for i, j, match in found]
    partners: dict[int, list[str]] = {}
    for pair in pairs:
        for mine, theirs in ((pair.first, pair.second), (pair.second, pair.first)):
            partners.setdefault(id(mine), []).append(
                f"{theirs.label}: {pair.match.kind}, {pair.match.similarity:.2f}"
            )
    for result in results:
        result.possible_copies = "; ".join(partners.get(id(result), [])) or None
    return pairs
