"""The ``grader`` command line.

Exit codes of ``grader check``: 0 passed, 1 failed, 2 not gradable, 3 usage
or configuration error. Commands return their exit code; ``main`` maps
errors that are the operator's (bad flags, bad spec, no data, no sandbox) to 3.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click

from grader.errors import ConfigurationError, SandboxUnavailable
from grader.settings import get_settings

EXIT_USAGE = 3


def _assignments_dir(value: Path | None) -> Path:
    return value or get_settings().assignments_dir


assignments_option = click.option(
    "--assignments-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of assignment specs (default: the shipped assignments/).",
)


class _Commands(click.Group):
    """Adds the web service's commands (serve, init-db, ...) only when one is asked for:
    importing Flask and SQLAlchemy would slow ``grader check`` and ``grader inspect``."""

    _web_loaded = False

    def _load_web(self) -> None:
        if not self._web_loaded:
            type(self)._web_loaded = True
            _register_web_commands(self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands or cmd_name == "assignments":  # + "assignments import"
            self._load_web()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_web()
        return super().list_commands(ctx)


@click.group(cls=_Commands)
@click.version_option(package_name="keras-grader")
def cli() -> None:
    """Grade Keras CNN homework: self-check, batch grading, the web service."""


@cli.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=True, path_type=Path))
@click.option("--assignment", "-a", required=True, help="Assignment id, e.g. day097-cifar10.")
@click.option(
    "--data",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="CIFAR-10 test set: .npz (x, y), a folder with test.npz, cifar-10-batches-py "
    "or cifar-10-python.tar.gz. Default: $GRADER_CIFAR10, Keras's cache, or a download.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option(
    "--trust",
    is_flag=True,
    help="Evaluate without the sandbox. Only for your own file, on a machine without "
    "bubblewrap; never for someone else's.",
)
@click.option("--cpu", is_flag=True, help="Do not use a GPU even if one is present.")
@assignments_option
def check(
    model: Path, assignment: str, data: Path | None, as_json: bool, trust: bool, cpu: bool,
    assignments_dir: Path | None,
) -> int:  # fmt: skip
    """Grade one MODEL file (.keras or .h5) against an assignment."""
    from grader.data import find_test_set
    from grader.pipeline import grade_file
    from grader.render import render_text
    from grader.spec import find_spec

    settings = get_settings()
    spec = find_spec(assignment, _assignments_dir(assignments_dir))
    test_set = None
    if spec.evaluation is not None:
        test_set = find_test_set(data, settings.cifar10)
    gpu = None if cpu or not Path("/dev/nvidia0").exists() else 0
    report = grade_file(model, spec, settings=settings, trust=trust, test_set=test_set, gpu=gpu)
    if as_json:
        click.echo(json.dumps(report.model_dump(mode="json"), indent=2))
    else:
        click.echo(render_text(report, model.name, spec.title))
    return report.exit_code


@cli.command("inspect")
@click.argument("model", type=click.Path(exists=True, dir_okay=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def inspect_command(model: Path, as_json: bool) -> int:
    """Show what the grader sees in MODEL without running it: layers, shapes, parameters.

    Static analysis only (no TensorFlow, no assignment): exit 0 if the file can be
    graded, 2 with the reason if it would be refused.
    """
    from grader.errors import NotGradable
    from grader.inspection.static import inspect_model
    from grader.pipeline import model_info
    from grader.render import render_layers
    from grader.report import ModelInfo

    try:
        inspection = inspect_model(model, get_settings())
    except NotGradable as exc:
        info, reason, resources = ModelInfo(), exc.reason, None
    else:
        arch = inspection.architecture
        info, reason = model_info(arch, inspection.format), None
        resources = dataclasses.asdict(arch.resources)
    status = "not_gradable" if reason else "ok"
    if as_json:
        payload = {"status": status, "reason": reason, "model": info.model_dump(mode="json"),
                   "resources": resources}  # fmt: skip
        click.echo(json.dumps(payload, indent=2))
    elif reason:
        click.echo(f"{model.name}: NOT GRADABLE\n\n{reason}")
    else:
        click.echo(f"{model.name}: {info.format} file, input {info.input_shape}, output "
                   f"{info.output_shape}\n")  # fmt: skip
        click.echo("\n".join(render_layers(info)))
    return 2 if reason else 0


@cli.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--assignment", "-a", required=True, help="Assignment id, e.g. day097-cifar10.")
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("grades.csv"),
    show_default=True,
    help="Gradebook CSV: student, file, status, score, max_score, accuracy, total_params, reason.",
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

    Unchanged files that already have a report are skipped unless --force. Exits 0
    when the batch ran, whatever the students' results; 3 on a usage or setup error.
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
    click.echo(f"Wrote {summary.csv_path} and reports in {summary.reports_dir}/")
    return 0


@cli.group()
def assignments() -> None:
    """List, show and import assignment specs."""


@assignments.command("list")
@assignments_option
def assignments_list(assignments_dir: Path | None) -> int:
    """List the assignments."""
    from grader.spec import list_specs

    for spec in list_specs(_assignments_dir(assignments_dir)):
        kind = "CIFAR-10 evaluation" if spec.evaluation else "architecture"
        click.echo(f"{spec.id:20}  {spec.title}  [{kind}]")
    return 0


@assignments.command("show")
@click.argument("assignment_id")
@assignments_option
def assignments_show(assignment_id: str, assignments_dir: Path | None) -> int:
    """Show one assignment's full spec."""
    import yaml

    from grader.spec import find_spec

    spec = find_spec(assignment_id, _assignments_dir(assignments_dir))
    dumped = spec.model_dump(mode="json", exclude_none=True)
    click.echo(yaml.safe_dump(dumped, sort_keys=False, allow_unicode=True, default_flow_style=None))
    return 0


def _register_web_commands(group: click.Group) -> None:
    """The web service adds its commands (serve, init-db, ...) when it is installed."""
    try:
        from grader.web.commands import register_commands
    except ImportError as exc:  # the web extras are optional for a student's self-check
        if exc.name and exc.name.startswith("grader"):
            raise
        return
    register_commands(group)


def main(argv: list[str] | None = None) -> None:
    """Entry point; turns operator errors into exit code 3 with a one-line message."""
    try:
        code = cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        code = EXIT_USAGE
    except click.ClickException as exc:
        exc.show()
        code = EXIT_USAGE
    except (ConfigurationError, SandboxUnavailable) as exc:
        click.echo(f"Error: {exc}", err=True)
        code = EXIT_USAGE
    sys.exit(code if isinstance(code, int) else 0)
