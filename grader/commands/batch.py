"""``grader grade``: offline batch grading of a folder of model files into a gradebook CSV."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from grader.commands.shared import assignments_dir as _assignments_dir
from grader.commands.shared import assignments_option


@click.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--assignment", "-a", required=True, help="Assignment id, e.g. day097-cifar10.")
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("grades.csv"),
    show_default=True,
    help="Gradebook CSV: student, file, status, score, max_score, accuracy, total_params, "
    "reason, integrity_flag, probe_accuracy, probe_variant, variant_accuracy, possible_copies.",
)
@click.option(
    "--reports-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="One JSON report per file, <student>.json (default: <out stem>_reports/ beside --out).",
)
@click.option(
    "--student-pattern",
    default=None,
    metavar="REGEX",
    help="Regex searched in each file name; group 'student' (else group 1, else the whole "
    "match) is the student. Default: the file name without its extension.",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Files graded at once, each in its own sandbox (default: the number of CPUs).",
)
@click.option("--force", is_flag=True, help="Regrade files that already have a current report.")
@click.option(
    "--data",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="CIFAR-10 test set, as for `grader check`; loaded once for the whole batch.",
)
@assignments_option
def grade(
    directory: Path, assignment: str, out: Path, reports_dir: Path | None,
    student_pattern: str | None, jobs: int | None, force: bool, data: Path | None,
    assignments_dir: Path | None,
) -> int:  # fmt: skip
    """Grade every model file (.keras, .h5) in DIRECTORY: one file per student.

    Unchanged files that already have a report are skipped unless --force. Models
    flagged by the generalisation probe (a memorised test set) and different students'
    files with the same or nearly the same weights are listed after the summary and in
    the CSV. Exits 0 when the batch ran, whatever the students' results; 3 on a usage
    or setup error.
    """
    import os

    from grader.batch import FileResult, compile_student_pattern, grade_directory
    from grader.spec import find_spec

    compile_student_pattern(student_pattern)  # a bad regex fails before anything runs
    spec = find_spec(assignment, _assignments_dir(assignments_dir))
    jobs = jobs or os.cpu_count() or 1
    interactive = sys.stderr.isatty()
    bar = None
    done = 0
    total = 0

    def on_start(to_grade: int, skipped: int) -> None:
        nonlocal bar, total
        total = to_grade
        note = f", {skipped} unchanged (skipped; --force regrades)" if skipped else ""
        click.echo(f"Grading {to_grade} file(s) for {spec.id} with {jobs} job(s){note}", err=True)
        if interactive and to_grade:
            bar = click.progressbar(
                length=to_grade, label="grading", show_eta=True, show_pos=True, file=sys.stderr,
                item_show_func=lambda item: item,
            )  # fmt: skip
            bar.__enter__()

    def on_result(result: FileResult) -> None:
        nonlocal done
        done += 1
        line = f"{result.student}: {result.status}"
        if bar is not None:
            bar.update(1, line)
        else:  # a log file: one line per file instead of a bar
            click.echo(f"[{done}/{total}] {line} ({result.seconds:.1f} s)", err=True)

    try:
        summary = grade_directory(
            directory, spec, out, reports_dir=reports_dir, student_pattern=student_pattern,
            jobs=jobs, force=force, data=data, on_start=on_start, on_result=on_result,
        )  # fmt: skip
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    for warning in summary.warnings:
        click.echo(f"Warning: {warning}", err=True)
    for result in summary.results:
        if result.status == "error":
            click.echo(f"Error grading {result.file}: {result.reason}", err=True)
    click.echo(summary.line())
    for result in summary.flagged:
        click.echo(f"Flagged: {result.label}: {result.integrity_message}")
    for pair in summary.pairs:
        click.echo(f"Possible copy: {pair.line()}")
    click.echo(f"Wrote {summary.csv_path} and reports in {summary.reports_dir}/")
    return 0
