"""Architecture checks: the shape and layers the assignment asks for against the student's.

The layer list is aligned rather than compared by position, so one extra or missing layer
reads as one clear message instead of a cascade of mismatches after it.
"""

from __future__ import annotations

import difflib
from typing import Any

from grader import explain
from grader.checks.base import CheckType, fmt_shape, register
from grader.inspection.architecture import Architecture, Layer
from grader.report import Check, Metrics
from grader.spec import AssignmentSpec, ExpectedLayer

# Fields of ExpectedLayer compared against the layer's attributes, in display order.
_COMPARED = (
    "filters",
    "units",
    "kernel_size",
    "strides",
    "padding",
    "depth_multiplier",
    "activation",
)
# Longest message a check carries; an explanation that would not fit is left out.
MAX_MESSAGE = 400


def _shape_matches(expected: list[int | None], actual: tuple[int | None, ...] | None) -> bool:
    if actual is None or len(expected) != len(actual):
        return False
    return all(e is None or e == a for e, a in zip(expected, actual, strict=True))


@register
class OutputShape(CheckType):
    group = "architecture"
    field = "output_shape"

    def describe(self, spec: AssignmentSpec) -> str:
        return f"output shape {fmt_shape(spec.output_shape)}"

    def run(self, spec: AssignmentSpec, arch: Architecture, metrics: Metrics | None) -> list[Check]:
        assert spec.output_shape is not None
        ok = _shape_matches(spec.output_shape, arch.output_shape)
        return [
            Check(
                name="Output shape",
                group="architecture",
                passed=ok,
                expected=fmt_shape(spec.output_shape),
                actual=fmt_shape(arch.output_shape),
                message="" if ok else "The model's output does not have the expected shape.",
            )
        ]


@register
class LayerList(CheckType):
    """The exact layer sequence; a layer's ``params`` is checked too, in group "parameters"."""

    group = "architecture"
    field = "layers"

    def applies(self, spec: AssignmentSpec) -> bool:
        return bool(spec.layers)

    def groups(self, spec: AssignmentSpec) -> tuple[str, ...]:
        if not spec.layers:
            return ()
        has_params = any(layer.params is not None for layer in spec.layers)
        return ("architecture", "parameters") if has_params else ("architecture",)

    def describe(self, spec: AssignmentSpec) -> str:
        return "layers " + ", ".join(layer.type for layer in spec.layers or [])

    def run(self, spec: AssignmentSpec, arch: Architecture, metrics: Metrics | None) -> list[Check]:
        return _layer_list_checks(spec.layers or [], arch.layers)


@register
class LayerCounts(CheckType):
    group = "architecture"
    field = "layer_counts"

    def applies(self, spec: AssignmentSpec) -> bool:
        return bool(spec.layer_counts)

    def describe(self, spec: AssignmentSpec) -> str:
        return ", ".join(
            f"{_count_words(rule.min, rule.max)} {rule.type}" for rule in spec.layer_counts
        )

    def run(self, spec: AssignmentSpec, arch: Architecture, metrics: Metrics | None) -> list[Check]:
        checks = []
        for rule in spec.layer_counts:
            count = sum(1 for layer in arch.layers if layer.type == rule.type)
            ok = (rule.min is None or count >= rule.min) and (rule.max is None or count <= rule.max)
            wanted = _count_words(rule.min, rule.max)
            checks.append(
                Check(
                    name=f"Number of {rule.type} layers",
                    group="architecture",
                    passed=ok,
                    expected=wanted,
                    actual=count,
                    message=""
                    if ok
                    else f"Expected {wanted} {rule.type} layer(s), yours has {count}.",
                )
            )
        return checks


def _count_words(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"{low}" if low == high else f"{low} to {high}"
    return f"at least {low}" if low is not None else f"at most {high}"


def _layer_list_checks(expected: list[ExpectedLayer], layers: list[Layer]) -> list[Check]:
    """Align the two layer sequences by type, then compare aligned layers field by field."""
    matcher = difflib.SequenceMatcher(
        a=[e.type for e in expected], b=[layer.type for layer in layers], autojunk=False
    )
    checks: list[Check] = []
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            for i, j in zip(range(a0, a1), range(b0, b1), strict=True):
                checks.extend(_compare_layer(i, expected[i], layers[j]))
            continue
        pairs = list(zip(range(a0, a1), range(b0, b1), strict=False))
        for i, j in pairs:  # replaced: same position, wrong type
            checks.append(_type_mismatch(i, expected[i], layers[j]))
            checks.extend(_param_checks(i, expected[i], layers[j]))
        for i in range(a0 + len(pairs), a1):
            checks.append(
                Check(
                    name=f"Layer {i + 1}: {expected[i].type}",
                    group="architecture",
                    passed=False,
                    expected=_expected_attrs(expected[i]),
                    actual=None,
                    message=f"Missing layer: expected a {expected[i].type} here, yours has none.",
                )
            )
            checks.extend(_param_checks(i, expected[i], None))
        for j in range(b0 + len(pairs), b1):
            checks.append(
                Check(
                    name=f"Extra layer: {layers[j].type}",
                    group="architecture",
                    passed=False,
                    expected=None,
                    actual=_actual_attrs(layers[j], _COMPARED),
                    message=(
                        f"Your layer '{layers[j].name}' ({layers[j].type}) is not part of the "
                        "expected architecture."
                    ),
                )
            )
    return checks


def _expected_attrs(exp: ExpectedLayer) -> dict[str, Any]:
    fields = exp.model_dump(exclude_none=True, exclude={"params"})
    if "output_shape" in fields:
        fields["output_shape"] = fmt_shape(fields["output_shape"])
    return fields


def _actual_attrs(layer: Layer, keys: tuple[str, ...] | list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {"type": layer.type}
    for key in keys:
        if key == "output_shape":
            values[key] = fmt_shape(layer.output_shape)
        elif key in layer.attributes:
            values[key] = layer.attributes[key]
    return values


def _type_mismatch(index: int, exp: ExpectedLayer, layer: Layer) -> Check:
    return Check(
        name=f"Layer {index + 1}: {exp.type}",
        group="architecture",
        passed=False,
        expected=_expected_attrs(exp),
        actual=_actual_attrs(layer, list(_expected_attrs(exp))),
        message=f"Layer type: expected {exp.type}, yours {layer.type} ('{layer.name}').",
    )


def _compare_layer(index: int, exp: ExpectedLayer, layer: Layer) -> list[Check]:
    expected = _expected_attrs(exp)
    actual = _actual_attrs(layer, list(expected))
    problems, explained = [], []
    for key in (*_COMPARED, "output_shape"):
        want = getattr(exp, key)
        if want is None:
            continue
        have = layer.output_shape if key == "output_shape" else layer.attributes.get(key)
        same = _shape_matches(want, have) if key == "output_shape" else want == have
        if not same:
            shown = fmt_shape(have) if key == "output_shape" else repr(have)
            wanted = fmt_shape(want) if key == "output_shape" else repr(want)
            problems.append(f"{key.replace('_', ' ')}: expected {wanted}, yours {shown}")
            explained.append(
                problems[-1] + (_output_sides(exp, layer) if key == "output_shape" else "")
            )
    checks = [
        Check(
            name=f"Layer {index + 1}: {exp.type}",
            group="architecture",
            passed=not problems,
            expected=expected,
            actual=actual,
            message=_fit("; ".join(explained), "; ".join(problems)),
        )
    ]
    checks.extend(_param_checks(index, exp, layer))
    return checks


def _param_checks(index: int, exp: ExpectedLayer, layer: Layer | None) -> list[Check]:
    """The per-layer parameter check, also for a wrong or missing layer, so the
    number of checks (and each one's share of the points) never depends on the answer."""
    if exp.params is None:
        return []
    actual = layer.params if layer is not None else None
    ok = actual == exp.params
    yours = f"{actual:,}" if actual is not None else "no such layer"
    message = ""
    if not ok:
        message = f"Expected {exp.params:,} parameters, yours {yours}."
        if layer is not None:
            message = _fit(_params_sides(exp, layer), message)
    return [
        Check(
            name=f"Parameters of layer {index + 1} ({exp.type})",
            group="parameters",
            passed=ok,
            expected=exp.params,
            actual=actual,
            message=message,
        )
    ]


def _fit(message: str | None, fallback: str) -> str:
    return message if message and len(message) <= MAX_MESSAGE else fallback


def _params_sides(exp: ExpectedLayer, layer: Layer) -> str | None:
    """Both counts explained: "Expected 155 = 3·3·3·1 + 3·1·32 + 32 (SeparableConv2D);
    yours 896 = (3·3·3 + 1)·32: you used Conv2D." The expected side is the spec's layer
    on the input channels of the student's layer (or on those its count implies)."""
    assert exp.params is not None
    mine = explain.params_formula(layer)
    channels = layer.input_shape[-1] if layer.input_shape else None
    wanted = explain.expected_params(exp, channels) if isinstance(channels, int) else None
    implied = None  # the input channels the spec's count implies, where they differ
    if wanted is None or wanted.value != exp.params:
        implied = explain.expected_channels_in(exp, exp.params)
        wanted = explain.expected_params(exp, implied) if implied is not None else None
    if mine is None and wanted is None:
        return None
    kind = f" ({exp.type})" if exp.type != layer.type else ""
    expected = f"{exp.params:,} = {wanted.expression}" if wanted else f"{exp.params:,}"
    yours = f"{layer.params:,} = {mine.expression}" if mine else f"{layer.params:,}"
    text = f"Expected {expected}{kind}; yours {yours}"
    why = _why(exp, layer, channels if isinstance(channels, int) else None, implied)
    return f"{text}: {why}." if why else f"{text}."


def _why(exp: ExpectedLayer, layer: Layer, channels: int | None, implied: int | None) -> str:
    """The first setting that makes the counts differ, in words."""
    if exp.type != layer.type:
        return f"you used {layer.type}"
    differences = []
    for key in ("filters", "units", "kernel_size", "depth_multiplier"):
        want, have = getattr(exp, key), layer.attributes.get(key)
        if want is not None and have is not None and want != have:
            differences.append(f"{key.replace('_', ' ')} {_plain(have)}, not {_plain(want)}")
    if differences:
        return "your " + ", ".join(differences)
    if layer.options.get("use_bias") is False:
        return "your layer has no bias (use_bias=False)"
    if channels is not None and implied is not None and channels != implied:
        return f"your layer gets {channels} input channels, not {implied}"
    return ""


def _plain(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "×".join(str(v) for v in value)
    return str(value)


def _output_sides(exp: ExpectedLayer, layer: Layer) -> str:
    """The output sizes explained where they differ and can be, to append to the message:
    ' (expected valid, stride 1: 224 − 3 + 1 = 222; yours same, ...)'; else empty."""
    want = exp.output_shape or []
    have = layer.output_shape
    if len(want) == len(have) and all(
        w is None or w == h for w, h in zip(want[1:-1], have[1:-1], strict=True)
    ):
        return ""  # the sizes agree: only the channels differ
    mine = explain.output_formula(layer)
    wanted = explain.expected_output(exp, layer)
    sides = [f"expected {wanted}" if wanted else "", f"yours {mine}" if mine else ""]
    shown = "; ".join(side for side in sides if side)
    return f" ({shown})" if shown else ""
