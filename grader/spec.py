"""Assignment specs: what a submission must look like and how it is scored.

Specs are YAML files in ``assignments/``; they are validated here so that a
typo in a spec is caught when it is loaded, with the file, the field and the
problem named, rather than as a wrong grade later.
"""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from grader.errors import ConfigurationError

Padding = Literal["valid", "same", "causal"]
Shape = list[int | None]


def _pair(value: object) -> object:
    """Keras accepts ``3`` for ``(3, 3)``; so do specs."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [value, value]
    return value


def _number(value: object) -> object:
    """Allow ``1/255`` in YAML, as the course writes it."""
    if isinstance(value, str):
        try:
            return float(Fraction(value.replace(" ", "")))
        except (ValueError, ZeroDivisionError):
            return value
    return value


Pair = Annotated[list[int], BeforeValidator(_pair), Field(min_length=2, max_length=2)]
Number = Annotated[float, BeforeValidator(_number)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExpectedLayer(_Strict):
    """One layer of the exact architecture; unset fields are not checked."""

    type: str
    filters: int | None = Field(default=None, gt=0)
    units: int | None = Field(default=None, gt=0)
    kernel_size: Pair | None = None
    strides: Pair | None = None
    padding: Padding | None = None
    depth_multiplier: int | None = Field(default=None, gt=0)
    activation: str | None = None
    output_shape: Shape | None = None
    params: int | None = Field(default=None, ge=0)


class Range(_Strict):
    """An exact value or an inclusive range."""

    exact: int | None = Field(default=None, ge=0)
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _coherent(self) -> Range:
        if self.exact is None and self.min is None and self.max is None:
            raise ValueError("give exact, min or max")
        if self.exact is not None and (self.min is not None or self.max is not None):
            raise ValueError("give either exact or min/max, not both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self

    def contains(self, value: int) -> bool:
        if self.exact is not None:
            return value == self.exact
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def describe(self) -> str:
        if self.exact is not None:
            return f"{self.exact:,}"
        if self.min is not None and self.max is not None:
            return f"{self.min:,} to {self.max:,}"
        if self.min is not None:
            return f"at least {self.min:,}"
        return f"at most {self.max:,}"


class LayerCount(_Strict):
    """At least / at most N layers of a type, anywhere in the model."""

    type: str
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _coherent(self) -> LayerCount:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class Preprocessing(_Strict):
    """How uint8 pixels become model input: ``x * scale + offset`` as float32."""

    scale: Number = 1.0
    offset: Number = 0.0


def _holdout_path(value: object) -> object:
    """``holdout: PATH`` is short for ``holdout: {path: PATH}``."""
    return {"path": value} if isinstance(value, str) else value


class Holdout(_Strict):
    """A second held-out set (e.g. CIFAR-10.1): an ``.npz`` with ``x`` (N, 32, 32, 3)
    uint8 and ``y``, relative to the assignments folder unless absolute. Its accuracy is
    shown to the instructor beside the test accuracy; a model that memorised the public
    test set scores far lower on it, and a gap above ``max_gap`` flags the submission."""

    path: str = Field(min_length=1)
    max_gap: Number = Field(default=0.2, gt=0, le=1)


class Evaluation(_Strict):
    dataset: Literal["cifar10"] = "cifar10"
    split: Literal["test"] = "test"
    preprocessing: Preprocessing = Preprocessing()
    min_accuracy: Number = Field(ge=0, le=1)
    target_accuracy: Number | None = Field(default=None, ge=0, le=1)
    time_limit_seconds: int = Field(default=300, gt=0)
    holdout: Annotated[Holdout, BeforeValidator(_holdout_path)] | None = None

    @model_validator(mode="after")
    def _target_above_min(self) -> Evaluation:
        if self.target_accuracy is not None and self.target_accuracy < self.min_accuracy:
            raise ValueError("target_accuracy must not be below min_accuracy")
        return self


class Integrity(_Strict):
    """The generalisation probe: the same test images flipped and shifted by two pixels.
    A model that learned the classes loses a few points; one that memorised the public
    test set collapses. A drop above ``max_drop`` flags the submission; ``action``
    says whether a flag only informs the instructor or sets the score to zero."""

    max_drop: Number = Field(default=0.25, gt=0, le=1)
    action: Literal["flag", "zero"] = "flag"


class Rubric(_Strict):
    """Points per check group. Architecture and parameter points are shared
    equally among the checks of their group; accuracy earns
    ``credit_at_min`` of its points at ``min_accuracy``, rising linearly to all
    of them at ``target_accuracy``."""

    architecture: Number = Field(default=50, ge=0)
    parameters: Number = Field(default=50, ge=0)
    accuracy: Number = Field(default=0, ge=0)
    credit_at_min: Number = Field(default=0.5, ge=0, le=1)


class Policy(_Strict):
    """Submission rules used by the web service."""

    deadline: dt.datetime | None = None
    late_penalty_per_day: Number = Field(default=0.0, ge=0, le=1)
    late_penalty_cap: Number = Field(default=1.0, ge=0, le=1)
    submissions_per_day: int | None = Field(default=None, gt=0)
    counts: Literal["best", "last"] = "best"


class Feedback(_Strict):
    """What the feedback page shows beyond the checks: ``feature_maps`` are the
    activations of the model's convolution and pooling layers on two fixed images."""

    feature_maps: bool = True


class AssignmentSpec(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    title: str
    description: str = ""
    # Where the reference solution is kept (a build script in examples/ or a model file,
    # relative to the repository): the spec self-test grades it against this spec.
    reference: str | None = None
    input_shape: Shape
    output_shape: Shape | None = None
    layers: list[ExpectedLayer] | None = None
    layer_counts: list[LayerCount] = []
    total_params: Range | None = None
    trainable_params: Range | None = None
    evaluation: Evaluation | None = None
    integrity: Integrity = Integrity()
    rubric: Rubric = Rubric()
    policy: Policy = Policy()
    feedback: Feedback = Feedback()

    @model_validator(mode="after")
    def _accuracy_needs_evaluation(self) -> AssignmentSpec:
        if self.rubric.accuracy and self.evaluation is None:
            raise ValueError("rubric.accuracy gives points but there is no evaluation block")
        return self


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line where the field at ``loc`` is written (its parent's, when the
    field itself is missing), so that an error points into the file."""
    line = None if node is None else node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if 0 <= part < len(node.value) else None
        else:
            node = None
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def _format_errors(source: str, error: ValidationError, text: str) -> str:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        root = None
    lines = [f"{source}: invalid assignment spec"]
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(top level)"
        line = _line_of(root, tuple(item["loc"]))
        where = f" (line {line})" if line is not None else ""
        lines.append(f"  {field}{where}: {item['msg']}")
    return "\n".join(lines)


def _yaml_problem(source: str, exc: yaml.YAMLError) -> str:
    """PyYAML's error in plain words, with the line and column, without its dump of the
    text ("in '<unicode string>'")."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "the text is not YAML"
    context = getattr(exc, "context", None)
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    why = f"{problem} ({context})" if context else problem
    return f"{source}{where}: not valid YAML: {why}"


def parse_spec(text: str, source: str = "<spec>") -> AssignmentSpec:
    """Validate YAML text; errors name the source, the field and the problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(_yaml_problem(source, exc)) from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{source}: a spec must be a mapping of fields")
    try:
        return AssignmentSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(_format_errors(source, exc, text)) from None


def load_spec(path: Path) -> AssignmentSpec:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read spec: {exc.strerror}") from None
    spec = parse_spec(text, str(path))
    if spec.id != path.stem:
        raise ConfigurationError(f"{path}: id: '{spec.id}' does not match the file name")
    return spec


def list_specs(directory: Path) -> list[AssignmentSpec]:
    return [load_spec(p) for p in sorted(directory.glob("*.yaml"))]


def find_spec(assignment_id: str, directory: Path) -> AssignmentSpec:
    """Resolve an id (or a path to a spec file) given on the command line."""
    candidate = Path(assignment_id)
    if candidate.suffix in {".yaml", ".yml"} and candidate.is_file():
        return load_spec(candidate)
    path = directory / f"{assignment_id}.yaml"
    if not path.is_file():
        known = ", ".join(p.stem for p in sorted(directory.glob("*.yaml"))) or "none"
        raise ConfigurationError(
            f"No assignment '{assignment_id}' in {directory} (known: {known})."
        )
    return load_spec(path)
