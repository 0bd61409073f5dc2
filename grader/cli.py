"""The ``grader`` command line.

Exit codes of ``grader check``: 0 passed, 1 failed, 2 not gradable, 3 usage
or configuration error. Commands return their exit code; ``main`` maps
errors that are the operator's (bad flags, bad spec, no data, no sandbox) to 3.
"""

from __future__ import annotations

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


@click.group()
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
@assignments_option
def check(
    model: Path, assignment: str, data: Path | None, as_json: bool, trust: bool,
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
    report = grade_file(model, spec, settings=settings, trust=trust, test_set=test_set)
    if as_json:
        click.echo(json.dumps(report.model_dump(mode="json"), indent=2))
    else:
        click.echo(render_text(report, model.name, spec.title))
    return report.exit_code


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


def _register_web_commands() -> None:
    """The web service adds its commands (serve, init-db, ...) when it is installed."""
    try:
        from grader.web.commands import register_commands
    except ImportError as exc:  # the web extras are optional for a student's self-check
        if exc.name and exc.name.startswith("grader"):
            raise
        return
    register_commands(cli)


_register_web_commands()


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
