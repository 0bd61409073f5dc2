"""Shape and weight inference for attention, recurrent and wrapper layers.

These appear in image models as heads on top of a convolutional trunk (patches
reshaped to a sequence, then attention or an LSTM). Wrappers (Bidirectional,
TimeDistributed, RNN with a cell) infer their inner layer through the catalogue.
"""

from __future__ import annotations

import math
import re

from grader.errors import NotGradable
from grader.inspection.layers_core import broadcast, channels, no_lora, spatial_out
from grader.inspection.registry import Call, Out, infer_layer, positions, register
from grader.inspection.values import MAX_RANK, Config, Shape, as_int, fmt_shape

# --- attention ---------------------------------------------------------------


def _sequence_inputs(cfg: Config, call: Call) -> tuple[Shape, Shape, Shape]:
    """Query, value and key shapes, whether passed positionally (``[q, v, k]``) or by name."""
    positional = call.positional
    query = call.named.get("query") or (positional[0] if positional else None)
    value = call.named.get("value") or (positional[1] if len(positional) > 1 else None)
    if query is None or value is None:
        raise NotGradable(f"Attention layer '{cfg.layer}' needs a query and a value.")
    key = call.named.get("key") or (positional[2] if len(positional) > 2 else value)
    return query, value, key


def _out_dims(cfg: Config, default: int) -> tuple[int, ...]:
    raw = cfg.get("output_shape")
    if raw is None:
        return (default,)
    items = raw if isinstance(raw, list) else [raw]
    return tuple(as_int(v, error=lambda why: cfg.bad("output_shape", why)) for v in items)


@register("MultiHeadAttention")
def _multi_head_attention(cfg: Config, call: Call) -> Out:
    query, value, key = _sequence_inputs(cfg, call)
    axes = cfg.get("attention_axes")
    if axes is not None and cfg.axes("attention_axes", None, len(query)) != list(
        range(1, len(query) - 1)
    ):
        raise NotGradable(f"Layer '{cfg.layer}': custom attention_axes are not supported.")
    heads, key_dim = cfg.integer("num_heads"), cfg.integer("key_dim")
    value_dim = cfg.integer("value_dim", key_dim)
    bias = cfg.flag("use_bias", True)
    q, k, v = (channels(s, cfg) for s in (query, key, value))
    out = _out_dims(cfg, q)
    params = (q + k) * heads * key_dim + v * heads * value_dim + heads * value_dim * math.prod(out)
    if bias:
        params += 2 * heads * key_dim + heads * value_dim + math.prod(out)
    scores = heads * positions(query) * positions(key)
    return Out([(*query[:-1], *out)], params, scratch=scores)


@register("GroupedQueryAttention", "GroupQueryAttention")
def _group_query_attention(cfg: Config, call: Call) -> Out:
    query, value, key = _sequence_inputs(cfg, call)
    head, nq, nkv = (
        cfg.integer("head_dim"),
        cfg.integer("num_query_heads"),
        cfg.integer("num_key_value_heads"),
    )
    if nq % nkv:
        raise NotGradable(f"Layer '{cfg.layer}': key/value heads must divide query heads.")
    q, k, v = (channels(s, cfg) for s in (query, key, value))
    gates = 2 if cfg.flag("use_gate", False) else 1
    params = gates * q * nq * head + (k + v) * nkv * head + nq * head * q
    if cfg.flag("use_bias", True):
        params += gates * nq * head + 2 * nkv * head + q
    scores = nq * positions(query) * positions(key)
    return Out([query], params, scratch=scores)


@register("Attention", "AdditiveAttention")
def _attention(cfg: Config, call: Call) -> Out:
    query, value, key = _sequence_inputs(cfg, call)
    params = 0
    if cfg.flag("use_scale", cfg.kind == "AdditiveAttention"):
        params += channels(query, cfg) if cfg.kind == "AdditiveAttention" else 1
    if cfg.kind == "Attention" and cfg.choice("score_mode", "dot", ("dot", "concat")) == "concat":
        params += 1
    scores = positions(query) * positions(key)
    return Out([(*query[:-1], value[-1])], params, scratch=scores)


_EINSUM = re.compile(r"^(\.\.\.)?([a-zA-Z]+)(\.\.\.)?,([a-zA-Z]+)->(\.\.\.)?([a-zA-Z]+)(\.\.\.)?$")


@register("EinsumDense")
def _einsum_dense(cfg: Config, call: Call) -> Out:
    """Port of Keras' ``_analyze_split_string`` (kernel, bias and output shapes)."""
    no_lora(cfg)
    shape = call.one()
    equation = cfg.get("equation")
    match = _EINSUM.match(equation) if isinstance(equation, str) else None
    if match is None or bool(match.group(1)) != bool(match.group(5)) or (match.group(7) and \
            not match.group(3)):  # fmt: skip
        raise cfg.bad("equation", "is not an equation of the form ab,bc->ac")
    left, in_spec, right, w_spec, _, out_spec, _ = match.groups()
    if right and len(in_spec) < 2:
        raise cfg.bad("equation", "is not an equation of the form ab,bc->ac")
    elided = len(shape) - len(in_spec)
    if elided < 0 or (elided and not (left or right)):
        raise NotGradable(f"Layer '{cfg.layer}': its equation does not fit {fmt_shape(shape)}.")
    raw = cfg.get("output_shape")
    items = raw if isinstance(raw, list) else [raw]
    if len(items) > MAX_RANK:
        raise cfg.bad("output_shape", f"has more than {MAX_RANK} sizes")
    output: list[int | None] = [
        None if v is None else as_int(v, error=lambda why: cfg.bad("output_shape", why))
        for v in items
    ]
    output.insert(0, shape[0])
    if left:
        for i in range(1, elided):
            output.insert(1, shape[i])
        in_map = {d: i + elided - len(shape) for i, d in enumerate(in_spec)}
        out_map = {d: i + elided for i, d in enumerate(out_spec)}
    else:
        output.extend(shape[len(shape) - elided :] if elided else [])
        in_map = {d: i for i, d in enumerate(in_spec)}
        out_map = {d: i for i, d in enumerate(out_spec)}
    try:
        for d in in_spec:
            if d in out_map and output[out_map[d]] is not None and \
                    output[out_map[d]] != shape[in_map[d]]:  # fmt: skip
                raise NotGradable(f"Layer '{cfg.layer}': output and input sizes disagree.")
        kernel = []
        for d in w_spec:
            size = output[out_map[d]] if d in out_map else shape[in_map[d]]
            if size is None:
                raise NotGradable(f"Layer '{cfg.layer}' has a weight of unknown size.")
            kernel.append(size)
        bias = 0
        bias_axes = cfg.get("bias_axes")
        if bias_axes is not None:
            if not isinstance(bias_axes, str) or any(c not in out_spec for c in bias_axes):
                raise cfg.bad("bias_axes", "names axes not in the output")
            offset = elided if left else 0
            bias = math.prod(output[out_spec.index(c) + offset] or 1 for c in bias_axes)
    except (KeyError, IndexError):
        raise NotGradable(f"Layer '{cfg.layer}': its equation does not fit its input.") from None
    return Out([tuple(output)], math.prod(kernel) + bias)


# --- recurrent ---------------------------------------------------------------


def _gates(kind: str, cfg: Config) -> tuple[int, int]:
    """(number of gates, extra bias per gate unit) of a recurrent cell."""
    if kind.startswith("LSTM"):
        return 4, 0
    if kind.startswith("GRU"):
        return 3, 1 if cfg.flag("reset_after", True) and cfg.flag("use_bias", True) else 0
    return 1, 0


def _cell_params(kind: str, cfg: Config, features: int) -> tuple[int, int]:
    """(weights, state size) of one recurrent cell."""
    units = cfg.integer("units")
    gates, extra = _gates(kind, cfg)
    bias = gates * units * (1 + extra) if cfg.flag("use_bias", True) else 0
    return gates * units * (features + units) + bias, units


_CELLS = {"SimpleRNNCell": "SimpleRNN", "LSTMCell": "LSTM", "GRUCell": "GRU"}


def _cells(cfg: Config) -> list[tuple[str, Config]]:
    """The cell(s) of a generic ``RNN`` layer, as (kind, config)."""
    cell = cfg.get("cell")
    stack = cell.get("config", {}).get("cells") if isinstance(cell, dict) and \
        cell.get("class_name") == "StackedRNNCells" else [cell]  # fmt: skip
    out = []
    for item in stack if isinstance(stack, list) else []:
        kind = item.get("class_name") if isinstance(item, dict) else None
        if kind not in _CELLS:
            raise NotGradable(
                f"Layer '{cfg.layer}' holds a cell that is not a built-in Keras cell."
            )
        out.append((kind, Config(item.get("config"), kind)))
    if not out:
        raise NotGradable(f"Layer '{cfg.layer}' has no cell.")
    return out


def _no_states(cfg: Config) -> None:
    if cfg.flag("return_state", False):
        raise NotGradable(
            f"Layer '{cfg.layer}' returns its states as extra outputs (return_state=True); the "
            "grader accepts recurrent layers that return their output only."
        )


def _sequence_out(cfg: Config, shape: Shape, units: int, params: int) -> Out:
    _no_states(cfg)
    if cfg.flag("return_sequences", False):
        return Out([(shape[0], shape[1], units)], params)
    return Out([(shape[0], units)], params)


@register("SimpleRNN", "LSTM", "GRU")
def _recurrent(cfg: Config, call: Call) -> Out:
    shape = call.one(3)
    params, units = _cell_params(cfg.kind, cfg, channels(shape, cfg))
    return _sequence_out(cfg, shape, units, params)


@register("RNN")
def _rnn(cfg: Config, call: Call) -> Out:
    shape = call.one(3)
    features, params = channels(shape, cfg), 0
    for kind, cell in _cells(cfg):
        weights, features = _cell_params(kind, cell, features)
        params += weights
    return _sequence_out(cfg, shape, features, params)


@register("ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")
def _conv_lstm(cfg: Config, call: Call) -> Out:
    rank = int(cfg.kind[-2])
    shape = call.one(rank + 3)
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise NotGradable(f"Layer '{cfg.layer}': only channels_last is supported.")
    cin, filters = channels(shape, cfg), cfg.integer("filters")
    kernel = cfg.ints("kernel_size", rank)
    strides = cfg.ints("strides", rank, 1)
    dilation = cfg.ints("dilation_rate", rank, 1)
    padding = cfg.choice("padding", "valid", ("valid", "same"))
    spatial = spatial_out(cfg, (shape[0], *shape[2:]), rank, kernel, strides, dilation, padding)
    k = math.prod(kernel)
    params = k * cin * 4 * filters + k * filters * 4 * filters
    params += 4 * filters if cfg.flag("use_bias", True) else 0
    _no_states(cfg)
    if cfg.flag("return_sequences", False):
        return Out([(shape[0], shape[1], *spatial, filters)], params)
    return Out([(shape[0], *spatial, filters)], params)


# --- layers that Keras' own applications define -------------------------------


@register("LayerScale")  # keras.applications.ConvNeXt*
def _layer_scale(cfg: Config, call: Call) -> Out:
    shape = call.one()
    if cfg.integer("projection_dim") != channels(shape, cfg):
        raise cfg.bad("projection_dim", "differs from the number of input channels")
    cfg.number("init_values")
    return Out([shape], cfg.integer("projection_dim"))


@register("CustomScaleLayer")  # keras.applications.InceptionResNetV2
def _custom_scale(cfg: Config, call: Call) -> Out:
    if len(call.inputs) != 2:
        raise NotGradable(f"Layer '{cfg.layer}' needs exactly two inputs.")
    cfg.number("scale")
    return Out([broadcast(call.inputs, f"Layer '{cfg.layer}'")])


# --- wrappers ----------------------------------------------------------------


@register("Bidirectional")
def _bidirectional(cfg: Config, call: Call) -> Out:
    forward = infer_layer(cfg.get("layer"), call)
    backward = infer_layer(cfg.get("backward_layer"), call) if cfg.has("backward_layer") \
        else forward  # fmt: skip
    mode = cfg.raw.get("merge_mode", "concat")
    out = forward.shape
    if mode is None:  # both directions returned, as two outputs
        return Out([out, backward.shape], forward.params + backward.params,
                   forward.non_trainable + backward.non_trainable)  # fmt: skip
    if mode == "concat":
        last = None if None in (out[-1], backward.shape[-1]) else out[-1] + backward.shape[-1]
        out = (*out[:-1], last)  # type: ignore[operator]
    elif mode not in ("sum", "mul", "ave"):
        raise cfg.bad("merge_mode", "must be concat, sum, mul or ave")
    return Out([out], forward.params + backward.params,
               forward.non_trainable + backward.non_trainable)  # fmt: skip


@register("TimeDistributed")
def _time_distributed(cfg: Config, call: Call) -> Out:
    shape = call.one(at_least=3)
    inner = infer_layer(cfg.get("layer"), Call([(shape[0], *shape[2:])]))
    return Out([(shape[0], shape[1], *inner.shape[1:])], inner.params, inner.non_trainable,
               inner.constants, inner.scratch)  # fmt: skip
