"""The catalogue of Keras layers and operations the grader understands, and those it refuses.

Every class in ``keras.layers`` is either here with a shape function, which
infers the output shape and weight count from the configuration alone, or in
``REFUSED`` with the reason a student reads. Functional graphs also serialize
Keras *operations* (``x + y`` is ``keras.src.ops.numpy.Add``); the vetted ones
are in ``OPS``. Families of layers register themselves from their own modules
(``layers_*.py``, ``ops.py``), so this module stays the index.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from grader.errors import NotGradable
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

# Layers defined inside keras.applications (Keras' own code, not the student's): accepted
# from that module only.
APPLICATION_LAYERS = frozenset(
    {
        ("keras.src.applications.convnext", "LayerScale"),
        ("keras.src.applications.inception_resnet_v2", "CustomScaleLayer"),
    }
)

# Layers that stay refused, with the reason shown to the student.
_CODE = "it runs arbitrary Python code, which the grader never executes"
REFUSED: dict[str, str] = {
    "Lambda": _CODE,
    "JaxLayer": "it wraps a JAX function, i.e. " + _CODE,
    "FlaxLayer": "it wraps a Flax module, i.e. " + _CODE,
    "TorchModuleWrapper": "it unpickles a PyTorch module, i.e. " + _CODE,
    "TFSMLayer": "it loads a TensorFlow SavedModel from a folder on disk",
    "StringLookup": "its vocabulary can be read from a file, and it works on text, not images",
    "IntegerLookup": "its vocabulary can be read from a file, and it works on categories",
    "TextVectorization": "its vocabulary can be read from a file, and it works on text",
    "Hashing": "it hashes strings and categories; it has no meaning on image tensors",
    "HashedCrossing": "it crosses categorical features; it has no meaning on image tensors",
    "CategoryEncoding": "it encodes integer categories; it has no meaning on image tensors",
    "MelSpectrogram": "it turns audio waveforms into spectrograms, not part of an image model",
    "STFTSpectrogram": "it turns audio waveforms into spectrograms, not part of an image model",
    "TFOpLambda": "tf.keras writes it for a TensorFlow function called between layers (x + y, "
    "tf.concat, ...), which it runs by name. Use keras.layers.Add, Multiply, Concatenate, ... "
    "instead, or save the model from Keras 3, which stores such steps as vetted operations",
    "SlicingOpLambda": "tf.keras writes it for slicing a tensor between layers (x[:, 1:]), which "
    "it runs by name. Use keras.layers.Cropping2D or Reshape instead, or save from Keras 3",
    "Layer": "it is the abstract base class of layers and computes nothing",
    "Wrapper": "it is the abstract base class of wrapper layers",
    "InputSpec": "it is not a layer",
    "GRUCell": "a recurrent cell is only accepted inside an RNN layer",
    "LSTMCell": "a recurrent cell is only accepted inside an RNN layer",
    "SimpleRNNCell": "a recurrent cell is only accepted inside an RNN layer",
    "StackedRNNCells": "stacked cells are only accepted inside an RNN layer",
}


# Other names Keras exports for the same class; the layer table shows the class's own name.
ALIASES = {
    **{f"Convolution{r}D": f"Conv{r}D" for r in (1, 2, 3)},
    **{f"Convolution{r}DTranspose": f"Conv{r}DTranspose" for r in (1, 2, 3)},
    **{f"SeparableConvolution{r}D": f"SeparableConv{r}D" for r in (1, 2)},
    **{f"MaxPool{r}D": f"MaxPooling{r}D" for r in (1, 2, 3)},
    **{f"AvgPool{r}D": f"AveragePooling{r}D" for r in (1, 2, 3)},
    **{f"GlobalAvgPool{r}D": f"GlobalAveragePooling{r}D" for r in (1, 2, 3)},
    **{f"GlobalMaxPool{r}D": f"GlobalMaxPooling{r}D" for r in (1, 2, 3)},
    "GroupQueryAttention": "GroupedQueryAttention",
}


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


def refusal(class_name: str, module: str | None = None) -> str:
    """The message for a class that is not accepted, saying why for that class."""
    if class_name in {"Lambda", "__lambda__", "function"}:
        return (
            "The model contains a Lambda layer (or a Python function). Lambda layers run "
            "arbitrary code, so they cannot be graded: use built-in Keras layers only."
        )
    if class_name in REFUSED:
        return f"The model contains a {class_name} layer, which cannot be graded: " + (
            REFUSED[class_name] + "."
        )
    if module and module.startswith("keras.src.ops."):
        return (
            f"The model's graph uses the operation {module.rsplit('.', 1)[-1]}.{class_name}, "
            "which is not on the grader's list of vetted tensor operations. Use a Keras layer "
            "for this step instead."
        )
    return (
        f"The model contains a layer of type '{class_name}', which is not a built-in Keras "
        "layer (custom and registered classes run their own code, so they cannot be graded). "
        "Use built-in Keras layers only."
    )


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


# The family modules register their layers on import.
from grader.inspection import layers_core, layers_sequence, ops  # noqa: E402, F401
