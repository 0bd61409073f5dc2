"""``grader assignments list`` and ``show``: the assignment specs in a folder."""

from __future__ import annotations

from pathlib import Path

import click

from grader.commands.shared import assignments_dir as _assignments_dir
from grader.commands.shared import assignments_option


@click.group()
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
