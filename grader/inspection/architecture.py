"""Static architecture analysis of a serialized Keras model, without Keras.

The configuration of an uploaded model is read as plain data and checked
against an allow-list before anything is deserialised. The same walk infers
every layer's output shape and parameter count, so the trusted side knows the
architecture without believing what the sandbox reports, refuses a model that
declares billions of parameters before any memory is allocated, and answers
architecture questions without importing TensorFlow.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from grader.errors import NotGradable

Shape = tuple[int | None, ...]

# Modules Keras writes for built-in objects. Anything else (``os``, a user
# package) names code Keras would import: refused.
ALLOWED_MODULES = frozenset(
    {
        "keras",
        "keras.layers",
        "keras.models",
        "keras.initializers",
        "keras.regularizers",
        "keras.constraints",
        "keras.src.models.functional",
        "keras.src.models.sequential",
        "keras.src.models.model",
    }
)

# Serialized objects that may appear inside a layer's configuration.
ALLOWED_HELPERS = frozenset(
    {
        "DTypePolicy", "FloatDTypePolicy", "__keras_tensor__", "__tuple__",
        "Zeros", "Ones", "Constant", "GlorotUniform", "GlorotNormal", "HeNormal",
        "HeUniform", "LecunNormal", "LecunUniform", "RandomNormal", "RandomUniform",
        "TruncatedNormal", "VarianceScaling", "Orthogonal", "Identity",
        "L1", "L2", "L1L2", "OrthogonalRegularizer",
        "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm",
    }
)  # fmt: skip

ALLOWED_ACTIVATIONS = frozenset(
    {
        "linear", "relu", "relu6", "sigmoid", "softmax", "softplus", "softsign", "tanh",
        "selu", "elu", "exponential", "gelu", "silu", "swish", "hard_sigmoid",
        "hard_silu", "hard_swish", "leaky_relu", "mish", "log_softmax", "celu",
        "hard_tanh", "log_sigmoid", "sparse_plus", "soft_shrink", "squareplus",
        "tanh_shrink", "sparsemax",
    }
)  # fmt: skip

MODEL_CLASSES = frozenset({"Sequential", "Functional", "Model"})

# Attributes shown in the layer table and compared by the architecture checks.
REPORTED_ATTRIBUTES = (
    "filters", "units", "kernel_size", "strides", "padding",
    "depth_multiplier", "activation", "pool_size", "rate",
)  # fmt: skip


@dataclass
class Layer:
    name: str
    type: str
    path: str
    output_shape: Shape
    params: int
    trainable_params: int
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Architecture:
    model_type: str
    input_shape: Shape
    output_shape: Shape
    layers: list[Layer]

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def trainable_params(self) -> int:
        return sum(layer.trainable_params for layer in self.layers)


@dataclass(frozen=True)
class Limits:
    max_params: int = 50_000_000
    max_layers: int = 2000
    max_depth: int = 20


def analyse(model_config: Any, limits: Limits = Limits()) -> Architecture:
    """Check a serialized model against the allow-list and infer its architecture.

    Raises NotGradable, in words a student understands, for anything that is
    not a plain built-in Keras model or whose structure cannot be followed.
    """
    if isinstance(model_config, dict):
        # Loaded with compile=False, Keras drops the top-level compile_config
        # (optimizer, loss, metrics; often custom) without deserialising it.
        # Nested models' compile configs *are* deserialised, so they are checked.
        model_config = {k: v for k, v in model_config.items() if k != "compile_config"}
    _check_objects(model_config, limits.max_depth * 8)
    if not isinstance(model_config, dict) or model_config.get("class_name") not in MODEL_CLASSES:
        kind = model_config.get("class_name") if isinstance(model_config, dict) else None
        raise NotGradable(
            f"The file holds a {kind or 'non-model object'}, not a Sequential or functional "
            "Keras model."
        )
    walker = _Walker(limits)
    try:
        input_shape, output_shape = walker.model(model_config, None, "", 0)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError, ZeroDivisionError) as exc:
        raise NotGradable(
            f"The model's configuration is malformed and cannot be followed ({type(exc).__name__})."
        ) from None
    arch = Architecture(
        model_type=str(model_config["class_name"]),
        input_shape=input_shape,
        output_shape=output_shape,
        layers=walker.layers,
    )
    if arch.total_params > limits.max_params:
        raise NotGradable(
            f"The model declares {arch.total_params:,} parameters, more than the limit of "
            f"{limits.max_params:,}."
        )
    return arch


# --- allow-list --------------------------------------------------------------


def _iter_objects(node: Any, budget: int) -> Iterator[dict]:
    """Every serialized object (a dict with ``class_name``) at any depth."""
    stack: list[tuple[Any, int]] = [(node, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > budget:
            raise NotGradable("The model's configuration is nested too deeply.")
        if isinstance(item, dict):
            if "class_name" in item:
                yield item
            stack.extend((value, depth + 1) for value in item.values())
        elif isinstance(item, list):
            stack.extend((value, depth + 1) for value in item)


def _check_objects(config: Any, depth_budget: int) -> None:
    for obj in _iter_objects(config, depth_budget):
        class_name = obj.get("class_name")
        if not isinstance(class_name, str):
            raise NotGradable("The model's configuration is malformed (a class name is not text).")
        module = obj.get("module")
        registered = obj.get("registered_name")
        config = obj.get("config")
        activation = config.get("activation") if isinstance(config, dict) else None
        if not all(v is None or isinstance(v, str) for v in (module, registered, activation)):
            raise NotGradable("The model's configuration is malformed (a name is not text).")
        if registered not in (None, class_name):
            raise NotGradable(
                f"'{class_name}' is registered as the custom object '{registered}'. Custom "
                "classes cannot be graded: use built-in Keras layers only."
            )
        if module is not None and module not in ALLOWED_MODULES:
            raise NotGradable(
                f"The layer or object '{class_name}' names the module '{module}', which is not "
                "part of Keras. Only built-in Keras layers are accepted."
            )
        allowed = (
            class_name in LAYERS or class_name in MODEL_CLASSES or class_name in ALLOWED_HELPERS
        )
        if not allowed:
            raise NotGradable(_refusal(class_name))
        if activation is not None and activation not in ALLOWED_ACTIVATIONS:
            raise NotGradable(
                f"The activation {activation!r} is not a built-in Keras activation. "
                "Use a name such as 'relu' or 'softmax'."
            )


def _refusal(class_name: str) -> str:
    if class_name in {"Lambda", "__lambda__", "function"}:
        return (
            "The model contains a Lambda layer (or a Python function). Lambda layers run "
            "arbitrary code, so they cannot be graded: use built-in Keras layers only."
        )
    if class_name == "TFSMLayer":
        return "The model wraps a TensorFlow SavedModel (TFSMLayer), which cannot be graded."
    return (
        f"The model contains a layer of type '{class_name}', which this grader does not accept. "
        "Only plain built-in Keras layers for image models are allowed (no custom, Lambda or "
        "wrapper layers)."
    )


# --- shape and parameter inference -------------------------------------------

InferFn = Callable[[dict, list[Shape]], tuple[Shape, int, int]]
# An inference function returns (output shape, all params, non-trainable params).


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, dict) and value.get("class_name") == "__tuple__":
        value = value["config"]["value"]
    if isinstance(value, int):
        return value, value
    first, second = value
    return int(first), int(second)


def _channels_last(cfg: dict) -> None:
    if cfg.get("data_format", "channels_last") not in (None, "channels_last"):
        raise NotGradable(
            "Only channels_last image layers are supported (data_format='channels_first' found)."
        )


def _spatial(n: int | None, k: int, s: int, d: int, padding: str) -> int | None:
    if n is None:
        return None
    if padding == "same":
        return math.ceil(n / s)
    if padding == "valid":
        size = (n - d * (k - 1) - 1) // s + 1
        if size <= 0:
            raise NotGradable(
                f"A {k}×{k} window with stride {s} does not fit a feature map of size {n}: "
                "the model cannot be built."
            )
        return size
    raise NotGradable(f"Unsupported padding '{padding}'.")


def _one(shapes: list[Shape], rank: int | None = None) -> Shape:
    if len(shapes) != 1:
        raise NotGradable("A single-input layer was connected to several tensors.")
    shape = shapes[0]
    if rank is not None and len(shape) != rank:
        raise NotGradable(
            f"A layer expecting {rank - 1}-D feature maps received a tensor of shape {_fmt(shape)}."
        )
    return shape


def _conv_out(cfg: dict, shape: Shape, channels: int) -> Shape:
    kh, kw = _pair(cfg["kernel_size"])
    sh, sw = _pair(cfg.get("strides", 1))
    dh, dw = _pair(cfg.get("dilation_rate", 1))
    padding = cfg.get("padding", "valid")
    return (
        shape[0],
        _spatial(shape[1], kh, sh, dh, padding),
        _spatial(shape[2], kw, sw, dw, padding),
        channels,
    )


def _need_channels(shape: Shape) -> int:
    channels = shape[-1]
    if channels is None:
        raise NotGradable("The number of input channels of a layer is unknown.")
    return channels


def _conv2d(cfg: dict, shapes: list[Shape]) -> tuple[Shape, int, int]:
    _channels_last(cfg)
    shape = _one(shapes, 4)
    cin, filters, groups = _need_channels(shape), int(cfg["filters"]), int(cfg.get("groups", 1))
    kh, kw = _pair(cfg["kernel_size"])
    params = kh * kw * (cin // groups) * filters + (filters if cfg.get("use_bias", True) else 0)
    return _conv_out(cfg, shape, filters), params, 0


def _separable(cfg: dict, shapes: list[Shape]) -> tuple[Shape, int, int]:
    _channels_last(cfg)
    shape = _one(shapes, 4)
    cin, filters = _need_channels(shape), int(cfg["filters"])
    dm = int(cfg.get("depth_multiplier", 1))
    kh, kw = _pair(cfg["kernel_size"])
    params = kh * kw * cin * dm + cin * dm * filters + (filters if cfg.get("use_bias", True) else 0)
    return _conv_out(cfg, shape, filters), params, 0


def _depthwise(cfg: dict, shapes: list[Shape]) -> tuple[Shape, int, int]:
    _channels_last(cfg)
    shape = _one(shapes, 4)
    cin, dm = _need_channels(shape), int(cfg.get("depth_multiplier", 1))
    kh, kw = _pair(cfg["kernel_size"])
    params = kh * kw * cin * dm + (cin * dm if cfg.get("use_bias", True) else 0)
    return _conv_out(cfg, shape, cin * dm), params, 0


def _dense(cfg: dict, shapes: list[Shape]) -> tuple[Shape, int, int]:
    shape = _one(shapes)
    units = int(cfg["units"])
    params = _need_channels(shape) * units + (units if cfg.get("use_bias", True) else 0)
    return (*shape[:-1], units), params, 0


def _norm_axis_size(cfg: dict, shape: Shape) -> int:
    axis = cfg.get("axis", -1)
    axes = axis if isinstance(axis, list) else [axis]
    size = 1
    for a in axes:
        dim = shape[int(a)]
        if dim is None:
            raise NotGradable("A normalization layer's axis has an unknown size.")
        size *= dim
    return size


def _batchnorm(cfg: dict, shapes: list[Shape]) -> tuple[Shape, int, int]:
    shape = _one(shapes)
    c = _norm_axis_size(cfg, shape)
    trainable = c * (bool(cfg.get("center", True)) + bool(cfg.get("scale", True)))
    return shape, trainable + 2 * c, 2 * c


def _layernorm(cfg: dict, shapes: list[Shape]) -> tuple[Shape, int, int]:
    shape = _one(shapes)
    c = _norm_axis_size(cfg, shape)
    return shape, c * (bool(cfg.get("center", True)) + bool(cfg.get("scale", True))), 0


def _identity(cfg: dict, shapes: list[Shape]) -> tuple[Shape, int, int]:
    return _one(shapes), 0, 0


def _pool(cfg: dict, shapes: list[Shape]) -> tuple[Shape, int, int]:
    _channels_last(cfg)
    shape = _one(shapes, 4)
    ph, pw = _pair(cfg.get("pool_size", 2))
    strides = cfg.get("strides")
    sh, sw = _pair(strides) if strides is not None else (ph, pw)
    padding = cfg.get("padding", "valid")
    return (
        (
            shape[0],
            _spatial(shape[1], ph, sh, 1, padding),
            _spatial(shape[2], pw, sw, 1, padding),
            shape[3],
        ),
        0,
        0,
    )


def _global_pool(cfg: dict, shapes: list[Shape]) -> tuple[Shape, int, int]:
    _channels_last(cfg)
    shape = _one(shapes, 4)
    if cfg.get("keepdims", False):
        return (shape[0], 1, 1, shape[3]), 0, 0
    return (shape[0], shape[3]), 0, 0


def _flatten(cfg: dict, shapes: list[Shape]) -> tuple[Shape, int, int]:
    shape = _one(shapes)
    rest = shape[1:]
    return (shape[0], None if None in rest else math.prod(rest)), 0, 0  # type: ignore[arg-type]


def _reshape(cfg: dict, shapes: list[Shape]) -> tuple[Shape, int, int]:
    shape = _one(shapes)
    target = [
        int(v)
        for v in (
            cfg["target_shape"]["config"]["value"]
            if isinstance(cfg["target_shape"], dict)
            else cfg["target_shape"]
        )
    ]
    known = shape[1:]
    if None not in known and target.count(-1) == 1:
        rest = math.prod(v for v in target if v != -1)
        target[target.index(-1)] = math.prod(known) // rest  # type: ignore[arg-type]
    if None not in known and -1 not in target and math.prod(target) != math.prod(known):  # type: ignore[arg-type]
        raise NotGradable(
            f"A Reshape to {tuple(target)} does not fit a tensor of shape {_fmt(shape)}."
        )
    return (shape[0], *(None if v == -1 else v for v in target)), 0, 0


def _zero_padding(cfg: dict, shapes: list[Shape]) -> tuple[Shape, int, int]:
    _channels_last(cfg)
    shape = _one(shapes, 4)
    pad = cfg.get("padding", 1)
    if isinstance(pad, int):
        (top, bottom), (left, right) = (pad, pad), (pad, pad)
    else:
        rows, cols = pad
        top, bottom = _pair(rows)
        left, right = _pair(cols)
    grow = lambda n, a, b: None if n is None else n + a + b  # noqa: E731
    return (shape[0], grow(shape[1], top, bottom), grow(shape[2], left, right), shape[3]), 0, 0


def _upsampling(cfg: dict, shapes: list[Shape]) -> tuple[Shape, int, int]:
    _channels_last(cfg)
    shape = _one(shapes, 4)
    fh, fw = _pair(cfg.get("size", 2))
    scale = lambda n, f: None if n is None else n * f  # noqa: E731
    return (shape[0], scale(shape[1], fh), scale(shape[2], fw), shape[3]), 0, 0


def _resize(cfg: dict, shapes: list[Shape]) -> tuple[Shape, int, int]:
    _channels_last(cfg)
    shape = _one(shapes, 4)
    return (shape[0], int(cfg["height"]), int(cfg["width"]), shape[3]), 0, 0


def _merge(cfg: dict, shapes: list[Shape]) -> tuple[Shape, int, int]:
    if len(shapes) < 2:
        raise NotGradable("A merge layer (Add, Multiply, ...) needs at least two inputs.")
    first = shapes[0]
    for other in shapes[1:]:
        if len(other) != len(first) or any(
            a is not None and b is not None and a != b and 1 not in (a, b)
            for a, b in zip(first, other, strict=True)
        ):
            raise NotGradable(
                f"A merge layer received incompatible shapes {_fmt(first)} and {_fmt(other)}."
            )
    return first, 0, 0


def _concatenate(cfg: dict, shapes: list[Shape]) -> tuple[Shape, int, int]:
    axis = int(cfg.get("axis", -1))
    if len(shapes) < 2 or len({len(s) for s in shapes}) != 1:
        raise NotGradable("A Concatenate layer needs at least two inputs of the same rank.")
    sizes = [s[axis] for s in shapes]
    out = list(shapes[0])
    out[axis] = None if None in sizes else sum(sizes)  # type: ignore[arg-type]
    return tuple(out), 0, 0


LAYERS: dict[str, InferFn] = {
    "Conv2D": _conv2d,
    "SeparableConv2D": _separable,
    "DepthwiseConv2D": _depthwise,
    "Dense": _dense,
    "BatchNormalization": _batchnorm,
    "LayerNormalization": _layernorm,
    "MaxPooling2D": _pool,
    "AveragePooling2D": _pool,
    "GlobalAveragePooling2D": _global_pool,
    "GlobalMaxPooling2D": _global_pool,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "ZeroPadding2D": _zero_padding,
    "UpSampling2D": _upsampling,
    "Resizing": _resize,
    "CenterCrop": _resize,
    "RandomCrop": _resize,
    "Add": _merge,
    "Subtract": _merge,
    "Multiply": _merge,
    "Average": _merge,
    "Maximum": _merge,
    "Minimum": _merge,
    "Concatenate": _concatenate,
    **{
        name: _identity
        for name in (
            "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "Identity", "Dropout",
            "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
            "ActivityRegularization", "Rescaling", "RandomFlip", "RandomRotation",
            "RandomTranslation", "RandomZoom", "RandomContrast", "RandomBrightness",
        )
    },
    "InputLayer": _identity,
}  # fmt: skip


def _fmt(shape: Shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _as_shape(value: Any) -> Shape:
    if isinstance(value, dict) and value.get("class_name") == "__tuple__":
        value = value["config"]["value"]
    if not isinstance(value, list | tuple):
        raise TypeError("shape is not a list")
    dims = tuple(None if d is None else int(d) for d in value)
    if any(d is not None and d <= 0 for d in dims):
        raise NotGradable(f"The model declares an impossible shape {_fmt(dims)}.")
    return dims


def _input_layer_shape(cfg: dict) -> Shape:
    if "batch_shape" in cfg:
        return _as_shape(cfg["batch_shape"])
    if "batch_input_shape" in cfg:  # tf.keras 2 files
        return _as_shape(cfg["batch_input_shape"])
    if "shape" in cfg:
        return (None, *_as_shape(cfg["shape"]))
    raise KeyError("batch_shape")


def _history_refs(node: Any) -> list[tuple[str, int, int]]:
    """Tensor references of one inbound node, in Keras 3 and tf.keras 2 forms."""
    refs: list[tuple[str, int, int]] = []
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        stack: list[Any] = [node.get("args", [])]
        while stack:
            item = stack.pop(0)
            if isinstance(item, dict) and item.get("class_name") == "__keras_tensor__":
                name, node_index, tensor_index = item["config"]["keras_history"]
                refs.append((str(name), int(node_index), int(tensor_index)))
            elif isinstance(item, list):
                stack[0:0] = item
    elif isinstance(node, list):  # tf.keras 2: [["name", node, tensor, {kwargs}], ...]
        for entry in node:
            refs.append((str(entry[0]), int(entry[1]), int(entry[2])))
    return refs


def _endpoint_refs(value: Any) -> list[tuple[str, int, int]]:
    if value and isinstance(value[0], str):
        value = [value]
    return [(str(v[0]), int(v[1]), int(v[2])) for v in value]


class _Walker:
    """Infers shapes layer by layer, flattening nested models into one table."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.layers: list[Layer] = []

    def model(
        self, obj: dict, incoming: Shape | None, prefix: str, depth: int
    ) -> tuple[Shape, Shape]:
        if depth > self.limits.max_depth:
            raise NotGradable("Models are nested too deeply.")
        cfg = obj["config"]
        trainable = cfg.get("trainable", True) is not False
        if obj["class_name"] == "Sequential":
            return self._sequential(cfg, incoming, prefix, depth, trainable)
        return self._functional(cfg, incoming, prefix, depth, trainable)

    def _sequential(
        self, cfg: dict, incoming: Shape | None, prefix: str, depth: int, trainable: bool
    ) -> tuple[Shape, Shape]:
        layers = cfg["layers"]
        if layers and layers[0]["class_name"] == "InputLayer":
            shape = _input_layer_shape(layers[0]["config"])
            layers = layers[1:]
        elif layers and "batch_input_shape" in layers[0].get("config", {}):
            shape = _as_shape(layers[0]["config"]["batch_input_shape"])
        elif cfg.get("build_input_shape") is not None:
            shape = _as_shape(cfg["build_input_shape"])
        elif incoming is not None:
            shape = incoming
        else:
            raise NotGradable(
                "The model has no input shape, so it was never built: add keras.Input(...) "
                "before saving."
            )
        self._check_incoming(incoming, shape)
        input_shape = shape
        for layer in layers:
            shape = self._layer(layer, [shape], prefix, depth, trainable)
        return input_shape, shape

    def _functional(
        self, cfg: dict, incoming: Shape | None, prefix: str, depth: int, trainable: bool
    ) -> tuple[Shape, Shape]:
        outputs: dict[tuple[str, int], Shape] = {}
        pending = list(cfg["layers"])
        if len(pending) > self.limits.max_layers:
            raise NotGradable(f"The model has more than {self.limits.max_layers} layers.")
        inputs = _endpoint_refs(cfg["input_layers"])
        if len(inputs) != 1:
            raise NotGradable("The model must have exactly one input (an image).")
        # Every call of a layer is a node; process nodes once their inputs are known,
        # in the configuration's order (a heap keyed by position), so the layer
        # table reads like the model's own summary whatever the graph's shape.
        items: list[tuple[dict, int, list[tuple[str, int, int]]]] = []
        for layer in pending:
            if layer["class_name"] == "InputLayer":
                items.append((layer, 0, []))
                continue
            for index, node in enumerate(layer.get("inbound_nodes", [])):
                items.append((layer, index, _history_refs(node)))
        if len(items) > 2 * self.limits.max_layers:
            raise NotGradable(
                f"The model calls its layers more than {2 * self.limits.max_layers} times."
            )
        waiting_on: dict[tuple[str, int], list[int]] = {}
        missing = []
        for position, (_, _, refs) in enumerate(items):
            keys = {(r[0], r[1]) for r in refs}
            missing.append(len(keys))
            for key in keys:
                waiting_on.setdefault(key, []).append(position)
        ready = [position for position, count in enumerate(missing) if count == 0]
        heapq.heapify(ready)
        counted: set[str] = set()
        done = 0
        while ready:
            position = heapq.heappop(ready)
            layer, index, refs = items[position]
            name = str(layer.get("name") or layer["config"]["name"])
            if layer["class_name"] == "InputLayer":
                shape = _input_layer_shape(layer["config"])
                self._check_incoming(incoming, shape)
            else:
                in_shapes = [outputs[(r[0], r[1])] for r in refs]
                shape = self._layer(
                    layer, in_shapes, prefix, depth, trainable, count=name not in counted
                )
            counted.add(name)
            outputs[(name, index)] = shape
            done += 1
            for waiter in waiting_on.pop((name, index), []):
                missing[waiter] -= 1
                if missing[waiter] == 0:
                    heapq.heappush(ready, waiter)
        if done < len(items):
            stuck = [str(items[i][0].get("name")) for i, c in enumerate(missing) if c][:3]
            raise NotGradable(
                f"The model's layers are not connected to its input ({', '.join(stuck)})."
            )
        results = _endpoint_refs(cfg["output_layers"])
        if len(results) != 1:
            raise NotGradable("The model must have exactly one output.")
        return outputs[(inputs[0][0], inputs[0][1])], outputs[(results[0][0], results[0][1])]

    def _check_incoming(self, incoming: Shape | None, declared: Shape) -> None:
        if incoming is not None and len(incoming) != len(declared):
            raise NotGradable(
                f"A nested model expecting {_fmt(declared)} is called on a tensor of shape "
                f"{_fmt(incoming)}."
            )

    def _layer(
        self,
        layer: dict,
        in_shapes: list[Shape],
        prefix: str,
        depth: int,
        trainable: bool,
        count: bool = True,
    ) -> Shape:
        class_name = layer["class_name"]
        cfg = layer["config"]
        name = str(cfg.get("name") or layer.get("name") or class_name)
        layer_trainable = trainable and cfg.get("trainable", True) is not False
        if class_name in MODEL_CLASSES:
            if not count:  # a shared sub-model: its layers are already in the table
                inner = _Walker(self.limits)
                return inner.model(layer, _one(in_shapes), f"{prefix}{name}/", depth + 1)[1]
            start = len(self.layers)
            _, out = self.model(layer, _one(in_shapes), f"{prefix}{name}/", depth + 1)
            if not layer_trainable:
                for inner_layer in self.layers[start:]:
                    inner_layer.trainable_params = 0
            return out
        if len(self.layers) >= self.limits.max_layers:
            raise NotGradable(f"The model has more than {self.limits.max_layers} layers.")
        out, params, non_trainable = LAYERS[class_name](cfg, in_shapes)
        if count and class_name != "InputLayer":
            self.layers.append(
                Layer(
                    name=name,
                    type=class_name,
                    path=prefix + name,
                    output_shape=out,
                    params=params,
                    trainable_params=params - non_trainable if layer_trainable else 0,
                    attributes={k: _plain(cfg[k]) for k in REPORTED_ATTRIBUTES if k in cfg},
                )
            )
            if sum(layer.params for layer in self.layers) > self.limits.max_params:
                raise NotGradable(
                    f"The model declares more than {self.limits.max_params:,} parameters "
                    f"(reached at layer '{name}')."
                )
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, dict) and value.get("class_name") == "__tuple__":
        return list(value["config"]["value"])
    return value
