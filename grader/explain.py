"""Parameter counts and output sizes explained: each formula with the student's numbers.

``Conv2D: (3·3·3 + 1)·32 = 896``, ``valid, stride 2: ⌊(224 − 3) / 2⌋ + 1 = 111``: for the
layers the course teaches (convolutions, dense, batch normalization, pooling), from what
the static inspection recorded of each layer (``grader.inspection.architecture.Layer``).

A formula always ends in the number the inspection computed: where the two would differ
(a configuration the formula does not cover), no formula is given rather than a wrong one.
The same formulas explain the expected side of a failing check, from the spec's
``ExpectedLayer`` and the input the student's layer receives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from grader.inspection.architecture import Layer
from grader.spec import ExpectedLayer

MUL, MINUS = "·", "−"  # middle dot, minus sign

CONV = frozenset({"Conv1D", "Conv2D", "Conv3D"})
SEPARABLE = frozenset({"SeparableConv1D", "SeparableConv2D"})
DEPTHWISE = frozenset({"DepthwiseConv1D", "DepthwiseConv2D"})
POOLING = frozenset(f"{kind}Pooling{rank}D" for kind in ("Max", "Average") for rank in (1, 2, 3))
GLOBAL_POOLING = frozenset(
    f"Global{kind}Pooling{rank}D" for kind in ("Max", "Average") for rank in (1, 2, 3)
)
WINDOWED = CONV | SEPARABLE | DEPTHWISE | POOLING
EXPLAINED = WINDOWED | GLOBAL_POOLING | {"Dense", "BatchNormalization"}

# What can go wrong reading a configuration the formulas do not expect: no formula then.
_UNEXPECTED = (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError, OverflowError)


@dataclass(frozen=True)
class Formula:
    """A number and how it is computed: ``str()`` reads ``expression = value``."""

    value: int
    expression: str

    def __str__(self) -> str:
        return f"{self.expression} = {self.value:,}"


@dataclass(frozen=True)
class Explanation:
    """A layer's parameter count and output size, each explained where it can be."""

    params: str | None = None  # "(3·3·3 + 1)·32 = 896"
    output: str | None = None  # "valid, stride 1: 224 − 3 + 1 = 222"
    rule: str | None = None  # the formula in words: "(kernel_h·kernel_w·channels_in + 1)·filters"

    def as_dict(self) -> dict[str, str | None]:
        return {"params": self.params, "output": self.output, "rule": self.rule}


# --- the formulas, on plain numbers --------------------------------------------------


def _product(values: Sequence[int | str]) -> str:
    return MUL.join(str(v) for v in values)


def conv_params(
    kernel: Sequence[int], channels_in: int, filters: int, use_bias: bool = True, groups: int = 1
) -> Formula:
    """Conv: one kernel·channels_in weight block per filter, plus one bias per filter."""
    per_group = channels_in if groups == 1 else f"({channels_in} / {groups})"
    weights = _product([*kernel, per_group])
    value = math.prod(kernel) * (channels_in // groups) * filters + (filters if use_bias else 0)
    if use_bias:
        return Formula(value, f"({weights} + 1){MUL}{filters}")
    return Formula(value, f"{weights}{MUL}{filters}")


def separable_params(
    kernel: Sequence[int], channels_in: int, depth_multiplier: int, filters: int,
    use_bias: bool = True,
) -> Formula:  # fmt: skip
    """Depthwise k·k·Cin·dm, then pointwise Cin·dm·filters, then one bias per filter."""
    depthwise = math.prod(kernel) * channels_in * depth_multiplier
    pointwise = channels_in * depth_multiplier * filters
    terms = [
        _product([*kernel, channels_in, depth_multiplier]),
        _product([channels_in, depth_multiplier, filters]),
    ]
    if use_bias:
        terms.append(str(filters))
    return Formula(depthwise + pointwise + (filters if use_bias else 0), " + ".join(terms))


def depthwise_params(
    kernel: Sequence[int], channels_in: int, depth_multiplier: int, use_bias: bool = True
) -> Formula:
    """One k·k kernel per input channel and multiplier, one bias per output channel."""
    out = channels_in * depth_multiplier
    terms = [_product([*kernel, channels_in, depth_multiplier])]
    if use_bias:
        terms.append(_product([channels_in, depth_multiplier]))
    return Formula(math.prod(kernel) * out + (out if use_bias else 0), " + ".join(terms))


def dense_params(
    inputs: int, units: int, use_bias: bool = True, lora_rank: int | None = None
) -> Formula:
    """A weight per input and unit, a bias per unit (and LoRA's r·(inputs + units))."""
    value = inputs * units + (units if use_bias else 0)
    text = f"({inputs} + 1){MUL}{units}" if use_bias else f"{inputs}{MUL}{units}"
    if lora_rank:
        value += lora_rank * (inputs + units)
        text += f" + {lora_rank}{MUL}({inputs} + {units})"
    return Formula(value, text)


def batchnorm_params(channels: int, center: bool = True, scale: bool = True) -> Formula:
    """γ and β (trainable, when scale and center) and the moving mean and variance."""
    vectors = 2 + int(center) + int(scale)
    return Formula(vectors * channels, f"{vectors}{MUL}{channels}")


def batchnorm_trainable(channels: int, center: bool = True, scale: bool = True) -> int:
    return (int(center) + int(scale)) * channels


def axis_size(
    n: int, kernel: int, stride: int = 1, dilation: int = 1, padding: str = "valid"
) -> Formula:
    """Output length along one axis of a convolution or pooling window, explained."""
    setting = f"{padding}, stride {stride}" + (f", dilation {dilation}" if dilation != 1 else "")
    if padding == "same":
        return Formula(-(-n // stride), f"{setting}: ⌈{n} / {stride}⌉")
    if padding != "valid":
        raise ValueError(f"no formula for padding {padding!r}")
    span = (kernel - 1) * dilation + 1
    value = (n - span) // stride + 1
    if stride == 1:
        if dilation == 1:
            return Formula(value, f"{setting}: {n} {MINUS} {kernel} + 1")
        return Formula(value, f"{setting}: {n} {MINUS} ({kernel} {MINUS} 1){MUL}{dilation}")
    if dilation == 1:
        return Formula(value, f"{setting}: ⌊({n} {MINUS} {kernel}) / {stride}⌋ + 1")
    inner = f"{n} {MINUS} ({kernel} {MINUS} 1){MUL}{dilation} {MINUS} 1"
    return Formula(value, f"{setting}: ⌊({inner}) / {stride}⌋ + 1")


def _rule(kind: str, rank: int, use_bias: bool) -> str | None:
    kernel = {1: "kernel", 2: "kernel_h·kernel_w", 3: "kernel_d·kernel_h·kernel_w"}[rank]
    if kind in CONV:
        return (
            f"({kernel}·channels_in + 1)·filters" if use_bias else f"{kernel}·channels_in·filters"
        )
    if kind in SEPARABLE:
        bias = " + filters" if use_bias else ""
        return f"{kernel}·channels_in·depth_multiplier + channels_in·depth_multiplier·filters{bias}"
    if kind in DEPTHWISE:
        bias = " + channels_in·depth_multiplier" if use_bias else ""
        return f"{kernel}·channels_in·depth_multiplier{bias}"
    return None


# --- a student's layer ---------------------------------------------------------------


def _ints(value: Any, rank: int) -> list[int]:
    """Keras' ``3`` or ``[3, 3]`` as one int per axis."""
    items = list(value) if isinstance(value, list | tuple) else [value] * rank
    if len(items) != rank or not all(type(v) is int and v > 0 for v in items):
        raise ValueError("not one positive int per axis")
    return items


def _flag(options: dict[str, Any], key: str) -> bool:
    value = options.get(key, True)
    if not isinstance(value, bool):
        raise ValueError(f"{key} is not a boolean")
    return value


def _rank(layer: Layer) -> int:
    return len(layer.output_shape) - 2


def _channels_in(layer: Layer) -> int:
    shape = layer.input_shape
    if not shape or type(shape[-1]) is not int:
        raise ValueError("the input channels are unknown")
    return shape[-1]


def params_formula(layer: Layer) -> Formula | None:
    """How the layer's parameter count is computed, ending in ``layer.params``; None
    where the layer is not one the course explains or the formula would differ."""
    try:
        formula = _params_formula(layer)
    except _UNEXPECTED:
        return None
    return formula if formula is not None and formula.value == layer.params else None


def _params_formula(layer: Layer) -> Formula | None:
    kind, attrs, options = layer.type, layer.attributes, layer.options
    if kind in POOLING | GLOBAL_POOLING:
        return Formula(0, "no weights")
    if kind == "Dense":
        lora = options.get("lora_rank")
        return dense_params(_channels_in(layer), attrs["units"], _flag(options, "use_bias"),
                            lora if type(lora) is int else None)  # fmt: skip
    if kind == "BatchNormalization":
        return batchnorm_params(_bn_channels(layer), _flag(options, "center"),
                                _flag(options, "scale"))  # fmt: skip
    if kind not in CONV | SEPARABLE | DEPTHWISE:
        return None
    kernel = _ints(attrs["kernel_size"], _rank(layer))
    cin, bias = _channels_in(layer), _flag(options, "use_bias")
    if kind in CONV:
        groups = options.get("groups", 1)
        return conv_params(kernel, cin, attrs["filters"], bias, groups if groups else 1)
    dm = attrs.get("depth_multiplier", 1)
    if kind in SEPARABLE:
        return separable_params(kernel, cin, dm, attrs["filters"], bias)
    return depthwise_params(kernel, cin, dm, bias)


def _bn_channels(layer: Layer) -> int:
    axis = layer.options.get("axis", -1)
    axes = axis if isinstance(axis, list) else [axis]
    if len(axes) != 1 or type(axes[0]) is not int:
        raise ValueError("not one axis")
    size = layer.output_shape[axes[0]]
    if type(size) is not int:
        raise ValueError("unknown size")
    return size


def output_formula(layer: Layer) -> str | None:
    """How the layer's output size follows from its input, per spatial axis; None where
    the layer keeps its shape, is not explained, or the formula would differ."""
    try:
        return _output_formula(layer)
    except _UNEXPECTED:
        return None


def _output_formula(layer: Layer) -> str | None:
    kind, attrs = layer.type, layer.attributes
    shape_in, shape_out = layer.input_shape, layer.output_shape
    if shape_in is None:
        return None
    if kind in GLOBAL_POOLING:
        spatial = "×".join(str(n) for n in shape_in[1:])
        if len(shape_out) == 2:
            return f"{spatial} → {shape_out[-1]:,} (one value per channel)"
        return f"{spatial} → {'×'.join(str(n) for n in shape_out[1:])}"
    if kind not in WINDOWED:
        return None
    rank = _rank(layer)
    if len(shape_in) != rank + 2:
        return None
    if kind in POOLING:
        kernel = _ints(attrs["pool_size"], rank)
        dilation = [1] * rank
    else:
        kernel = _ints(attrs["kernel_size"], rank)
        dilation = _ints(layer.options.get("dilation_rate", 1), rank)
    strides = _ints(attrs.get("strides") or (kernel if kind in POOLING else 1), rank)
    padding = attrs.get("padding", "valid")
    parts = []
    for i in range(rank):
        n = shape_in[1 + i]
        if n is None:
            return None
        formula = axis_size(n, kernel[i], strides[i], dilation[i], padding)
        if formula.value != shape_out[1 + i]:
            return None
        parts.append(str(formula))
    if len(set(parts)) == 1:
        return parts[0]
    names = {1: ["length"], 2: ["height", "width"], 3: ["depth", "height", "width"]}[rank]
    return "; ".join(f"{name}: {part}" for name, part in zip(names, parts, strict=True))


def explain(layer: Layer) -> Explanation | None:
    """The layer's formulas, or None where there is nothing to explain."""
    if layer.type not in EXPLAINED:
        return None
    formula = params_formula(layer)
    params = str(formula) if formula is not None else None
    if formula is not None and layer.type == "BatchNormalization":
        params += _bn_trainable_note(layer)
    rule = None
    if formula is not None and layer.type in CONV | SEPARABLE | DEPTHWISE:
        rule = _rule(layer.type, _rank(layer), layer.options.get("use_bias", True) is not False)
    output = output_formula(layer)
    if params is None and output is None:
        return None
    return Explanation(params=params, output=output, rule=rule)


def _bn_trainable_note(layer: Layer) -> str:
    trainable = batchnorm_trainable(
        _bn_channels(layer), _flag(layer.options, "center"), _flag(layer.options, "scale")
    )
    if layer.trainable_params == trainable:
        return f" ({trainable:,} trainable)"
    if layer.trainable_params == 0:
        return " (0 trainable: the layer is frozen)"
    return ""


# --- the expected side of a check ------------------------------------------------------


def expected_params(exp: ExpectedLayer, channels_in: int) -> Formula | None:
    """The count the spec's layer would have on ``channels_in`` input channels, from the
    fields the spec sets (a bias assumed, as Keras does by default); None where those do
    not say enough."""
    kind = exp.type
    try:
        if kind in POOLING | GLOBAL_POOLING:
            return Formula(0, "no weights")
        if kind == "Dense":
            return dense_params(channels_in, exp.units) if exp.units else None
        if kind == "BatchNormalization":
            return batchnorm_params(channels_in)
        if exp.kernel_size is None or kind not in CONV | SEPARABLE | DEPTHWISE:
            return None
        if kind in DEPTHWISE:
            return depthwise_params(exp.kernel_size, channels_in, exp.depth_multiplier or 1)
        if exp.filters is None:
            return None
        if kind in CONV:
            return conv_params(exp.kernel_size, channels_in, exp.filters)
        return separable_params(exp.kernel_size, channels_in, exp.depth_multiplier or 1,
                                exp.filters)  # fmt: skip
    except _UNEXPECTED:
        return None


def expected_channels_in(exp: ExpectedLayer, params: int) -> int | None:
    """The number of input channels for which the spec's layer has ``params`` parameters
    (every count explained is affine in it), or None."""
    zero, one = expected_params(exp, 0), expected_params(exp, 1)
    if zero is None or one is None or one.value == zero.value:
        return None
    channels, rest = divmod(params - zero.value, one.value - zero.value)
    return channels if rest == 0 and channels > 0 else None


def expected_output(exp: ExpectedLayer, layer: Layer) -> str | None:
    """The output size the spec's layer would give on the student's layer's input, from
    the window, stride and padding the spec sets (the student's where it sets none); None
    where it cannot be told or does not give the spec's own output shape."""
    if exp.output_shape is None or layer.input_shape is None or exp.type not in WINDOWED:
        return None
    rank = len(exp.output_shape) - 2
    attrs = layer.attributes
    try:
        if exp.type in POOLING:
            if layer.type not in POOLING:
                return None
            kernel = _ints(attrs["pool_size"], rank)
        else:
            kernel = _ints(exp.kernel_size or attrs["kernel_size"], rank)
        strides = _ints(
            exp.strides or attrs.get("strides") or (kernel if exp.type in POOLING else 1), rank
        )
        padding = exp.padding or attrs.get("padding", "valid")
        dilation = [1] * rank
        if layer.type in CONV | SEPARABLE | DEPTHWISE and exp.type not in POOLING:
            dilation = _ints(layer.options.get("dilation_rate", 1), rank)
        parts = []
        for i in range(rank):
            n, want = layer.input_shape[1 + i], exp.output_shape[1 + i]
            if n is None:
                return None
            formula = axis_size(n, kernel[i], strides[i], dilation[i], padding)
            if want is not None and formula.value != want:
                return None
            parts.append(str(formula))
    except _UNEXPECTED:
        return None
    if len(set(parts)) == 1:
        return parts[0]
    return "; ".join(parts)
