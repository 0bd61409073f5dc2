"""A spec from a reference model's static inspection, in ``exact`` or ``budget`` mode.

``exact``: the ordered layer list (type and the attributes checked, output shapes,
per-layer parameters) and the exact total. ``budget``: the output shape, "at least one"
of each convolution type the reference uses and a parameter range. With a minimum
accuracy it is a CIFAR-10 assignment. Rubric and policy default to those of the shipped
assignments of the same kind, so a generated spec reads like the shipped ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from grader import units
from grader.errors import ConfigurationError, NotGradable
from grader.inspection.architecture import Architecture, Layer
from grader.inspection.static import Inspection, inspect_model
from grader.settings import Settings
from grader.spec import AssignmentSpec, parse_spec

MODES = ("exact", "budget")
#: Layer fields an exact spec can check (besides ``type``, always checked), in spec order.
CHECKABLE = (
    "filters", "units", "kernel_size", "strides", "padding", "depth_multiplier",
    "activation", "output_shape", "params",
)  # fmt: skip
#: The activation Keras gives a layer that names none: a reference that left it there
#: did not choose one, so an exact spec does not check it unless asked to.
DEFAULT_ACTIVATION = "linear"
CIFAR10_INPUT = (32, 32, 3)
CIFAR10_CLASSES = 10

#: The shipped assignments' rubric and policy: architecture-only, and CIFAR-10 evaluated.
ARCHITECTURE_RUBRIC: dict[str, Any] = {"architecture": 60, "parameters": 40}
EVALUATED_RUBRIC: dict[str, Any] = {
    "architecture": 20, "parameters": 10, "accuracy": 70, "credit_at_min": 0.6,
}  # fmt: skip
ARCHITECTURE_POLICY: dict[str, Any] = {"submissions_per_day": 10, "counts": "best"}
EVALUATED_POLICY: dict[str, Any] = {
    "submissions_per_day": 5, "late_penalty_per_day": 0.1, "late_penalty_cap": 0.5,
    "counts": "best",
}  # fmt: skip
TIME_LIMIT_SECONDS = 300
SCALE = "1/255"  # the course's preprocessing, written as the course writes it


class AuthoringError(Exception):
    """The reference cannot make a spec (not gradable, fails the spec, bad options);
    ``reason`` is the instructor's message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Options:
    """What the instructor chooses; everything else comes from the reference."""

    assignment_id: str
    title: str | None = None
    description: str | None = None  # None: one is written from the layers
    mode: Literal["exact", "budget"] = "exact"
    # exact: the attributes checked (None: all the reference has, activation only when set)
    checked: tuple[str, ...] | None = None
    min_accuracy: float | None = None
    target_accuracy: float | None = None
    # budget: the parameter range (max None: twice the reference, rounded up) and the
    # layer types that must appear at least once (None: the reference's convolutions)
    min_params: int | None = None
    max_params: int | None = None
    counted_types: tuple[str, ...] | None = None
    reference: str | None = None  # where the reference solution is kept (for the self-test)


@dataclass
class Draft:
    """A generated spec: as data, as validated spec and as YAML, with what was inspected."""

    data: dict[str, Any]
    spec: AssignmentSpec
    yaml: str
    inspection: Inspection


def generate(model_path: Path, options: Options, settings: Settings) -> Draft:
    """Inspect the reference and make its spec; raises AuthoringError with the reason."""
    from grader.authoring.yamlout import dump_spec

    try:
        inspection = inspect_model(model_path, settings)
    except NotGradable as exc:
        raise AuthoringError(
            f"The reference model is not gradable, so no spec was made from it: {exc.reason}"
        ) from None
    data = spec_data(inspection.architecture, options)
    text = dump_spec(data)
    try:
        spec = parse_spec(text, f"spec for {options.assignment_id}")
    except ConfigurationError as exc:
        raise AuthoringError(str(exc)) from None
    return Draft(data=data, spec=spec, yaml=text, inspection=inspection)


def spec_data(arch: Architecture, options: Options) -> dict[str, Any]:
    """The spec as plain data, keys in the order of the shipped specs."""
    if options.mode not in MODES:
        raise AuthoringError(f"mode must be one of {', '.join(MODES)}, not {options.mode!r}")
    unknown = sorted(set(options.checked or ()) - set(CHECKABLE))
    if unknown:
        raise AuthoringError(
            f"cannot check {', '.join(unknown)}: choose among {', '.join(CHECKABLE)}"
        )
    evaluated = options.min_accuracy is not None
    if options.target_accuracy is not None and not evaluated:
        raise AuthoringError("a target accuracy needs a minimum accuracy (a CIFAR-10 assignment)")
    if evaluated:
        _require_cifar10(arch)
    data: dict[str, Any] = {
        "id": options.assignment_id,
        "title": options.title or f"Assignment {options.assignment_id}",
        "description": options.description
        if options.description is not None
        else describe(arch, options),
    }
    if options.reference:
        data["reference"] = options.reference
    data["input_shape"] = list(arch.input_shape[1:])
    if options.mode == "exact":
        data["layers"] = [_layer(layer, options.checked) for layer in arch.layers]
        data["total_params"] = {"exact": arch.total_params}
    else:
        data["output_shape"] = list(arch.output_shape)
        data["layer_counts"] = [{"type": t, "min": 1} for t in _counted_types(arch, options)]
        data["total_params"] = _budget(arch, options)
    if evaluated:
        evaluation: dict[str, Any] = {
            "dataset": "cifar10",
            "split": "test",
            "preprocessing": {"scale": SCALE},
            "min_accuracy": options.min_accuracy,
        }
        if options.target_accuracy is not None:
            evaluation["target_accuracy"] = options.target_accuracy
        evaluation["time_limit_seconds"] = TIME_LIMIT_SECONDS
        data["evaluation"] = evaluation
    data["rubric"] = dict(EVALUATED_RUBRIC if evaluated else ARCHITECTURE_RUBRIC)
    data["policy"] = dict(EVALUATED_POLICY if evaluated else ARCHITECTURE_POLICY)
    return data


def _require_cifar10(arch: Architecture) -> None:
    shape = tuple(arch.input_shape[1:])
    out = tuple(arch.output_shape)
    if shape != CIFAR10_INPUT or out != (None, CIFAR10_CLASSES):
        raise AuthoringError(
            "A minimum accuracy makes a CIFAR-10 assignment: the reference must take 32×32×3 "
            f"images and give {CIFAR10_CLASSES} outputs, but it takes "
            f"{units.shape(arch.input_shape)} and gives {units.shape(arch.output_shape)}."
        )


def _layer(layer: Layer, checked: tuple[str, ...] | None) -> dict[str, Any]:
    """One exact layer: its type, then the checked fields it has, in CHECKABLE order."""
    item: dict[str, Any] = {"type": layer.type}
    for key in CHECKABLE:
        if checked is not None and key not in checked:
            continue
        if key == "output_shape":
            item[key] = list(layer.output_shape)
        elif key == "params":
            item[key] = layer.params
        elif key in layer.attributes:
            value = layer.attributes[key]
            if key == "activation" and checked is None and value == DEFAULT_ACTIVATION:
                continue
            item[key] = list(value) if isinstance(value, list | tuple) else value
    return item


def _counted_types(arch: Architecture, options: Options) -> list[str]:
    if options.counted_types is not None:
        present = {layer.type for layer in arch.layers}
        missing = [t for t in options.counted_types if t not in present]
        if missing:
            raise AuthoringError(
                f"the reference has no {', '.join(missing)} layer, so it would fail its own "
                "spec; count only types it uses"
            )
        return list(dict.fromkeys(options.counted_types))
    convolutions = (layer.type for layer in arch.layers if "kernel_size" in layer.attributes)
    return list(dict.fromkeys(convolutions))


def _budget(arch: Architecture, options: Options) -> dict[str, int]:
    total = arch.total_params
    high = options.max_params if options.max_params is not None else round_up(2 * total)
    budget: dict[str, int] = {}
    if options.min_params is not None:
        budget["min"] = options.min_params
    budget["max"] = high
    if not (options.min_params or 0) <= total <= high:
        raise AuthoringError(
            f"the reference has {total:,} parameters, outside the budget "
            f"{options.min_params or 0:,} to {high:,}: it would fail its own spec"
        )
    return budget


def round_up(value: int, digits: int = 2) -> int:
    """Up to ``digits`` significant digits: 243,284 -> 250,000; 0 -> 0."""
    if value <= 0:
        return 0
    step = 10 ** max(0, len(str(value)) - digits)
    return math.ceil(value / step) * step


def describe(arch: Architecture, options: Options) -> str:
    """A Markdown description from the reference: the input, each layer with its numbers,
    what is graded; the instructor rewrites it in the lesson's words."""
    shape = "×".join(str(d) for d in arch.input_shape[1:])
    lines = [f"Build a model that takes an input of shape **{shape}**"]
    if options.mode == "exact":
        lines[0] += " with exactly these layers:"
        lines.append("")
        for i, layer in enumerate(arch.layers, 1):
            settings = ", ".join(
                f"{key}={_plain(layer.attributes[key])}"
                for key in CHECKABLE
                if key in layer.attributes
                and not (key == "activation" and layer.attributes[key] == DEFAULT_ACTIVATION)
            )
            lines.append(
                f"{i}. `{layer.type}`{f' ({settings})' if settings else ''}: output "
                f"{units.shape(layer.output_shape)}, {layer.params:,} parameters"
            )
        lines += ["", f"{arch.total_params:,} parameters in total."]
    else:
        kinds = [f"`{t}`" for t in _counted_types(arch, options)]
        budget = _budget(arch, options)
        lines[0] += (
            f", uses at least one {' and one '.join(kinds) or 'layer'} and has at most "
            f"{budget['max']:,} parameters; its output is {units.shape(arch.output_shape)}."
        )
    if options.min_accuracy is not None:
        target = (
            f"; full accuracy points at {options.target_accuracy * 100:g} %"
            if options.target_accuracy is not None
            else ""
        )
        lines += [
            "",
            "The grader feeds the 10,000 CIFAR-10 test images as float32 pixels scaled to "
            f"[0, 1] (`x / 255`). You pass at {options.min_accuracy * 100:g} % test accuracy"
            f"{target}.",
        ]
    lines += ["", 'Save it with `model.save("my_model.keras")` and upload the file.']
    return "\n".join(lines) + "\n"


def _plain(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "(" + ", ".join(str(v) for v in value) + ")"
    return repr(value) if isinstance(value, str) else str(value)
