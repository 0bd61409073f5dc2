"""``grader assignments list`` and ``show``: the assignment specs in a folder."""

from __future__ import annotations

from pathlib import Path

import click

from grader.commands.shared import assignments_dir as _assignments_dir
from grader.commands.shared import assignments_option


@click.group()
def assignments() -> None:
    """List, show, author (new), import and what-if (diff) assignment specs."""


@assignments.command("list")
@assignments_option
def assignments_list(assignments_dir: Path | None) -> int:
    """List the assignments."""
    from grader.spec import list_specs

    specs = list_specs(_assignments_dir(assignments_dir))
    width = max((len(spec.id) for spec in specs), default=0)
    for spec in specs:
        kind = "CIFAR-10 evaluation" if spec.evaluation else "architecture"
        click.echo(f"{spec.id:{width}}  {spec.title}  [{kind}]")
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


@assignments.command("new")
@click.argument("assignment_id")
@click.option(
    "--from-model",
    "model",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The reference solution (.keras or .h5): the spec is made from it and it must pass.",
)
@click.option("--title", default=None, help="Default: 'Assignment ID'.")
@click.option(
    "--mode",
    type=click.Choice(["exact", "budget"]),
    default="exact",
    show_default=True,
    help="exact: the ordered layer list, output shapes and parameters per layer; "
    "budget: at least one of each convolution type and a parameter range.",
)
@click.option(
    "--check",
    "checked",
    multiple=True,
    help="exact: a layer attribute to check (repeat; default: all the reference has, "
    "activation only where it sets one). One of: " + ", ".join(
        ("filters", "units", "kernel_size", "strides", "padding", "depth_multiplier",
         "activation", "output_shape", "params")
    ) + ".",
)  # fmt: skip
@click.option("--count", "counted", multiple=True, help="budget: a layer type required (repeat).")
@click.option("--min-params", type=click.IntRange(min=0), default=None, help="budget: the least.")
@click.option(
    "--max-params",
    type=click.IntRange(min=0),
    default=None,
    help="budget: the most (default: twice the reference's, rounded up).",
)
@click.option(
    "--min-accuracy",
    type=click.FloatRange(0, 1),
    default=None,
    help="A CIFAR-10 assignment: the test accuracy to pass, e.g. 0.7.",
)
@click.option(
    "--target-accuracy",
    type=click.FloatRange(0, 1),
    default=None,
    help="Full accuracy points from this accuracy on, e.g. 0.8.",
)
@click.option(
    "--data",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="CIFAR-10 test set to check the reference's accuracy on (default: $GRADER_CIFAR10 "
    "or Keras's cache; never downloaded here).",
)
@click.option(
    "--reference",
    default=None,
    help="Where the reference is kept, recorded in the spec (default: the --from-model path).",
)
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the spec (default: ASSIGNMENTS_DIR/ID.yaml).",
)
@click.option("--force", is_flag=True, help="Replace an existing spec file.")
@assignments_option
def assignments_new(
    assignment_id: str,
    model: Path,
    title: str | None,
    mode: str,
    checked: tuple[str, ...],
    counted: tuple[str, ...],
    min_params: int | None,
    max_params: int | None,
    min_accuracy: float | None,
    target_accuracy: float | None,
    data: Path | None,
    reference: str | None,
    out: Path | None,
    force: bool,
    assignments_dir: Path | None,
) -> int:
    """Write a new assignment spec from a reference solution MODEL, checked against it.

    Prints the spec and where it was written. Exit 2 when the reference is not gradable
    or fails the spec, 3 for a usage error (an existing file without --force).
    """
    import re

    from grader.authoring import AuthoringError, Options, generate, verify
    from grader.data import find_test_set, test_set_available
    from grader.settings import get_settings
    from grader.units import pct

    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", assignment_id):
        raise click.BadParameter(
            "lower-case letters, digits, '-' and '_', starting with a letter or digit",
            param_hint="ID",
        )
    path = out or _assignments_dir(assignments_dir) / f"{assignment_id}.yaml"
    if path.exists() and not force:
        raise click.UsageError(f"{path} exists; give --force to replace it or --out elsewhere.")
    settings = get_settings()
    options = Options(
        assignment_id=assignment_id,
        title=title,
        mode=mode,  # type: ignore[arg-type]
        checked=checked or None,
        counted_types=counted or None,
        min_params=min_params,
        max_params=max_params,
        min_accuracy=min_accuracy,
        target_accuracy=target_accuracy,
        reference=reference or str(model),
    )
    try:
        draft = generate(model, options, settings)
        test_set = None
        if draft.spec.evaluation is not None and (data or test_set_available(settings.cifar10)):
            test_set = find_test_set(data, settings.cifar10)
        result = verify(model, draft.spec, settings, test_set=test_set, run=test_set is not None)
    except AuthoringError as exc:
        click.echo(f"Error: {exc.reason}", err=True)
        return 2
    if not result.passed:
        click.echo(f"Error: {result.reason()}", err=True)
        return 2
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(draft.yaml, encoding="utf-8")
    click.echo(draft.yaml, nl=False)
    how = "graded in the sandbox" if result.evaluated else "checked statically"
    if result.accuracy is not None:
        how += f", test accuracy {pct(result.accuracy)}"
    elif draft.spec.evaluation is not None:
        how += "; its accuracy was NOT checked (no CIFAR-10 test set here: --data)"
    click.echo(f"Wrote {path} (the reference passes it: {how}).", err=True)
    return 0


@click.command("diff")
@click.argument("assignment_id")
@click.argument("draft", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--run-models",
    is_flag=True,
    help="Run in the sandbox the submissions whose accuracy the draft would measure "
    "differently (slow); otherwise they are listed as not re-scored.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the what-if as JSON.")
@click.option("--publish", is_flag=True, help="Then publish the draft as the new version.")
@click.option("--regrade", is_flag=True, help="With --publish: then regrade every submission.")
@click.pass_context
def assignments_diff(
    ctx: click.Context,
    assignment_id: str,
    draft: Path,
    run_models: bool,
    as_json: bool,
    publish: bool,
    regrade: bool,
) -> int:
    """What-if: regrade every submission of ASSIGNMENT_ID against the DRAFT spec, writing
    nothing, and show which grades would change (up or down, which students, old and new
    score). Only --publish writes: the draft becomes the assignment's new version."""
    import dataclasses
    import json

    from grader.commands.shared import web_app
    from grader.service.db import db
    from grader.service.models import Assignment
    from grader.service.specs import import_spec
    from grader.service.whatif import what_if
    from grader.spec import parse_spec

    if regrade and not publish:
        raise click.UsageError("--regrade needs --publish (it regrades against the new version)")
    text = draft.read_text(encoding="utf-8")
    spec = parse_spec(text, str(draft))
    app = web_app()
    with app.app_context():
        assignment = db.session.get(Assignment, assignment_id)
        if assignment is None or assignment.current_version is None:
            raise click.ClickException(f"No assignment '{assignment_id}'.")
        result = what_if(assignment, spec, run_models=run_models)
        if as_json:
            data = dataclasses.asdict(result)
            data["summary"] = result.summary()
            click.echo(json.dumps(data, indent=2, default=str))
        else:
            click.echo(render_what_if(result))
        if publish:
            _, outcome = import_spec(text, str(draft))
            click.echo(f"Published: {assignment_id} {outcome}.", err=True)
    if publish and regrade:
        from grader.commands.grading import regrade_cmd

        return ctx.invoke(regrade_cmd, assignment_id=assignment_id)
    return 0


def render_what_if(result: object) -> str:
    """The what-if as text: the summary, the students whose grade changes, the
    submissions that could not be re-scored."""
    from grader import units
    from grader.service.whatif import WhatIf

    assert isinstance(result, WhatIf)
    lines = [result.summary()]
    if result.students:
        lines += ["", f"{'student':<20} {'old':>8} {'new':>8}"]
        for s in result.students:
            arrow = {"up": "↑", "down": "↓"}.get(s.direction, "")
            lines.append(
                f"{s.username:<20} {units.score(s.old_score):>8} {units.score(s.new_score):>8}"
                f" {arrow}"
            )
    changed = result.changed_submissions
    if changed:
        lines += ["", "Submissions scoring differently:"]
        for o in changed:
            why = f"  ({o.reason})" if o.reason else ""
            lines.append(
                f"  #{o.submission_id} {o.username}: {units.score(o.old_score)} -> "
                f"{units.score(o.new_score)} [{o.new_status.replace('_', ' ')}]{why}"
            )
    if result.not_rescored:
        lines += ["", "Not re-scored (their grade is assumed unchanged):"]
        lines += [f"  #{o.submission_id} {o.username}: {o.reason}" for o in result.not_rescored]
    return "\n".join(lines)
