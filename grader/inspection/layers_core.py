"""Shape and weight inference for Keras' image and core layers.

Convolutions of every rank and kind, pooling, dense, normalization, activations,
reshaping, merging and the image preprocessing and augmentation layers. Each
function mirrors the layer's ``build`` and ``compute_output_shape`` in Keras;
``tests/test_layer_coverage.py`` holds them to Keras' own numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from grader.errors import NotGradable
from grader.inspection.registry import Call, Out, infer_layer, register
from grader.inspection.values import (
    MAX_INT,
    MAX_RANK,
    Config,
    Shape,
    as_int,
    fmt_shape,
    numbers_count,
)

# Constants a configuration may carry (Rescaling or Normalization arrays); each
# field is also counted toward the parameter cap.
MAX_CONFIG_NUMBERS = 1_000_000


def _rank(cfg: Config) -> int:
    """Spatial rank from the class name: Conv1D -> 1, MaxPooling3D -> 3."""
    for rank in (1, 2, 3):
        if f"{rank}D" in cfg.kind:
            return rank
    raise NotGradable(f"Cannot tell the rank of layer '{cfg.layer}'.")


def _channels_last(cfg: Config) -> None:
    fmt = cfg.get("data_format", "channels_last")
    if fmt != "channels_last":
        raise NotGradable(
            f"Layer '{cfg.layer}' uses data_format={fmt!r}; only channels_last image layers "
            "are supported (the Keras default)."
        )


def channels(shape: Shape, cfg: Config) -> int:
    if not shape or shape[-1] is None:
        raise NotGradable(f"The number of input channels of layer '{cfg.layer}' is unknown.")
    return shape[-1]


def _check_size(n: int, cfg: Config, shape: Shape) -> int:
    if n <= 0:
        raise NotGradable(
            f"Layer '{cfg.layer}' does not fit its input of shape {fmt_shape(shape)}: its "
            "output would be empty, so the model cannot be built."
        )
    if n > MAX_INT:
        raise NotGradable(f"Layer '{cfg.layer}' would produce a dimension of size {n:,}.")
    return n


def conv_length(n: int | None, k: int, s: int, d: int, padding: str) -> int | None:
    """Output length of a convolution or pooling window along one axis (None: unknown)."""
    if n is None:
        return None
    if padding in ("same", "causal"):
        return -(-n // s)
    return (n - ((k - 1) * d + 1)) // s + 1


def spatial_out(
    cfg: Config, shape: Shape, rank: int, kernel: Sequence[int], strides: Sequence[int],
    dilation: Sequence[int], padding: str,
) -> list[int | None]:  # fmt: skip
    out = []
    for i in range(rank):
        n = conv_length(shape[1 + i], kernel[i], strides[i], dilation[i], padding)
        if n is not None and n <= 0:
            window = "×".join(str(k) for k in kernel)
            raise NotGradable(
                f"Layer '{cfg.layer}': a {window} window with stride {strides[i]} does not fit a "
                f"feature map of size {shape[1 + i]}, so the model cannot be built."
            )
        out.append(n)
    return out


def _conv_common(cfg: Config, call: Call) -> tuple[Shape, int, list, int]:
    _channels_last(cfg)
    no_lora(cfg)
    rank = _rank(cfg)
    shape = call.one(rank + 2)
    kernel = cfg.ints("kernel_size", rank)
    strides = cfg.ints("strides", rank, 1)
    dilation = cfg.ints("dilation_rate", rank, 1)
    padding = cfg.choice("padding", "valid", ("valid", "same", "causal"))
    spatial = spatial_out(cfg, shape, rank, kernel, strides, dilation, padding)
    return shape, channels(shape, cfg), spatial, math.prod(kernel)


@register("Conv1D", "Conv2D", "Conv3D", "Convolution1D", "Convolution2D", "Convolution3D")
def _conv(cfg: Config, call: Call) -> Out:
    shape, cin, spatial, k = _conv_common(cfg, call)
    filters, groups = cfg.integer("filters"), cfg.integer("groups", 1)
    if cin % groups or filters % groups:
        raise NotGradable(
            f"Layer '{cfg.layer}': groups={groups} must divide its {cin} input channels and "
            f"{filters} filters."
        )
    params = k * (cin // groups) * filters + (filters if cfg.flag("use_bias", True) else 0)
    return Out([(shape[0], *spatial, filters)], params)


@register("SeparableConv1D", "SeparableConv2D", "SeparableConvolution1D",
          "SeparableConvolution2D")  # fmt: skip
def _separable(cfg: Config, call: Call) -> Out:
    shape, cin, spatial, k = _conv_common(cfg, call)
    filters, dm = cfg.integer("filters"), cfg.integer("depth_multiplier", 1)
    params = k * cin * dm + cin * dm * filters + (filters if cfg.flag("use_bias", True) else 0)
    return Out([(shape[0], *spatial, filters)], params)


@register("DepthwiseConv1D", "DepthwiseConv2D")
def _depthwise(cfg: Config, call: Call) -> Out:
    shape, cin, spatial, k = _conv_common(cfg, call)
    out = cin * cfg.integer("depth_multiplier", 1)
    return Out([(shape[0], *spatial, out)], k * out + (out if cfg.flag("use_bias", True) else 0))


@register("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "Convolution1DTranspose",
          "Convolution2DTranspose", "Convolution3DTranspose")  # fmt: skip
def _conv_transpose(cfg: Config, call: Call) -> Out:
    _channels_last(cfg)
    rank = _rank(cfg)
    shape = call.one(rank + 2)
    cin, filters = channels(shape, cfg), cfg.integer("filters")
    kernel = cfg.ints("kernel_size", rank)
    strides = cfg.ints("strides", rank, 1)
    dilation = cfg.ints("dilation_rate", rank, 1)
    padding = cfg.choice("padding", "valid", ("valid", "same"))
    out_pad = cfg.ints("output_padding", rank, low=0) if cfg.has("output_padding") else None
    spatial = []
    for i in range(rank):
        n = shape[1 + i]
        if n is None:
            spatial.append(None)
            continue
        k = (kernel[i] - 1) * dilation[i] + 1
        if padding == "valid":
            extra = max(k, strides[i]) - k if out_pad is None else out_pad[i]
            size = (n - 1) * strides[i] + k + extra
        elif out_pad is None:
            size = n * strides[i]
        else:
            size = (n - 1) * strides[i] + k % 2 + out_pad[i]
        spatial.append(_check_size(size, cfg, shape))
    params = math.prod(kernel) * cin * filters + (filters if cfg.flag("use_bias", True) else 0)
    return Out([(shape[0], *spatial, filters)], params)


def no_lora(cfg: Config) -> None:
    if cfg.has("lora_rank"):
        raise NotGradable(
            f"Layer '{cfg.layer}' carries a LoRA adapter (lora_rank) on a {cfg.kind}; the grader "
            "accepts LoRA on Dense and Embedding layers only."
        )


def _lora(cfg: Config, rows: int, columns: int, kernel: int) -> tuple[int, int]:
    """(extra weights, weights frozen) of a LoRA adapter: A (rows x r), B (r x columns),
    and the original kernel no longer trained."""
    if not cfg.has("lora_rank"):
        return 0, 0
    return cfg.integer("lora_rank") * (rows + columns), kernel


@register("Dense")
def _dense(cfg: Config, call: Call) -> Out:
    shape = call.one(at_least=2)
    units, cin = cfg.integer("units"), channels(shape, cfg)
    extra, frozen = _lora(cfg, cin, units, cin * units)
    params = cin * units + (units if cfg.flag("use_bias", True) else 0) + extra
    return Out([(*shape[:-1], units)], params, non_trainable=frozen)


@register("Embedding", "ReversibleEmbedding")
def _embedding(cfg: Config, call: Call) -> Out:
    shape = call.one()
    rows, columns = cfg.integer("input_dim"), cfg.integer("output_dim")
    extra, frozen = _lora(cfg, rows, columns, rows * columns)
    size = rows * columns
    if cfg.kind == "ReversibleEmbedding" and not cfg.flag("tie_weights", True):
        size *= 2
    return Out([(*shape, columns)], size + extra, non_trainable=frozen)


# --- pooling -----------------------------------------------------------------


@register("MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
          "AveragePooling3D", "MaxPool1D", "MaxPool2D", "MaxPool3D", "AvgPool1D", "AvgPool2D",
          "AvgPool3D")  # fmt: skip
def _pool(cfg: Config, call: Call) -> Out:
    _channels_last(cfg)
    rank = _rank(cfg)
    shape = call.one(rank + 2)
    pool = cfg.ints("pool_size", rank, 2)
    strides = cfg.ints("strides", rank, list(pool))
    padding = cfg.choice("padding", "valid", ("valid", "same"))
    spatial = spatial_out(cfg, shape, rank, pool, strides, (1,) * rank, padding)
    return Out([(shape[0], *spatial, shape[-1])])


@register("GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
          "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "GlobalAvgPool1D",
          "GlobalAvgPool2D", "GlobalAvgPool3D", "GlobalMaxPool1D", "GlobalMaxPool2D",
          "GlobalMaxPool3D")  # fmt: skip
def _global_pool(cfg: Config, call: Call) -> Out:
    _channels_last(cfg)
    rank = _rank(cfg)
    shape = call.one(rank + 2)
    if cfg.flag("keepdims", False):
        return Out([(shape[0], *([1] * rank), shape[-1])])
    return Out([(shape[0], shape[-1])])


@register("AdaptiveAveragePooling1D", "AdaptiveAveragePooling2D", "AdaptiveAveragePooling3D",
          "AdaptiveMaxPooling1D", "AdaptiveMaxPooling2D", "AdaptiveMaxPooling3D")  # fmt: skip
def _adaptive_pool(cfg: Config, call: Call) -> Out:
    _channels_last(cfg)
    rank = _rank(cfg)
    shape = call.one(rank + 2)
    return Out([(shape[0], *cfg.ints("output_size", rank), shape[-1])])


# --- normalization -----------------------------------------------------------


def _axis_sizes(cfg: Config, shape: Shape, default: object = -1) -> list[int]:
    sizes = []
    for axis in cfg.axes("axis", default, len(shape)):
        if axis == 0 or shape[axis] is None:
            raise NotGradable(f"Layer '{cfg.layer}' normalizes over an axis of unknown size.")
        sizes.append(shape[axis])
    return sizes


@register("BatchNormalization")
def _batchnorm(cfg: Config, call: Call) -> Out:
    shape = call.one()
    c = math.prod(_axis_sizes(cfg, shape))
    trainable = c * (cfg.flag("center", True) + cfg.flag("scale", True))
    return Out([shape], trainable + 2 * c, non_trainable=2 * c)


@register("LayerNormalization")
def _layernorm(cfg: Config, call: Call) -> Out:
    shape = call.one()
    c = math.prod(_axis_sizes(cfg, shape))
    if cfg.flag("rms_scaling", False):
        return Out([shape], c)
    return Out([shape], c * (cfg.flag("center", True) + cfg.flag("scale", True)))


@register("GroupNormalization")
def _groupnorm(cfg: Config, call: Call) -> Out:
    shape = call.one()
    (c,) = _axis_sizes(cfg, shape)
    groups = cfg.integer("groups", 32)
    if c % groups:
        raise NotGradable(f"Layer '{cfg.layer}': {groups} groups do not divide {c} channels.")
    return Out([shape], c * (cfg.flag("center", True) + cfg.flag("scale", True)))


@register("RMSNormalization")
def _rmsnorm(cfg: Config, call: Call) -> Out:
    shape = call.one()
    return Out([shape], math.prod(_axis_sizes(cfg, shape)))


@register("UnitNormalization")
def _unitnorm(cfg: Config, call: Call) -> Out:
    shape = call.one()
    cfg.axes("axis", -1, len(shape))
    return Out([shape])


@register("Normalization")
def _normalization(cfg: Config, call: Call) -> Out:
    shape = call.one()
    axis = cfg.raw.get("axis", -1)
    kept = [] if axis is None else _axis_sizes(cfg, shape)
    if cfg.has("mean") or cfg.has("variance"):
        held = sum(
            numbers_count(cfg.get(key, 0), f"Layer '{cfg.layer}' {key}", MAX_CONFIG_NUMBERS)
            for key in ("mean", "variance")
        )
        return Out([shape], constants=held)
    size = math.prod(kept)
    return Out([shape], 2 * size + 1, non_trainable=2 * size + 1)


@register("SpectralNormalization")
def _spectral(cfg: Config, call: Call) -> Out:
    """The wrapped layer's weights plus ``vector_u``, one number per column of its kernel."""
    inner_obj = cfg.get("layer")
    kind = inner_obj.get("class_name") if isinstance(inner_obj, dict) else None
    inner = infer_layer(inner_obj, call)
    inner_cfg = Config(inner_obj.get("config") if isinstance(inner_obj, dict) else None, str(kind))
    if kind in ("Dense", "Conv1D", "Conv2D", "Conv3D"):
        columns = inner.shape[-1]
    elif kind in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"):
        columns = channels(call.one(), cfg)  # kernel (..., filters, input channels)
    elif kind in ("DepthwiseConv1D", "DepthwiseConv2D"):
        columns = inner_cfg.integer("depth_multiplier", 1)
    elif kind == "Embedding":
        columns = inner_cfg.integer("output_dim")
    else:
        raise NotGradable(
            f"Layer '{cfg.layer}': SpectralNormalization wraps a {kind}, which has no kernel."
        )
    return Out(inner.shapes, inner.params + columns, inner.non_trainable + columns)


# --- activations, regularization, identity-shaped layers ---------------------

IDENTITY_LAYERS = (
    "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "Identity", "Masking",
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
    "GaussianDropout", "AlphaDropout", "ActivityRegularization",
    # Image augmentation: the identity at inference, same shape in training.
    "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom", "RandomContrast",
    "RandomBrightness", "RandomGrayscale", "RandomHue", "RandomSaturation", "RandomErasing",
    "RandomColorDegeneration", "RandomColorJitter", "RandomElasticTransform",
    "RandomGaussianBlur", "RandomInvert", "RandomPerspective", "RandomPosterization",
    "RandomSharpness", "RandomShear", "AutoContrast", "Equalization", "Solarization",
    "AugMix", "CutMix", "MixUp", "RandAugment", "ContrastLimitedAdaptiveHistogramEqualization",
    "MaxNumBoundingBoxes", "InputLayer",
)  # fmt: skip


@register(*IDENTITY_LAYERS)
def _identity(cfg: Config, call: Call) -> Out:
    return Out([call.one()])


@register("PReLU")
def _prelu(cfg: Config, call: Call) -> Out:
    shape = call.one(at_least=2)
    alpha = list(shape[1:])
    shared = cfg.get("shared_axes")
    if shared is not None:
        for axis in shared if isinstance(shared, list) else [shared]:
            index = as_int(axis, error=lambda why: cfg.bad("shared_axes", why))
            if index > len(alpha):
                raise cfg.bad("shared_axes", f"names axis {index} of a rank-{len(shape)} input")
            alpha[index - 1] = 1
    if None in alpha:
        raise NotGradable(f"Layer '{cfg.layer}' has an input of unknown size.")
    return Out([shape], math.prod(alpha))  # type: ignore[arg-type]


# --- reshaping ---------------------------------------------------------------


@register("Flatten")
def _flatten(cfg: Config, call: Call) -> Out:
    shape = call.one()
    rest = shape[1:]
    return Out([(shape[0], None if None in rest else math.prod(rest))])  # type: ignore[arg-type]


def reshape_to(shape: Shape, target: list[int], what: str) -> Shape:
    """``shape[0]`` kept, the rest reshaped to ``target`` (one -1 allowed)."""
    known = shape[1:]
    if target.count(-1) > 1:
        raise NotGradable(f"{what} has more than one -1 in its target shape.")
    if None not in known:
        total = math.prod(known)  # type: ignore[arg-type]
        if -1 in target:
            rest = math.prod(v for v in target if v != -1)
            if total % rest:
                raise NotGradable(f"{what}: {target} does not fit {fmt_shape(shape)}.")
            target[target.index(-1)] = total // rest
        elif math.prod(target) != total:
            raise NotGradable(f"{what}: {target} does not fit {fmt_shape(shape)}.")
    return (shape[0], *(None if v == -1 else v for v in target))


@register("Reshape")
def _reshape(cfg: Config, call: Call) -> Out:
    shape = call.one()
    raw = cfg.get("target_shape")
    if not isinstance(raw, list) or len(raw) > MAX_RANK:
        raise cfg.bad("target_shape", f"is not a list of at most {MAX_RANK} sizes")
    target = [as_int(v, low=-1, error=lambda why: cfg.bad("target_shape", why)) for v in raw]
    if 0 in target:
        raise cfg.bad("target_shape", "contains 0")
    return Out([reshape_to(shape, target, f"Layer '{cfg.layer}'")])


@register("Permute")
def _permute(cfg: Config, call: Call) -> Out:
    shape = call.one()
    dims = cfg.ints("dims", len(shape) - 1)
    if sorted(dims) != list(range(1, len(shape))):
        raise cfg.bad("dims", "is not a permutation of the non-batch axes")
    return Out([(shape[0], *(shape[d] for d in dims))])


@register("RepeatVector")
def _repeat_vector(cfg: Config, call: Call) -> Out:
    shape = call.one(2)
    return Out([(shape[0], cfg.integer("n"), shape[1])])


def _sides(cfg: Config, key: str, rank: int, default: int) -> list[tuple[int, int]]:
    """Keras' padding/cropping: an int, one int per axis, or a pair per axis."""
    value = cfg.get(key, default)
    if rank == 1 and isinstance(value, list) and len(value) == 2 and not isinstance(value[0], list):
        value = [value]  # Cropping1D((1, 2)): one pair
    items = value if isinstance(value, list) else [value] * rank
    if len(items) != rank:
        raise cfg.bad(key, f"should have {rank} entries")
    out = []
    for item in items:
        pair = item if isinstance(item, list) else [item, item]
        if len(pair) != 2:
            raise cfg.bad(key, "should hold pairs")
        a, b = (as_int(v, low=0, error=lambda why: cfg.bad(key, why)) for v in pair)
        out.append((a, b))
    return out


def _pad_or_crop(cfg: Config, call: Call, key: str, sign: int) -> Out:
    _channels_last(cfg)
    rank = _rank(cfg)
    shape = call.one(rank + 2)
    sides = _sides(cfg, key, rank, 1)
    spatial = [
        None if n is None else _check_size(n + sign * (a + b), cfg, shape)
        for n, (a, b) in zip(shape[1:-1], sides, strict=True)
    ]
    return Out([(shape[0], *spatial, shape[-1])])


@register("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D")
def _zero_padding(cfg: Config, call: Call) -> Out:
    return _pad_or_crop(cfg, call, "padding", +1)


@register("Cropping1D", "Cropping2D", "Cropping3D")
def _cropping(cfg: Config, call: Call) -> Out:
    return _pad_or_crop(cfg, call, "cropping", -1)


@register("UpSampling1D", "UpSampling2D", "UpSampling3D")
def _upsampling(cfg: Config, call: Call) -> Out:
    _channels_last(cfg)
    rank = _rank(cfg)
    shape = call.one(rank + 2)
    size = cfg.ints("size", rank, 2)
    spatial = [None if n is None else n * f for n, f in zip(shape[1:-1], size, strict=True)]
    return Out([(shape[0], *spatial, shape[-1])])


# --- preprocessing -----------------------------------------------------------


@register("Rescaling")
def _rescaling(cfg: Config, call: Call) -> Out:
    held = 0
    for key in ("scale", "offset"):
        value = cfg.get(key, 0.0)
        if isinstance(value, list):
            held += numbers_count(value, f"Layer '{cfg.layer}' {key}", MAX_CONFIG_NUMBERS)
        else:
            cfg.number(key, 0.0)
    return Out([call.one()], constants=held)


@register("Resizing", "CenterCrop", "RandomCrop")
def _resize(cfg: Config, call: Call) -> Out:
    _channels_last(cfg)
    shape = call.one(4)
    return Out([(shape[0], cfg.integer("height"), cfg.integer("width"), shape[-1])])


@register("Discretization")
def _discretization(cfg: Config, call: Call) -> Out:
    shape = call.one()
    if cfg.choice("output_mode", "int", ("int", "one_hot", "multi_hot", "count")) != "int":
        raise NotGradable(
            f"Layer '{cfg.layer}': only output_mode='int' is supported on image tensors."
        )
    boundaries = cfg.get("bin_boundaries", [])
    return Out([shape], constants=numbers_count(boundaries, cfg.layer, MAX_CONFIG_NUMBERS))


@register("Pipeline")
def _pipeline(cfg: Config, call: Call) -> Out:
    steps = cfg.get("layers")
    if not isinstance(steps, list):
        raise cfg.bad("layers", "is not a list")
    total = Out(call.inputs)
    for step in steps:
        out = infer_layer(step, Call([total.shape]))
        total = Out(out.shapes, total.params + out.params, total.non_trainable + out.non_trainable,
                    total.constants + out.constants)  # fmt: skip
    return total


# --- merging -----------------------------------------------------------------


def broadcast(shapes: list[Shape], what: str) -> Shape:
    """NumPy broadcasting of shapes whose sizes may be unknown (None)."""
    rank = max(len(s) for s in shapes)
    out: list[int | None] = []
    for i in range(rank):
        dims = {s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0}
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise NotGradable(
                f"{what} combines tensors of incompatible shapes "
                f"{' and '.join(fmt_shape(s) for s in shapes[:2])}."
            )
        if known:
            out.append(known.pop())
        elif None in dims:
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


@register("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
def _merge(cfg: Config, call: Call) -> Out:
    if len(call.inputs) < 2:
        raise NotGradable(f"Merge layer '{cfg.layer}' needs at least two inputs.")
    return Out([broadcast(call.inputs, f"Layer '{cfg.layer}'")])


def concatenate(shapes: list[Shape], axis_value: object, what: str) -> Shape:
    if len(shapes) < 1 or len({len(s) for s in shapes}) != 1:
        raise NotGradable(f"{what} needs inputs of the same rank.")
    axis = as_int(axis_value, low=-MAX_INT) % len(shapes[0])
    out: list[int | None] = []
    for i in range(len(shapes[0])):
        dims = [s[i] for s in shapes]
        if i == axis:
            out.append(None if None in dims else sum(dims))  # type: ignore[arg-type]
            continue
        known = {d for d in dims if d is not None}
        if len(known) > 1:
            raise NotGradable(f"{what} joins tensors of different shapes.")
        out.append(known.pop() if known else None)
    return tuple(out)


@register("Concatenate")
def _concatenate(cfg: Config, call: Call) -> Out:
    if len(call.inputs) < 2:
        raise NotGradable(f"Layer '{cfg.layer}' needs at least two inputs.")
    return Out([concatenate(call.inputs, cfg.get("axis", -1), f"Layer '{cfg.layer}'")])


@register("Dot")
def _dot(cfg: Config, call: Call) -> Out:
    if len(call.inputs) != 2:
        raise NotGradable(f"Layer '{cfg.layer}' needs exactly two inputs.")
    a, b = call.inputs
    axes = cfg.get("axes")
    pair = axes if isinstance(axes, list) else [axes, axes]
    if len(pair) != 2:
        raise cfg.bad("axes", "should be one or two axes")
    ia, ib = (as_int(v, low=-MAX_INT) % len(s) for v, s in zip(pair, (a, b), strict=True))
    if a[ia] is not None and b[ib] is not None and a[ia] != b[ib]:
        raise NotGradable(f"Layer '{cfg.layer}' multiplies axes of different sizes.")
    out = [*a[:ia], *a[ia + 1 :], *b[1:ib], *b[ib + 1 :]]
    if len(out) == 1:
        out.append(1)
    return Out([tuple(out)])
