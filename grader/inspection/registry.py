"""What a shape function is written with, and where it is registered.

A shape function takes a layer's (or operation's) configuration and the shapes it
is called on, and returns the output shapes and what the call costs. The family
modules (``layers_core``, ``layers_sequence``, ``ops``) register theirs here;
:mod:`grader.inspection.catalog` is the index that loads them all.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from grader.errors import NotGradable
from grader.inspection.refusals import refusal
from grader.inspection.values import Config, Shape, as_shape, fmt_shape, unwrap


@dataclass
class Call:
    """One call of a layer or op: the shapes of its tensor inputs and its other arguments."""

    inputs: list[Shape]  # tensor arguments in order: positional first, then keyword
    named: dict[str, Shape] = field(default_factory=dict)  # tensor keyword arguments
    args: list[Any] = field(default_factory=list)  # positional arguments, tensors as None

    @property
    def positional(self) -> list[Shape]:
        """Tensor arguments passed by position (``mask=``, ``initial_state=`` left out)."""
        return self.inputs[: len(self.inputs) - len(self.named)]

    def one(self, rank: int | None = None, *, at_least: int | None = None) -> Shape:
        tensors = self.positional
        if len(tensors) != 1:
            raise NotGradable(f"A single-input layer was called on {len(tensors)} tensors.")
        shape = tensors[0]
        if rank is not None and len(shape) != rank:
            raise NotGradable(
                f"A layer expecting a tensor of rank {rank} (e.g. {rank - 2}-D feature maps) "
                f"received one of shape {fmt_shape(shape)}."
            )
        if at_least is not None and len(shape) < at_least:
            raise NotGradable(
                f"A layer expecting a tensor of rank {at_least} or more received "
                f"{fmt_shape(shape)}."
            )
        return shape


@dataclass
class Out:
    """What one call produces, and what it costs."""

    shapes: list[Shape]
    params: int = 0
    non_trainable: int = 0
    constants: int = 0  # numbers held in the configuration itself (Rescaling arrays, ...)
    scratch: int = 0  # per-image elements of internal tensors (attention scores, ...)

    @property
    def shape(self) -> Shape:
        return self.shapes[0]


InferFn = Callable[[Config, Call], Out]

LAYERS: dict[str, InferFn] = {}
OPS: dict[tuple[str, str], InferFn] = {}  # (module, class name) -> shape function


def register(*names: str) -> Callable[[InferFn], InferFn]:
    def add(fn: InferFn) -> InferFn:
        for name in names:
            LAYERS[name] = fn
        return fn

    return add


def register_op(module: str, *names: str) -> Callable[[InferFn], InferFn]:
    def add(fn: InferFn) -> InferFn:
        for name in names:
            OPS[(module, name)] = fn
        return fn

    return add


def infer_layer(obj: Any, call: Call) -> Out:
    """Shape and weights of one serialized layer (used by wrappers for their inner layer)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("class_name"), str):
        raise NotGradable("A wrapped layer in the configuration is malformed.")
    class_name = obj["class_name"]
    fn = LAYERS.get(class_name)
    if fn is None:
        raise NotGradable(refusal(class_name, obj.get("module")))
    cfg = Config(obj.get("config"), class_name)
    check_build_config(obj, call, class_name)  # Keras builds wrapped layers from it too
    return fn(cfg, call)


def check_build_config(layer: dict, call: Call, name: str) -> None:
    """Keras builds a layer from its ``build_config`` before connecting it: the shape
    there decides how many weights are allocated, so it must be the real input's."""
    build = layer.get("build_config")
    if build is None:
        return
    declared = build.get("input_shape") if isinstance(build, dict) else None
    if declared is None:
        return
    declared = unwrap(declared)
    actual = call.positional  # a mask= or initial_state= keyword is not built from
    if len(actual) == 1 and not (isinstance(declared, list) and declared and
                                 isinstance(unwrap(declared[0]), list)):  # fmt: skip
        shapes = [declared]
    elif isinstance(declared, list) and len(declared) == len(actual):
        shapes = declared
    else:
        shapes = None
    ok = shapes is not None and all(
        compatible(as_shape(s, f"The build shape of layer '{name}'"), a)
        for s, a in zip(shapes, actual, strict=True)
    )
    if not ok:
        raise NotGradable(
            f"Layer '{name[:80]}' declares a build shape {str(declared)[:80]} that differs from "
            f"its input {', '.join(fmt_shape(a) for a in actual)}; the file was edited and "
            "cannot be graded."
        )


def compatible(a: Shape, b: Shape) -> bool:
    """Same rank, and equal sizes wherever both are known."""
    return len(a) == len(b) and all(
        x is None or y is None or x == y for x, y in zip(a, b, strict=True)
    )


def elements(shape: Shape) -> int:
    """Elements per image (the batch dimension left out; unknown sizes count as 1)."""
    return math.prod(d or 1 for d in shape[1:])


def positions(shape: Shape) -> int:
    """Positions per image a kernel or query visits: the axes between batch and channels."""
    return math.prod(d or 1 for d in shape[1:-1])
