"""Static architecture analysis of a serialized Keras model, without Keras.

The configuration of an uploaded model is read as plain data and checked
against an allow-list before anything is deserialised. The same walk infers
every layer's output shape and parameter count (``catalog``), so the trusted
side knows the architecture without believing what the sandbox reports, and
refuses, in milliseconds, a model that would need billions of parameters,
gigabytes of activations or hours of compute before any memory is allocated.

The walk is linear in the size of the configuration: every layer call is
visited once, a nested model called many times is analysed once, and every
value is read through ``values``, so hostile numbers end in a clear refusal.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from grader.errors import NotGradable
from grader.inspection.catalog import ALIASES, APPLICATION_LAYERS, LAYERS, OPS, refusal
from grader.inspection.registry import (
    Call,
    Out,
    check_build_config,
    compatible,
    elements,
    positions,
)
from grader.inspection.values import (
    MAX_INT,
    MAX_RANK,
    Config,
    Shape,
    as_int,
    as_shape,
    fmt_shape,
    unwrap,
)

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
    }
)
# Where Keras 3, Keras 2.13-2.15 and tf-keras keep their model classes: accepted for
# Sequential/Functional/Model only.
MODEL_MODULES = frozenset(
    f"{package}.{module}"
    for package in ("keras.src.models", "keras.src.engine", "tf_keras.src.engine")
    for module in ("functional", "sequential", "model", "training")
)
OP_PACKAGE = "keras.src.ops."  # every module under it holds operations, vetted or not
APPLICATION_NAMES = frozenset(name for _, name in APPLICATION_LAYERS)

# Serialized objects that may appear inside a layer's configuration.
ALLOWED_HELPERS = frozenset(
    {
        "DTypePolicy", "FloatDTypePolicy", "__keras_tensor__", "__tuple__", "__slice__",
        "__ellipsis__", "Zeros", "Ones", "Constant", "GlorotUniform", "GlorotNormal",
        "HeNormal", "HeUniform", "LecunNormal", "LecunUniform", "RandomNormal",
        "RandomUniform", "TruncatedNormal", "VarianceScaling", "Orthogonal", "Identity",
        "IdentityInitializer", "L1", "L2", "L1L2", "OrthogonalRegularizer",
        "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm",
    }
)  # fmt: skip

ALLOWED_ACTIVATIONS = frozenset(
    {
        "linear", "relu", "relu6", "sigmoid", "softmax", "softplus", "softsign", "tanh",
        "selu", "elu", "exponential", "gelu", "silu", "swish", "hard_sigmoid",
        "hard_silu", "hard_swish", "leaky_relu", "mish", "log_softmax", "celu",
        "hard_tanh", "log_sigmoid", "sparse_plus", "soft_shrink", "squareplus",
        "tanh_shrink", "sparsemax", "glu", "hard_shrink", "threshold", "sparse_sigmoid",
    }
)  # fmt: skip

MODEL_CLASSES = frozenset({"Sequential", "Functional", "Model"})

# Attributes shown in the layer table and compared by the architecture checks.
REPORTED_ATTRIBUTES = (
    "filters", "units", "kernel_size", "strides", "padding",
    "depth_multiplier", "activation", "pool_size", "rate",
)  # fmt: skip
# Further settings that decide a count or a size, kept for the formulas that explain
# them (grader.explain), not shown in the table nor compared.
FORMULA_OPTIONS = (
    "use_bias", "dilation_rate", "groups", "center", "scale", "axis", "keepdims", "lora_rank",
)  # fmt: skip

# Arguments of one layer call beyond its tensors: a real call has a handful.
MAX_CALL_ARGUMENTS = 1000
BYTES_PER_ELEMENT = 4  # float32, what the grader feeds


@dataclass
class Layer:
    name: str
    type: str
    path: str
    output_shape: Shape
    params: int
    trainable_params: int
    attributes: dict[str, Any] = field(default_factory=dict)
    # The shape the layer was called on (None for a call on several tensors), and the
    # FORMULA_OPTIONS its configuration sets: what grader.explain needs.
    input_shape: Shape | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Resources:
    """What one image costs the model, estimated from the architecture alone."""

    peak_activation_bytes: int = 0  # the largest tensor (or internal score matrix) per image
    flops: int = 0  # multiply-adds x 2, per image
    constants: int = 0  # numbers held in the configuration (Rescaling arrays, ...)
    operations: int = 0  # tensor operations between layers (x + y, x[:, 1:], ...)


@dataclass
class Architecture:
    model_type: str
    input_shape: Shape
    output_shape: Shape
    layers: list[Layer]
    resources: Resources = field(default_factory=Resources)

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def trainable_params(self) -> int:
        return sum(layer.trainable_params for layer in self.layers)


@dataclass(frozen=True)
class Limits:
    max_params: int = 50_000_000
    max_layers: int = 1500
    max_depth: int = 20
    max_activation_bytes: int = 512 * 1024 * 1024  # per image
    max_flops: int = 50_000_000_000  # per image


def analyse(model_config: Any, limits: Limits = Limits()) -> Architecture:
    """Check a serialized model against the allow-list and infer its architecture.

    Raises NotGradable, in words a student understands, for anything that is
    not a plain built-in Keras model, whose structure cannot be followed, or
    that breaks one of the ``limits``.
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
    except (AttributeError, KeyError, IndexError, TypeError, ValueError, ZeroDivisionError,
            OverflowError) as exc:  # fmt: skip
        raise NotGradable(
            f"The model's configuration is malformed and cannot be followed ({type(exc).__name__})."
        ) from None
    arch = Architecture(
        model_type=str(model_config["class_name"]),
        input_shape=input_shape,
        output_shape=output_shape,
        layers=walker.layers,
        resources=walker.resources,
    )
    _check_caps(arch, limits)
    return arch


def _check_caps(arch: Architecture, limits: Limits) -> None:
    res = arch.resources
    if arch.total_params + res.constants > limits.max_params:
        held = f" and {res.constants:,} constants in its configuration" if res.constants else ""
        raise NotGradable(
            f"The model declares {arch.total_params:,} parameters{held}, more than the limit of "
            f"{limits.max_params:,}."
        )
    _check_resources(res, limits)


def _check_resources(res: Resources, limits: Limits) -> None:
    """The per-image caps, checked as the walk goes (a crafted file stops early)."""
    if res.peak_activation_bytes > limits.max_activation_bytes:
        raise NotGradable(
            f"One image would need a {_mib(res.peak_activation_bytes)} tensor inside the model, "
            f"over the limit of {_mib(limits.max_activation_bytes)} per image (check "
            "UpSampling, Resizing and Reshape sizes)."
        )
    if res.flops > limits.max_flops:
        raise NotGradable(
            f"The model needs about {res.flops / 1e9:,.1f} GFLOPs per image, over the limit of "
            f"{limits.max_flops / 1e9:,.1f} GFLOPs: it could not be evaluated in time."
        )


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB" if n >= 2**20 else f"{n:,} bytes"


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
        activations = [
            value for key, value in config.items() if key.endswith("activation")
        ] if isinstance(config, dict) else []  # fmt: skip
        if not all(v is None or isinstance(v, str) for v in (module, registered)):
            raise NotGradable("The model's configuration is malformed (a name is not text).")
        if registered not in (None, class_name):
            raise NotGradable(
                f"'{class_name}' is registered as the custom object '{registered}'. Custom "
                "classes cannot be graded: use built-in Keras layers only."
            )
        if isinstance(module, str) and module.startswith(OP_PACKAGE):
            if (module, class_name) not in OPS:
                raise NotGradable(refusal(class_name, module))
            continue
        if (module, class_name) in APPLICATION_LAYERS or (
            class_name in MODEL_CLASSES and module in MODEL_MODULES
        ):
            continue
        if class_name in APPLICATION_NAMES or (
            module is not None and module not in ALLOWED_MODULES
        ):
            raise NotGradable(
                f"The layer or object '{class_name}' names the module '{module}', which is not "
                "part of Keras. Only built-in Keras layers are accepted."
            )
        allowed = (
            class_name in LAYERS or class_name in MODEL_CLASSES or class_name in ALLOWED_HELPERS
            or class_name in ("LSTMCell", "GRUCell", "SimpleRNNCell", "StackedRNNCells")
        )  # fmt: skip
        if not allowed:
            raise NotGradable(refusal(class_name, module))
        for activation in activations:  # activation, recurrent_activation, ...
            if activation is None or isinstance(activation, dict):
                continue  # absent, or a serialized object checked on its own
            if not isinstance(activation, str) or activation not in ALLOWED_ACTIVATIONS:
                raise NotGradable(
                    f"The activation {str(activation)[:60]!r} is not a built-in Keras activation. "
                    "Use a name such as 'relu' or 'softmax'."
                )


# --- the graph walk ----------------------------------------------------------

TensorKey = tuple[str, int, int]  # (layer name, node index, tensor index)


def _is_tensor(value: Any) -> bool:
    return isinstance(value, dict) and value.get("class_name") == "__keras_tensor__"


def _tensor_key(value: dict) -> TensorKey:
    history = value["config"]["keras_history"]
    if not isinstance(history, list) or len(history) != 3:
        raise NotGradable("The model's configuration has a malformed tensor reference.")
    name, node, index = history
    return str(name), as_int(node, low=0), as_int(index, low=0)


@dataclass
class _Node:
    """One call of a layer, as the configuration describes it."""

    refs: list[TensorKey]  # positional tensors first, then keyword tensors
    named: dict[str, TensorKey]
    args: list[Any]  # positional arguments, tensors replaced by None


def _parse_node(node: Any) -> _Node:
    """Tensor references of one inbound node, in Keras 3 and tf.keras 2 forms; linear time."""
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        args, kwargs = node.get("args", []), node.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise NotGradable("The model's configuration has a malformed layer call.")
        refs, budget = [], [MAX_CALL_ARGUMENTS]
        positional = []
        for arg in args:
            found = _collect_tensors(arg, budget)
            refs.extend(found)
            positional.append(None if found else arg)
        named = {}
        for key, value in kwargs.items():
            found = _collect_tensors(value, budget)
            if len(found) == 1 and _is_tensor(value):
                named[str(key)] = found[0]
            refs.extend(found)
        return _Node(refs, named, positional)
    if isinstance(node, list):  # tf.keras 2: [["name", node, tensor, {kwargs}], ...]
        if len(node) > MAX_CALL_ARGUMENTS:
            raise NotGradable("A layer call in the configuration has far too many inputs.")
        refs = []
        for entry in node:
            if not isinstance(entry, list) or len(entry) < 3:
                raise NotGradable("The model's configuration has a malformed layer call.")
            refs.append((str(entry[0]), as_int(entry[1], low=0), as_int(entry[2], low=0)))
        return _Node(refs, {}, [None] * len(refs))
    raise NotGradable("The model's configuration has a malformed layer call.")


def _collect_tensors(value: Any, budget: list[int]) -> list[TensorKey]:
    """Tensor references in an argument, in order, spending ``budget`` on every item."""
    found: list[TensorKey] = []
    stack = [value]
    while stack:
        item = stack.pop()
        budget[0] -= 1
        if budget[0] < 0:
            raise NotGradable(
                f"A layer call in the configuration has more than {MAX_CALL_ARGUMENTS} "
                "arguments; the file is crafted."
            )
        if _is_tensor(item):
            found.append(_tensor_key(item))
        elif isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, dict) and item.get("class_name") == "__tuple__":
            stack.append(unwrap(item))
    return found


def _endpoint_refs(value: Any) -> list[TensorKey]:
    value = unwrap(value)
    if not isinstance(value, list) or not value:
        raise NotGradable("The model's inputs or outputs are not declared.")
    if isinstance(value[0], str):
        value = [value]
    refs = []
    for ref in value[:MAX_CALL_ARGUMENTS]:
        ref = unwrap(ref)
        if not isinstance(ref, list) or len(ref) != 3:
            raise NotGradable("The model's inputs or outputs are malformed.")
        refs.append((str(ref[0]), as_int(ref[1], low=0), as_int(ref[2], low=0)))
    return refs


def _input_layer_shape(cfg: Any) -> Shape:
    if not isinstance(cfg, dict):
        raise NotGradable("An InputLayer's configuration is malformed.")
    for key in ("batch_shape", "batch_input_shape"):  # Keras 3, tf.keras 2
        if cfg.get(key) is not None:
            return as_shape(cfg[key], "The model's input shape")
    if cfg.get("shape") is not None:
        return (None, *as_shape(cfg["shape"], "The model's input shape"))
    raise NotGradable("The model's InputLayer declares no shape.")


class _Walker:
    """Infers shapes call by call, flattening nested models into one layer table."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.layers: list[Layer] = []
        self.resources = Resources()
        self.visits = 0
        # (id(config), input shape) -> (output shape, FLOPs of one call)
        self._models: dict[tuple[int, Shape], tuple[Shape, int]] = {}

    def model(
        self, obj: dict, incoming: Shape | None, prefix: str, depth: int, trainable: bool = True
    ) -> tuple[Shape, Shape]:
        if depth > self.limits.max_depth:
            raise NotGradable("Models are nested too deeply.")
        cfg = obj["config"]
        if not isinstance(cfg, dict):
            raise NotGradable("A model's configuration is malformed.")
        trainable = trainable and cfg.get("trainable", True) is not False
        if obj["class_name"] == "Sequential":
            return self._sequential(cfg, incoming, prefix, depth, trainable)
        return self._functional(cfg, incoming, prefix, depth, trainable)

    def _sequential(
        self, cfg: dict, incoming: Shape | None, prefix: str, depth: int, trainable: bool
    ) -> tuple[Shape, Shape]:
        layers = cfg["layers"]
        if not isinstance(layers, list):
            raise NotGradable("A Sequential model's layer list is malformed.")
        first = layers[0] if layers and isinstance(layers[0], dict) else {}
        first_cfg = first.get("config") if isinstance(first.get("config"), dict) else {}
        if first.get("class_name") == "InputLayer":
            shape = _input_layer_shape(first_cfg)
            layers = layers[1:]
        elif first_cfg.get("batch_input_shape") is not None:  # tf.keras 2, input_shape=...
            shape = as_shape(first_cfg["batch_input_shape"], "The model's input shape")
        elif cfg.get("build_input_shape") is not None:
            shape = as_shape(cfg["build_input_shape"], "The model's input shape")
        elif incoming is not None:
            shape = incoming
        else:
            raise NotGradable(
                "The model has no input shape, so it was never built: add keras.Input(...) "
                "before saving."
            )
        shape = self._called_with(incoming, shape)
        input_shape = shape
        for layer in layers:
            shape = self._call(layer, Call([shape]), prefix, depth, trainable, first=True)[0]
        return input_shape, shape

    def _functional(
        self, cfg: dict, incoming: Shape | None, prefix: str, depth: int, trainable: bool
    ) -> tuple[Shape, Shape]:
        layers = cfg["layers"]
        if not isinstance(layers, list):
            raise NotGradable("A functional model's layer list is malformed.")
        if len(layers) > self.limits.max_layers:
            raise NotGradable(f"The model has more than {self.limits.max_layers:,} layers.")
        inputs = _endpoint_refs(cfg["input_layers"])
        if len(inputs) != 1:
            raise NotGradable("The model must have exactly one input (an image).")
        # Every call of a layer is a node; process nodes once their inputs are known,
        # in the configuration's order (a heap keyed by position), so the layer
        # table reads like the model's own summary whatever the graph's shape.
        items: list[tuple[dict, str, int, _Node]] = []
        names: set[str] = set()
        # Calls of a nested model are numbered from 1 where they are referred to in
        # tf.keras 2 files, and in input_layers/output_layers of Keras 3 files: node 0
        # is the model's own. Calls are stored here under their 0-based position.
        nested = {
            str(x.get("name") or x["config"].get("name"))
            for x in layers
            if isinstance(x, dict) and x.get("class_name") in MODEL_CLASSES
            and isinstance(x.get("config"), dict)
        }  # fmt: skip
        keras2 = any(
            isinstance(x, dict) and isinstance(x.get("inbound_nodes"), list)
            and any(isinstance(node, list) for node in x["inbound_nodes"])
            for x in layers
        )  # fmt: skip

        def canonical(ref: TensorKey, endpoint: bool) -> TensorKey:
            if ref[0] in nested and (keras2 or endpoint) and ref[1] > 0:
                return (ref[0], ref[1] - 1, ref[2])
            return ref

        for layer in layers:
            if not isinstance(layer, dict) or not isinstance(layer.get("config"), dict):
                raise NotGradable("A layer in the model's configuration is malformed.")
            name = str(layer.get("name") or layer["config"].get("name"))
            if name in names:
                raise NotGradable(f"Two layers of the model are both named '{name[:80]}'.")
            names.add(name)
            if layer.get("class_name") == "InputLayer":
                items.append((layer, name, 0, _Node([], {}, [])))
                continue
            nodes = layer.get("inbound_nodes", [])
            if not isinstance(nodes, list):
                raise NotGradable(f"The calls of layer '{name[:80]}' are malformed.")
            for index, node in enumerate(nodes):
                self._visit()
                parsed = _parse_node(node)
                parsed.refs = [canonical(r, False) for r in parsed.refs]
                parsed.named = {k: canonical(r, False) for k, r in parsed.named.items()}
                items.append((layer, name, index, parsed))
                if len(items) > 4 * self.limits.max_layers:
                    raise NotGradable(
                        f"The model calls its layers more than {4 * self.limits.max_layers:,} "
                        "times."
                    )
        waiting_on: dict[tuple[str, int], list[int]] = {}
        missing = []
        for position, (_, _, _, node) in enumerate(items):
            keys = {(r[0], r[1]) for r in node.refs}
            missing.append(len(keys))
            for key in keys:
                waiting_on.setdefault(key, []).append(position)
        ready = [position for position, count in enumerate(missing) if count == 0]
        heapq.heapify(ready)
        outputs: dict[TensorKey, Shape] = {}
        called: set[str] = set()
        done = 0
        while ready:
            position = heapq.heappop(ready)
            layer, name, index, node = items[position]
            if layer["class_name"] == "InputLayer":
                shapes = [self._called_with(incoming, _input_layer_shape(layer["config"]))]
            else:
                try:
                    call = Call(
                        [outputs[r] for r in node.refs],
                        {k: outputs[r] for k, r in node.named.items()},
                        node.args,
                    )
                except KeyError:
                    raise NotGradable(
                        f"Layer '{name[:80]}' uses an output that its source does not have."
                    ) from None
                shapes = self._call(layer, call, prefix, depth, trainable, first=name not in called)
            called.add(name)
            for tensor, shape in enumerate(shapes):
                outputs[(name, index, tensor)] = shape
            done += 1
            for waiter in waiting_on.pop((name, index), []):
                missing[waiter] -= 1
                if missing[waiter] == 0:
                    heapq.heappush(ready, waiter)
        if done < len(items):
            stuck = [items[i][1][:40] for i, c in enumerate(missing) if c][:3]
            raise NotGradable(
                f"The model's layers are not connected to its input ({', '.join(stuck)})."
            )
        results = _endpoint_refs(cfg["output_layers"])
        if len(results) != 1:
            raise NotGradable("The model must have exactly one output.")
        try:
            return outputs[canonical(inputs[0], True)], outputs[canonical(results[0], True)]
        except KeyError:
            raise NotGradable("The model's input or output is not one of its layers.") from None

    def _called_with(self, incoming: Shape | None, declared: Shape) -> Shape:
        """A nested model's input: its declared shape, with the sizes it leaves open
        (``Input((None, None, 3))``) taken from the tensor it is called on."""
        if incoming is None:
            return declared
        if not compatible(incoming, declared):
            raise NotGradable(
                f"A nested model expecting {fmt_shape(declared)} is called on a tensor of shape "
                f"{fmt_shape(incoming)}."
            )
        return tuple(d if d is not None else i for d, i in zip(declared, incoming, strict=True))

    def _visit(self) -> None:
        """Counts work; the walk is linear, so a crafted file runs out of budget, not time."""
        self.visits += 1
        if self.visits > 10 * self.limits.max_layers:
            raise NotGradable("The model's configuration is too large to analyse.")

    def _call(
        self, layer: Any, call: Call, prefix: str, depth: int, trainable: bool, first: bool
    ) -> list[Shape]:
        """One call of a layer, nested model or operation; returns its output shapes."""
        self._visit()
        if not isinstance(layer, dict) or not isinstance(layer.get("config"), dict):
            raise NotGradable("A layer in the model's configuration is malformed.")
        class_name = layer.get("class_name")
        cfg = layer["config"]
        name = str(cfg.get("name") or layer.get("name") or class_name)[:200]
        layer_trainable = trainable and cfg.get("trainable", True) is not False
        if class_name in MODEL_CLASSES:
            return [self._nested(layer, call, f"{prefix}{name}/", depth, layer_trainable, first)]
        module = layer.get("module")
        if isinstance(module, str) and module.startswith(OP_PACKAGE):
            out = OPS[(module, class_name)](Config(cfg, class_name), call)
            self.resources.operations += 1
            self._account(out, count_layer=True)
            return out.shapes
        if class_name not in LAYERS:
            raise NotGradable(refusal(str(class_name), module))
        out = LAYERS[class_name](Config(cfg, class_name, name), call)
        if first and class_name != "InputLayer":
            check_build_config(layer, call, name)
            self.layers.append(
                Layer(
                    name=name,
                    type=ALIASES.get(class_name, class_name),
                    path=prefix + name,
                    output_shape=out.shape,
                    params=out.params,
                    trainable_params=out.params - out.non_trainable if layer_trainable else 0,
                    attributes={k: unwrap(cfg[k]) for k in REPORTED_ATTRIBUTES if k in cfg},
                    input_shape=call.inputs[0] if len(call.inputs) == 1 else None,
                    options={k: unwrap(cfg[k]) for k in FORMULA_OPTIONS if k in cfg},
                )
            )
            self.resources.constants += out.constants
            if sum(x.params for x in self.layers) > self.limits.max_params:
                raise NotGradable(
                    f"The model declares more than {self.limits.max_params:,} parameters "
                    f"(reached at layer '{name}')."
                )
        self._account(out, count_layer=first)
        return out.shapes

    def _nested(
        self, layer: dict, call: Call, prefix: str, depth: int, trainable: bool, first: bool
    ) -> Shape:
        """A nested model: walked once per input shape, its cost counted on every call."""
        incoming = call.one()
        key = (id(layer), incoming)
        if key not in self._models:
            start, flops = len(self.layers), self.resources.flops
            _, out = self.model(layer, incoming, prefix, depth + 1, trainable)
            if not first:  # called again: its layers are already in the table
                del self.layers[start:]
            self._models[key] = (out, self.resources.flops - flops)
            return out
        out, flops = self._models[key]
        self.resources.flops += flops
        _check_resources(self.resources, self.limits)
        return out

    def _account(self, out: Out, count_layer: bool) -> None:
        for shape in out.shapes:
            if len(shape) > MAX_RANK:
                raise NotGradable(
                    f"A layer of the model would produce a tensor of rank {len(shape)}, more "
                    f"than {MAX_RANK}: no real model does."
                )
            if any(d is not None and d > MAX_INT for d in shape):
                raise NotGradable(
                    f"A layer of the model would produce a tensor dimension over {MAX_INT:,}: "
                    "no real model does."
                )
        res = self.resources
        if count_layer and len(self.layers) + res.operations > self.limits.max_layers:
            raise NotGradable(
                f"The model has more than {self.limits.max_layers:,} layers and operations."
            )
        biggest = max(elements(s) for s in out.shapes) if out.shapes else 0
        res.peak_activation_bytes = max(
            res.peak_activation_bytes, (biggest + out.scratch) * BYTES_PER_ELEMENT
        )
        visited = positions(out.shape) if out.shapes and len(out.shape) > 2 else 1
        res.flops += 2 * out.params * visited + sum(elements(s) for s in out.shapes) + out.scratch
        _check_resources(res, self.limits)
