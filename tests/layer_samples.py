"""Representative uses of every supported Keras layer and operation, for the differential tests.

Each sample is ``(input shape, build)``: ``build(keras, x)`` applies the layer
(or operation) to the input tensor ``x`` and returns the output tensor. The
differential test saves the model and compares the grader's static inference
with Keras' own numbers, so a sample is a claim checked against Keras.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Sample = tuple[tuple[int | None, ...], Callable[[Any, Any], Any]]
IMG = (12, 12, 3)
SEQ = (6, 5)
VOL = (6, 6, 6, 2)


def _l(name: str, *args: Any, shape: tuple = IMG, **kwargs: Any) -> Sample:
    return shape, lambda keras, x: getattr(keras.layers, name)(*args, **kwargs)(x)


def _two(name: str, **kwargs: Any) -> Sample:
    """A merge or attention layer on the input and a transformed copy of it."""

    def build(keras: Any, x: Any) -> Any:
        y = keras.layers.Conv2D(3, 1)(x)
        return getattr(keras.layers, name)(**kwargs)([x, y])

    return IMG, build


def _seq(name: str, **kwargs: Any) -> Sample:
    def build(keras: Any, x: Any) -> Any:
        return getattr(keras.layers, name)(**kwargs)(x, x)

    return SEQ, build


def _wrap(
    wrapper: str, inner: str, inner_kwargs: dict, shape: tuple = SEQ, **kwargs: Any
) -> Sample:
    def build(keras: Any, x: Any) -> Any:
        layer = getattr(keras.layers, inner)(**inner_kwargs)
        return getattr(keras.layers, wrapper)(layer, **kwargs)(x)

    return shape, build


def _rnn_cell(cell: str) -> Sample:
    def build(keras: Any, x: Any) -> Any:
        cells = [getattr(keras.layers, cell)(4), getattr(keras.layers, cell)(3)]
        return keras.layers.RNN(keras.layers.StackedRNNCells(cells), return_sequences=True)(x)

    return SEQ, build


def _pipeline(keras: Any, x: Any) -> Any:
    steps = [keras.layers.RandomFlip(), keras.layers.Resizing(8, 8), keras.layers.Rescaling(0.5)]
    return keras.layers.Pipeline(steps)(x)


LAYER_SAMPLES: dict[str, list[Sample]] = {
    "Conv1D": [_l("Conv1D", 4, 3, shape=SEQ), _l("Conv1D", 4, 2, padding="causal", shape=SEQ),
               _l("Conv1D", 10, 3, strides=2, groups=5, padding="same", shape=(9, 10))],
    "Conv2D": [_l("Conv2D", 8, 3), _l("Conv2D", 6, (3, 5), strides=2, padding="same",
               use_bias=False), _l("Conv2D", 6, 3, dilation_rate=2, groups=3)],
    "Conv3D": [_l("Conv3D", 4, 3, shape=VOL), _l("Conv3D", 2, 2, strides=2, shape=VOL)],
    "Conv1DTranspose": [_l("Conv1DTranspose", 4, 3, strides=2, shape=SEQ),
                        _l("Conv1DTranspose", 4, 3, padding="same", shape=SEQ)],
    "Conv2DTranspose": [_l("Conv2DTranspose", 8, 3, strides=2),
                        _l("Conv2DTranspose", 4, 4, strides=2, padding="same"),
                        _l("Conv2DTranspose", 4, 3, strides=2, output_padding=1),
                        _l("Conv2DTranspose", 4, 3, strides=2, padding="same", output_padding=1),
                        _l("Conv2DTranspose", 4, 3, dilation_rate=2)],
    "Conv3DTranspose": [_l("Conv3DTranspose", 2, 2, strides=2, shape=VOL)],
    "SeparableConv1D": [_l("SeparableConv1D", 4, 3, depth_multiplier=2, shape=SEQ)],
    "SeparableConv2D": [_l("SeparableConv2D", 8, 3), _l("SeparableConv2D", 8, 3, strides=2,
                        padding="same", depth_multiplier=3, use_bias=False)],
    "DepthwiseConv1D": [_l("DepthwiseConv1D", 3, depth_multiplier=2, shape=SEQ)],
    "DepthwiseConv2D": [_l("DepthwiseConv2D", 3), _l("DepthwiseConv2D", 5, strides=2,
                        padding="same", depth_multiplier=2)],
    "Dense": [_l("Dense", 7), _l("Dense", 3, use_bias=False, shape=SEQ),
              _l("Dense", 6, lora_rank=2, shape=(5,))],
    "EinsumDense": [_l("EinsumDense", "ab,bc->ac", output_shape=4, bias_axes="c", shape=(5,)),
                    _l("EinsumDense", "abc,cd->abd", output_shape=(None, 4), shape=SEQ),
                    _l("EinsumDense", "...b,bc->...c", output_shape=4, bias_axes="c")],
    "Embedding": [_l("Embedding", 10, 4, shape=(6,)), _l("Embedding", 10, 4, lora_rank=2,
                  shape=(6,)),
                  (SEQ[:1], lambda keras, x: keras.layers.LSTM(3)(
                      keras.layers.Embedding(10, 4, mask_zero=True)(x)))],
    "ReversibleEmbedding": [_l("ReversibleEmbedding", 10, 4, shape=(6,)),
                            _l("ReversibleEmbedding", 10, 4, tie_weights=False, shape=(6,))],
    "MaxPooling1D": [_l("MaxPooling1D", shape=SEQ)],
    "MaxPooling2D": [_l("MaxPooling2D"), _l("MaxPooling2D", 3, strides=2, padding="same")],
    "MaxPooling3D": [_l("MaxPooling3D", shape=VOL)],
    "AveragePooling1D": [_l("AveragePooling1D", 3, strides=1, padding="same", shape=SEQ)],
    "AveragePooling2D": [_l("AveragePooling2D", (2, 3))],
    "AveragePooling3D": [_l("AveragePooling3D", 2, shape=VOL)],
    "GlobalAveragePooling1D": [_l("GlobalAveragePooling1D", shape=SEQ)],
    "GlobalAveragePooling2D": [_l("GlobalAveragePooling2D"),
                               _l("GlobalAveragePooling2D", keepdims=True)],
    "GlobalAveragePooling3D": [_l("GlobalAveragePooling3D", shape=VOL)],
    "GlobalMaxPooling1D": [_l("GlobalMaxPooling1D", keepdims=True, shape=SEQ)],
    "GlobalMaxPooling2D": [_l("GlobalMaxPooling2D")],
    "GlobalMaxPooling3D": [_l("GlobalMaxPooling3D", shape=VOL)],
    "AdaptiveAveragePooling1D": [_l("AdaptiveAveragePooling1D", 3, shape=SEQ)],
    "AdaptiveAveragePooling2D": [_l("AdaptiveAveragePooling2D", (4, 3))],
    "AdaptiveAveragePooling3D": [_l("AdaptiveAveragePooling3D", 2, shape=VOL)],
    "AdaptiveMaxPooling1D": [_l("AdaptiveMaxPooling1D", 2, shape=SEQ)],
    "AdaptiveMaxPooling2D": [_l("AdaptiveMaxPooling2D", 5)],
    "AdaptiveMaxPooling3D": [_l("AdaptiveMaxPooling3D", 3, shape=VOL)],
    "BatchNormalization": [_l("BatchNormalization"), _l("BatchNormalization", center=False),
                           _l("BatchNormalization", axis=1, scale=False)],
    "LayerNormalization": [_l("LayerNormalization"), _l("LayerNormalization", axis=[1, 2, 3]),
                           _l("LayerNormalization", rms_scaling=True), _l("LayerNormalization",
                           scale=False)],
    "GroupNormalization": [_l("GroupNormalization", groups=3), _l("GroupNormalization", groups=1,
                           center=False)],
    "RMSNormalization": [_l("RMSNormalization")],
    "UnitNormalization": [_l("UnitNormalization"), _l("UnitNormalization", axis=[1, 2])],
    "Normalization": [_l("Normalization"), _l("Normalization", axis=None),
                      _l("Normalization", mean=[0.5, 0.4, 0.3], variance=[0.1, 0.2, 0.3]),
                      _l("Normalization", axis=(1, 2, 3))],
    "SpectralNormalization": [_wrap("SpectralNormalization", "Dense", {"units": 4}),
                              _wrap("SpectralNormalization", "Conv2DTranspose", {"filters": 4,
                                    "kernel_size": 3}, shape=IMG),
                              _wrap("SpectralNormalization", "DepthwiseConv2D", {"kernel_size": 3,
                                    "depth_multiplier": 2}, shape=IMG),
                              _wrap("SpectralNormalization", "Embedding", {"input_dim": 10,
                                    "output_dim": 3}, shape=(6,)),
                              _wrap("SpectralNormalization", "Conv2D", {"filters": 4,
                                    "kernel_size": 3}, shape=IMG)],
    "PReLU": [_l("PReLU"), _l("PReLU", shared_axes=[1, 2])],
    "Flatten": [_l("Flatten")],
    "Reshape": [_l("Reshape", (-1, 3)), _l("Reshape", (6, 6, 12))],
    "Permute": [_l("Permute", (3, 1, 2))],
    "RepeatVector": [_l("RepeatVector", 4, shape=(5,))],
    "Cropping1D": [_l("Cropping1D", (1, 2), shape=SEQ)],
    "Cropping2D": [_l("Cropping2D", ((1, 2), (3, 0))), _l("Cropping2D", 2)],
    "Cropping3D": [_l("Cropping3D", 1, shape=VOL)],
    "ZeroPadding1D": [_l("ZeroPadding1D", (2, 1), shape=SEQ)],
    "ZeroPadding2D": [_l("ZeroPadding2D", ((1, 2), (0, 3))), _l("ZeroPadding2D", 2)],
    "ZeroPadding3D": [_l("ZeroPadding3D", (1, 2, 0), shape=VOL)],
    "UpSampling1D": [_l("UpSampling1D", 3, shape=SEQ)],
    "UpSampling2D": [_l("UpSampling2D", (2, 3)), _l("UpSampling2D", 2, interpolation="bilinear")],
    "UpSampling3D": [_l("UpSampling3D", 2, shape=VOL)],
    "Rescaling": [_l("Rescaling", 1 / 255), _l("Rescaling", 1 / 127.5, offset=-1)],
    "Resizing": [_l("Resizing", 20, 16)],
    "CenterCrop": [_l("CenterCrop", 8, 6)],
    "RandomCrop": [_l("RandomCrop", 8, 8)],
    "Discretization": [_l("Discretization", bin_boundaries=[0.0, 0.5])],
    "Pipeline": [(IMG, _pipeline)],
    "Add": [_two("Add")], "Subtract": [_two("Subtract")], "Multiply": [_two("Multiply")],
    "Average": [_two("Average")], "Maximum": [_two("Maximum")], "Minimum": [_two("Minimum")],
    "Concatenate": [_two("Concatenate"), _two("Concatenate", axis=1)],
    "Dot": [(SEQ, lambda keras, x: keras.layers.Dot(axes=2)([x, x])),
            (SEQ, lambda keras, x: keras.layers.Dot(axes=(1, 1))([x, x]))],
    "MultiHeadAttention": [_seq("MultiHeadAttention", num_heads=2, key_dim=3),
                           _seq("MultiHeadAttention", num_heads=3, key_dim=2, value_dim=4,
                                output_shape=7, use_bias=False)],
    "GroupedQueryAttention": [_seq("GroupQueryAttention", head_dim=4, num_query_heads=4,
                                 num_key_value_heads=2)],
    "Attention": [(SEQ, lambda keras, x: keras.layers.Attention()([x, x])),
                  (SEQ, lambda keras, x: keras.layers.Attention(use_scale=True,
                   score_mode="concat")([x, x, x]))],
    "AdditiveAttention": [(SEQ, lambda keras, x: keras.layers.AdditiveAttention()([x, x]))],
    "SimpleRNN": [_l("SimpleRNN", 4, shape=SEQ)],
    "LSTM": [_l("LSTM", 4, shape=SEQ), _l("LSTM", 3, return_sequences=True, shape=SEQ)],
    "GRU": [_l("GRU", 4, shape=SEQ), _l("GRU", 4, reset_after=False, shape=SEQ)],
    "RNN": [_rnn_cell("LSTMCell"), _rnn_cell("GRUCell"), _rnn_cell("SimpleRNNCell")],
    "ConvLSTM1D": [_l("ConvLSTM1D", 2, 3, shape=(4, 6, 2))],
    "ConvLSTM2D": [_l("ConvLSTM2D", 2, 3, padding="same", return_sequences=True,
                      shape=(3, 6, 6, 2))],
    "ConvLSTM3D": [_l("ConvLSTM3D", 2, 2, shape=(2, 4, 4, 4, 1))],
    "Bidirectional": [_wrap("Bidirectional", "LSTM", {"units": 3}),
                      (SEQ, lambda keras, x: keras.layers.Concatenate()(keras.layers.Bidirectional(
                          keras.layers.GRU(2), merge_mode=None)(x))),
                      _wrap("Bidirectional", "GRU", {"units": 2, "return_sequences": True},
                            merge_mode="sum")],
    "TimeDistributed": [_wrap("TimeDistributed", "Dense", {"units": 3}),
                        _wrap("TimeDistributed", "Conv2D", {"filters": 2, "kernel_size": 3},
                              shape=(3, 8, 8, 2))],
    "ActivityRegularization": [_l("ActivityRegularization", l1=0.01)],
}  # fmt: skip

# Layers whose output has the input's shape and no weights.
for _name in (
    "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "Identity", "Masking", "Dropout",
    "GaussianNoise", "GaussianDropout", "AlphaDropout", "RandomFlip",
    "RandomRotation", "RandomTranslation", "RandomZoom", "RandomContrast", "RandomBrightness",
    "RandomGrayscale", "RandomHue", "RandomSaturation", "RandomErasing",
    "RandomColorDegeneration", "RandomColorJitter", "RandomElasticTransform",
    "RandomGaussianBlur", "RandomInvert", "RandomPerspective", "RandomPosterization",
    "RandomSharpness", "RandomShear", "AutoContrast", "Solarization", "AugMix",
    "CutMix", "MixUp", "RandAugment", "ContrastLimitedAdaptiveHistogramEqualization",
    "MaxNumBoundingBoxes", "SpatialDropout2D",
):  # fmt: skip
    _args = {
        "Activation": ("relu",), "Dropout": (0.2,), "GaussianNoise": (0.1,),
        "GaussianDropout": (0.1,), "AlphaDropout": (0.1,), "RandomRotation": (0.1,),
        "RandomTranslation": (0.1, 0.1), "RandomZoom": (0.1,), "RandomContrast": (0.1,),
        "RandomBrightness": (0.1,), "RandomHue": (0.1,), "RandomSaturation": (0.1,),
        "RandomPosterization": ((1, 8),), "RandomSharpness": (0.1,), "RandomShear": (0.1,),
        "MaxNumBoundingBoxes": (4,), "SpatialDropout2D": (0.2,), "RandomColorDegeneration": (0.2,),
    }.get(_name, ())  # fmt: skip
    LAYER_SAMPLES[_name] = [_l(_name, *_args)]
LAYER_SAMPLES["Masking"].append(
    (SEQ, lambda keras, x: keras.layers.LSTM(3)(keras.layers.Masking()(x)))
)  # Keras adds NotEqual/Any ops and a mask= keyword
LAYER_SAMPLES["SpatialDropout1D"] = [_l("SpatialDropout1D", 0.2, shape=SEQ)]
LAYER_SAMPLES["SpatialDropout3D"] = [_l("SpatialDropout3D", 0.2, shape=VOL)]


# Supported layers that Keras itself cannot place in a model (so no file can hold them);
# the coverage test checks that this is still true.
KERAS_CANNOT_BUILD = {
    "Equalization": "Keras 3.15 reports 'part of a cycle' when it is called on a symbolic tensor",
}


def _op(fn: Callable[[Any, Any], Any], shape: tuple = IMG) -> Sample:
    return shape, lambda keras, x: fn(keras.ops, x)


def _unary(name: str) -> Sample:
    return _op(lambda ops, x: getattr(ops, name)(x))


OP_SAMPLES: dict[str, list[Sample]] = {
    "Add": [_op(lambda o, x: x + x[..., :1]), _op(lambda o, x: x + 1.0)],
    "Subtract": [_op(lambda o, x: x - 0.5)], "Multiply": [_op(lambda o, x: x * 0.5)],
    "Divide": [_op(lambda o, x: o.divide(x, 2.0))], "TrueDivide": [_op(lambda o, x: x / 2.0)],
    "Maximum": [_op(lambda o, x: o.maximum(x, 0.0))],
    "Minimum": [_op(lambda o, x: o.minimum(x, x[:, :1]))],
    "Power": [_op(lambda o, x: x**2)], "Mod": [_op(lambda o, x: x % 2.0)],
    "FloorDivide": [_op(lambda o, x: x // 2.0)], "Fmax": [_op(lambda o, x: o.fmax(x, x))],
    "Fmin": [_op(lambda o, x: o.fmin(x, 1.0))], "Hypot": [_op(lambda o, x: o.hypot(x, x))],
    "Arctan2": [_op(lambda o, x: o.arctan2(x, x))],
    "Logaddexp": [_op(lambda o, x: o.logaddexp(x, x))],
    "Clip": [_op(lambda o, x: o.clip(x, 0.0, 1.0))],
    "Cast": [_op(lambda o, x: o.cast(x, "float16"))],
    "Mean": [_op(lambda o, x: o.mean(x, axis=[1, 2])), _op(lambda o, x: o.mean(x, axis=-1,
             keepdims=True))],
    "Sum": [_op(lambda o, x: o.sum(x, axis=1))], "Max": [_op(lambda o, x: o.max(x, axis=3))],
    "Min": [_op(lambda o, x: o.min(x, axis=(1, 2), keepdims=True))],
    "Prod": [_op(lambda o, x: o.prod(x, axis=2))], "Std": [_op(lambda o, x: o.std(x, axis=1))],
    "Var": [_op(lambda o, x: o.var(x, axis=1))], "Amax": [_op(lambda o, x: o.amax(x, axis=1))],
    "Amin": [_op(lambda o, x: o.amin(x, axis=2))],
    "Reshape": [_op(lambda o, x: o.reshape(x, (-1, 36, 12)))],
    "Transpose": [_op(lambda o, x: o.transpose(x, (0, 3, 1, 2)))],
    "Squeeze": [_op(lambda o, x: o.squeeze(x[..., :1], axis=-1))],
    "Concatenate": [_op(lambda o, x: o.concatenate([x, x], axis=-1))],
    "Stack": [_op(lambda o, x: o.stack([x, x], axis=1))],
    "Matmul": [_op(lambda o, x: o.matmul(x, o.transpose(x, (0, 2, 1))), shape=SEQ)],
    "GetItem": [_op(lambda o, x: x[:, 1:10:2, ..., :2]), _op(lambda o, x: x[:, 0]),
                _op(lambda o, x: x[:, None, -3:]), _op(lambda o, x: x[..., None])],
    "Equal": [_op(lambda o, x: o.equal(x, 0.0))],
    "NotEqual": [_op(lambda o, x: o.not_equal(x, x[..., :1]))],
    "Greater": [_op(lambda o, x: x > 0.5)], "GreaterEqual": [_op(lambda o, x: x >= 0.5)],
    "Less": [_op(lambda o, x: x < 0.5)], "LessEqual": [_op(lambda o, x: x <= 0.5)],
    "LogicalAnd": [_op(lambda o, x: o.logical_and(x > 0, x < 1))],
    "LogicalOr": [_op(lambda o, x: o.logical_or(x > 0, x < 1))],
    "LogicalXor": [_op(lambda o, x: o.logical_xor(x > 0, x < 1))],
    "LogicalNot": [_op(lambda o, x: o.logical_not(x > 0))],
    "Any": [_op(lambda o, x: o.any(x > 0, axis=-1))],
    "All": [_op(lambda o, x: o.all(x > 0, axis=(1, 2)))],
    "ExpandDims": [_op(lambda o, x: o.expand_dims(x, 1)),
                   _op(lambda o, x: o.expand_dims(x, (1, -1)))],
}  # fmt: skip


def op_samples(name: str) -> list[Sample]:
    """The samples for a vetted op: explicit above, or the op applied to the input alone."""
    if name in OP_SAMPLES:
        return OP_SAMPLES[name]
    snake = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    return [_unary(snake)]  # Relu6 -> relu6, LogSoftmax -> log_softmax
