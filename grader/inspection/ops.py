"""Shape inference for the Keras operations that functional graphs serialize.

Writing ``x + y``, ``x * 0.5``, ``x[:, 1:]`` or ``keras.ops.mean(x, axis=1)``
between layers stores an operation node (``keras.src.ops.numpy.Add``, ...)
instead of a layer. These hold no weights and run no user code; the vetted ones
below are pure tensor arithmetic with a shape rule each.
"""

from __future__ import annotations

import math
from typing import Any

from grader.errors import NotGradable
from grader.inspection.layers_core import broadcast, concatenate
from grader.inspection.registry import Call, Out, register_op
from grader.inspection.values import (
    MAX_INT,
    MAX_RANK,
    Config,
    Shape,
    as_int,
    normalise_axis,
    unwrap,
)

NUMPY, NN, CORE, MATH = "keras.src.ops.numpy", "keras.src.ops.nn", "keras.src.ops.core", \
    "keras.src.ops.math"  # fmt: skip

ELEMENTWISE_BINARY = (
    "Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum", "Power",
    "Mod", "FloorDivide", "Fmax", "Fmin", "Hypot", "Arctan2", "Logaddexp",
    # comparisons and logic: what Keras writes to compute masks (Masking, mask_zero=True)
    "Equal", "NotEqual", "Greater", "GreaterEqual", "Less", "LessEqual", "LogicalAnd",
    "LogicalOr", "LogicalXor",
)  # fmt: skip

ELEMENTWISE_UNARY = (
    "Absolute", "Negative", "Sqrt", "Square", "Exp", "Exp2", "Expm1", "Log", "Log1p",
    "Log2", "Log10", "Tanh", "Sinh", "Cosh", "Sin", "Cos", "Tan", "Sign", "Floor", "Ceil",
    "Round", "Trunc", "Reciprocal", "Clip", "Copy", "Cbrt", "Arctan", "Arcsinh", "NanToNum",
    "LogicalNot",
)  # fmt: skip

NN_UNARY = (
    "Relu", "Relu6", "Sigmoid", "Silu", "Gelu", "Softmax", "LogSoftmax", "LeakyRelu", "Elu",
    "Selu", "Celu", "Softplus", "Softsign", "HardSigmoid", "HardSilu", "HardTanh", "LogSigmoid",
    "SparsePlus", "Squareplus", "TanhShrink", "SoftShrink", "HardShrink",
)  # fmt: skip


def _across_batch(what: str) -> NotGradable:
    """The grader counts cost per image, along axis 0: an operation that mixes images
    (reshaping, reducing or joining along the batch axis) has no per-image meaning."""
    return NotGradable(
        f"The operation {what} works across the batch axis (axis 0), mixing images; "
        "the grader evaluates each image on its own."
    )


def _tensors(call: Call, name: str) -> list[Shape]:
    if not call.inputs:
        raise NotGradable(f"The operation {name} is applied to no tensor.")
    return call.inputs


def _numbers_ok(call: Call, name: str) -> None:
    """Non-tensor arguments of arithmetic must be plain numbers (``x * 0.5``)."""
    for arg in call.args:
        if arg is None or isinstance(arg, bool):
            continue
        if not isinstance(arg, int | float):
            raise NotGradable(f"The operation {name} has an argument that is not a number.")


@register_op(NUMPY, *ELEMENTWISE_BINARY)
def _binary(cfg: Config, call: Call) -> Out:
    _numbers_ok(call, cfg.kind)
    return Out([broadcast(_tensors(call, cfg.kind), f"The operation {cfg.kind}")])


@register_op(NUMPY, *ELEMENTWISE_UNARY)
@register_op(NN, *NN_UNARY)
@register_op(CORE, "Cast", "StopGradient")
@register_op(MATH, "Rsqrt", "Erf", "Erfc")
def _unary(cfg: Config, call: Call) -> Out:
    return Out([_tensors(call, cfg.kind)[0]])


@register_op(NUMPY, "Mean", "Sum", "Max", "Min", "Prod", "Std", "Var", "Amax", "Amin", "Any",
             "All")  # fmt: skip
def _reduce(cfg: Config, call: Call) -> Out:
    (shape,) = _tensors(call, cfg.kind)[:1]
    axis = cfg.get("axis")
    axes = set(range(len(shape))) if axis is None else set(cfg.axes("axis", None, len(shape)))
    if 0 in axes:
        raise _across_batch(cfg.kind)
    keep = cfg.flag("keepdims", False)
    out = [1 if i in axes else d for i, d in enumerate(shape)] if keep else \
        [d for i, d in enumerate(shape) if i not in axes]  # fmt: skip
    return Out([tuple(out)])


@register_op(NUMPY, "Reshape")
def _reshape(cfg: Config, call: Call) -> Out:
    (shape,) = _tensors(call, cfg.kind)[:1]
    raw = cfg.get("newshape")
    items = raw if isinstance(raw, list) else [raw]
    if len(items) > MAX_RANK:
        raise cfg.bad("newshape", f"has more than {MAX_RANK} dimensions")
    target = [as_int(v, low=-1, error=lambda why: cfg.bad("newshape", why)) for v in items]
    if not target or 0 in target:
        raise cfg.bad("newshape", "is empty or contains 0")
    if target[0] != -1 or -1 in target[1:]:  # the batch stays first, images stay apart
        raise _across_batch("reshape")
    per_image = shape[1:]
    if None not in per_image and math.prod(target[1:]) != math.prod(per_image):  # type: ignore[arg-type]
        raise _across_batch("reshape")
    return Out([(shape[0], *target[1:])])


@register_op(NUMPY, "Transpose")
def _transpose(cfg: Config, call: Call) -> Out:
    (shape,) = _tensors(call, cfg.kind)[:1]
    axes = cfg.get("axes")
    order = list(reversed(range(len(shape)))) if axes is None else \
        cfg.axes("axes", None, len(shape))  # fmt: skip
    if sorted(order) != list(range(len(shape))):
        raise cfg.bad("axes", "is not a permutation of the tensor's axes")
    if order[0] != 0:
        raise _across_batch("transpose")
    return Out([tuple(shape[i] for i in order)])


@register_op(NUMPY, "ExpandDims")
def _expand_dims(cfg: Config, call: Call) -> Out:
    (shape,) = _tensors(call, cfg.kind)[:1]
    raw = cfg.get("axis")
    count = len(raw) if isinstance(raw, list) else 1
    axes = sorted(cfg.axes("axis", None, len(shape) + count))  # as NumPy: against the new rank
    if 0 in axes:
        raise _across_batch("expand_dims")
    out = list(shape)
    for axis in axes:
        out.insert(axis, 1)
    return Out([tuple(out)])


@register_op(NUMPY, "Squeeze")
def _squeeze(cfg: Config, call: Call) -> Out:
    (shape,) = _tensors(call, cfg.kind)[:1]
    if cfg.get("axis") is None:
        return Out([tuple(d for d in shape if d != 1)])
    axes = set(cfg.axes("axis", None, len(shape)))
    if 0 in axes:
        raise _across_batch("squeeze")
    if any(shape[a] not in (1, None) for a in axes):
        raise cfg.bad("axis", "names an axis whose size is not 1")
    return Out([tuple(d for i, d in enumerate(shape) if i not in axes)])


@register_op(NUMPY, "Concatenate")
def _concatenate(cfg: Config, call: Call) -> Out:
    shapes = _tensors(call, cfg.kind)
    if normalise_axis(cfg.get("axis", 0), len(shapes[0])) == 0:
        raise _across_batch("concatenate")
    return Out([concatenate(shapes, cfg.get("axis", 0), "A concatenation")])


@register_op(NUMPY, "Stack")
def _stack(cfg: Config, call: Call) -> Out:
    shapes = _tensors(call, cfg.kind)
    first = broadcast(shapes, "A stack operation")
    if any(len(s) != len(first) for s in shapes):
        raise NotGradable("A stack operation joins tensors of different ranks.")
    axis = normalise_axis(cfg.get("axis", 0), len(first) + 1)
    if axis == 0:
        raise _across_batch("stack")
    out = list(first)
    out.insert(axis, len(shapes))
    return Out([tuple(out)])


@register_op(NUMPY, "Matmul")
def _matmul(cfg: Config, call: Call) -> Out:
    shapes = _tensors(call, cfg.kind)
    if len(shapes) != 2 or min(len(s) for s in shapes) < 3:  # batch, then matrices
        raise _across_batch("matmul on a matrix without its own batch axis")
    a, b = shapes
    if a[-1] is not None and b[-2] is not None and a[-1] != b[-2]:
        raise NotGradable("A matrix product multiplies matrices of incompatible sizes.")
    batch = broadcast([a[:-2], b[:-2]], "A matrix product") if len(a) > 2 or len(b) > 2 else ()
    return Out([(*batch, a[-2], b[-1])])


@register_op(NUMPY, "GetItem")
def _get_item(cfg: Config, call: Call) -> Out:
    """NumPy basic indexing: ints, slices, ``None`` (new axis) and one ellipsis."""
    if len(call.inputs) != 1 or len(call.args) != 2:
        raise NotGradable("An indexing operation (x[...]) is malformed.")
    shape = call.inputs[0]
    key = unwrap(call.args[1])
    items = key if isinstance(key, list) else [key]
    kinds = [_index_kind(item) for item in items]
    if kinds and not _whole(items[0], kinds[0]):  # x[:, ...] or x[..., ...] keep every image
        raise _across_batch("x[...] on the batch axis")
    if kinds.count("ellipsis") > 1:
        raise NotGradable("An indexing operation uses more than one ellipsis.")
    consumed = sum(k in ("int", "slice") for k in kinds)
    if consumed > len(shape):
        raise NotGradable("An indexing operation (x[...]) uses more indices than the tensor has.")
    out: list[int | None] = []
    dim = 0
    for item, kind in zip(items, kinds, strict=True):
        if kind == "ellipsis":
            fill = len(shape) - consumed
            out.extend(shape[dim : dim + fill])
            dim += fill
        elif kind == "newaxis":
            out.append(1)
        elif kind == "int":
            size = shape[dim]
            index = as_int(item, low=-MAX_INT)
            if size is not None and not -size <= index < size:
                raise NotGradable("An indexing operation (x[...]) is out of range.")
            dim += 1
        else:
            out.append(_slice_length(shape[dim], item["config"]))
            dim += 1
    out.extend(shape[dim:])
    return Out([tuple(out)])


def _index_kind(item: Any) -> str:
    if item is None:
        return "newaxis"
    if isinstance(item, int) and not isinstance(item, bool):
        return "int"
    if isinstance(item, dict) and item.get("class_name") == "__ellipsis__":
        return "ellipsis"
    if isinstance(item, dict) and item.get("class_name") == "__slice__" and \
            isinstance(item.get("config"), dict):  # fmt: skip
        return "slice"
    raise NotGradable("An indexing operation (x[...]) uses an index that is not supported.")


def _whole(item: Any, kind: str) -> bool:
    """Whether an index takes the whole axis: ``:`` or ``...``."""
    if kind == "ellipsis":
        return True
    return kind == "slice" and all(item["config"].get(k) is None for k in ("start", "stop", "step"))


def _slice_length(size: int | None, spec: dict) -> int | None:
    bounds = []
    for key in ("start", "stop", "step"):
        value = spec.get(key)
        bounds.append(None if value is None else as_int(value, low=-MAX_INT))
    if bounds[2] == 0:
        raise NotGradable("An indexing operation (x[...]) has a slice step of 0.")
    if size is None:
        return None
    return len(range(*slice(*bounds).indices(size)))
