"""``grader check`` and ``grader inspect``: one model file, graded or inspected locally."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from grader.commands.shared import assignments_dir as _assignments_dir
from grader.commands.shared import assignments_option


@click.command()
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
@click.option(
    "--backend",
    type=click.Choice(["tensorflow", "jax", "torch"]),
    default=None,
    help="Keras backend inside the sandbox (default: $GRADER_KERAS_BACKEND, else tensorflow).",
)
@assignments_option
def check(
    model: Path, assignment: str, data: Path | None, as_json: bool, trust: bool, cpu: bool,
    backend: str | None, assignments_dir: Path | None,
) -> int:  # fmt: skip
    """Grade one MODEL file (.keras or .h5) against an assignment."""
    from functools import partial

    from grader.data import find_test_set
    from grader.pipeline import grade_file
    from grader.render import render_text
    from grader.sandbox import evaluate_model
    from grader.settings import get_settings
    from grader.spec import find_spec

    settings = get_settings()
    if backend is not None:
        settings = settings.model_copy(update={"keras_backend": backend})
    spec = find_spec(assignment, _assignments_dir(assignments_dir))
    test_set = None
    if spec.evaluation is not None:
        test_set = find_test_set(data, settings.cifar10)
    gpu = None if cpu or not Path("/dev/nvidia0").exists() else 0
    evaluator = partial(evaluate_model, backend=settings.keras_backend)
    report = grade_file(model, spec, settings=settings, trust=trust, test_set=test_set, gpu=gpu,
                        evaluator=evaluator)  # fmt: skip
    if as_json:
        click.echo(json.dumps(report.model_dump(mode="json"), indent=2))
    else:
        click.echo(render_text(report, model.name, spec.title))
    return report.exit_code


@click.command("inspect")
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
    from grader.settings import get_settings

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
