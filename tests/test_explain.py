"""Formulas that explain parameter counts and output sizes (grader.explain), held to Keras'
own numbers, and the failing checks that explain both sides."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from models import conv_stack, save
from testutil import shipped_spec

from grader import explain
from grader.checks import run_checks
from grader.inspection.layers_core import conv_length
from grader.inspection.static import Inspection, inspect_model
from grader.pipeline import grade_file, model_info
from grader.render import render_layers, render_text
from grader.sandbox import EvaluationResult
from grader.spec import ExpectedLayer

INPUTS = ((32, 32, 3), (224, 224, 3))
CONVS = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D")
PADDINGS, STRIDES, MULTIPLIERS, KERNELS = ("valid", "same"), (1, 2), (1, 2), (1, 3, 5)


def _value(expression: str) -> float:
    """Evaluate a formula's text: the shown arithmetic must give the shown number."""
    text = expression.split(": ", 1)[-1]
    for old, new in (("·", "*"), ("−", "-"), ("⌊", "math.floor("), ("⌋", ")"),
                     ("⌈", "math.ceil("), ("⌉", ")")):  # fmt: skip
        text = text.replace(old, new)
    bare = text.replace("math.floor(", "(").replace("math.ceil(", "(")
    assert re.fullmatch(r"[\d\s+\-*/()]+", bare), text
    return eval(text, {"math": math})  # only digits, operators and math.floor/ceil


def _result(text: str) -> int:
    """The number a params formula ends in ("... = 1,290 (128 trainable)" -> 1290)."""
    match = re.search(r"= ([\d,]+)(?: \(.*\))?$", text)
    assert match, text
    return int(match.group(1).replace(",", ""))


def _sizes(text: str) -> list[int]:
    """The sizes an output formula gives, one per part ("height: ...; width: ...")."""
    return [int(m.replace(",", "")) for m in re.findall(r"= ([\d,]+)(?:;|$)", text)]


def _layer_configs() -> list[tuple[str, str, dict[str, Any]]]:
    """(name, class, kwargs) of every layer built on each input."""
    configs = []
    for kind, padding, stride, dm, kernel in itertools.product(
        CONVS, PADDINGS, STRIDES, MULTIPLIERS, KERNELS
    ):
        if kind == "Conv2D" and dm == 2:
            continue  # no depth multiplier: a Conv2D with 2·filters instead would repeat
        kwargs: dict[str, Any] = {"kernel_size": kernel, "strides": stride, "padding": padding}
        if kind != "DepthwiseConv2D":
            kwargs["filters"] = 5 if kind == "SeparableConv2D" else 8
        if kind != "Conv2D":
            kwargs["depth_multiplier"] = dm
        configs.append((f"{kind}_{padding}_s{stride}_dm{dm}_k{kernel}".lower(), kind, kwargs))
    extra = [
        ("conv_nobias", "Conv2D", {"filters": 4, "kernel_size": 3, "use_bias": False}),
        ("sep_nobias", "SeparableConv2D", {"filters": 4, "kernel_size": 3, "use_bias": False}),
        ("dw_nobias", "DepthwiseConv2D", {"kernel_size": 3, "use_bias": False}),
        ("conv_dilated", "Conv2D", {"filters": 4, "kernel_size": 3, "dilation_rate": 2}),
        ("sep_dilated", "SeparableConv2D", {"filters": 4, "kernel_size": 5, "dilation_rate": 3}),
        ("conv_rect", "Conv2D", {"filters": 4, "kernel_size": (3, 5), "strides": (1, 2)}),
        ("bn", "BatchNormalization", {}),
        ("bn_nocenter", "BatchNormalization", {"center": False}),
        ("dense", "Dense", {"units": 7}),
        ("dense_nobias", "Dense", {"units": 7, "use_bias": False}),
    ]
    for kind, padding, stride, size in itertools.product(
        ("MaxPooling2D", "AveragePooling2D"), PADDINGS, (None, 1, 2), (2, 3)
    ):
        kwargs = {"pool_size": size, "strides": stride, "padding": padding}
        extra.append((f"{kind}_{padding}_s{stride}_p{size}".lower(), kind, kwargs))
    return configs + extra


@pytest.fixture(scope="module")
def keras_truth(
    tmp_path_factory: pytest.TempPathFactory, settings: Any
) -> list[tuple[Any, Inspection]]:
    """Per input shape: a Keras model with every configuration as a branch on the input
    (joined into one output), saved and inspected."""
    import keras
    from keras import layers

    built = []
    folder = tmp_path_factory.mktemp("explain")
    for shape in INPUTS:
        inputs = keras.Input(shape)
        heads = []
        for name, kind, kwargs in _layer_configs():
            x = getattr(layers, kind)(name=name, **kwargs)(inputs)
            heads.append(layers.GlobalAveragePooling2D(name=f"gap_{name}")(x))
        model = keras.Model(inputs, layers.Concatenate(name="joined")(heads))
        path = save(model, folder / f"branches-{shape[0]}.keras")
        built.append((model, inspect_model(path, settings)))
    return built


def test_formulas_give_keras_own_counts_and_sizes(keras_truth) -> None:
    checked = 0
    for model, inspection in keras_truth:
        truth = {layer.name: layer for layer in model.layers}
        roundtrip = Inspection.from_json(inspection.to_json()).architecture  # the queue's path
        info = model_info(inspection.architecture, inspection.format)
        assert info == model_info(roundtrip, inspection.format)
        for layer in info.layers:
            if layer.name.startswith("gap_") or layer.name == "joined":
                continue
            keras_layer = truth[layer.name]
            formula = layer.formula
            assert formula is not None and formula.params is not None, layer.name
            assert _result(formula.params) == keras_layer.count_params(), formula.params
            if "Pooling" not in layer.type:
                assert _value(formula.params.split(" = ")[0]) == keras_layer.count_params()
            if layer.type in ("Dense", "BatchNormalization"):
                continue  # their shape is the input's, bar the last axis: no size formula
            assert formula.output is not None, layer.name
            keras_shape = tuple(keras_layer.output.shape)
            sizes = _sizes(formula.output)
            assert sizes == list(keras_shape[1:3])[: len(sizes)] and sizes, formula.output
            for part in formula.output.split("; "):
                assert _value(part.split(": ", 1)[-1].rsplit(" = ", 1)[0]) == _sizes(part)[0]
            checked += 1
    windowed = [c for c in _layer_configs() if c[1] not in ("Dense", "BatchNormalization")]
    assert checked == len(INPUTS) * len(windowed)


def test_named_examples_read_as_the_course_writes_them(keras_truth) -> None:
    _, inspection = keras_truth[1]  # 224×224×3
    info = {x.name: x.formula for x in model_info(inspection.architecture, "keras").layers}
    assert info["conv2d_valid_s1_dm1_k3"].params == "(3·3·3 + 1)·8 = 224"
    assert info["conv2d_valid_s1_dm1_k3"].output == "valid, stride 1: 224 − 3 + 1 = 222"
    assert info["conv2d_valid_s2_dm1_k3"].output == "valid, stride 2: ⌊(224 − 3) / 2⌋ + 1 = 111"
    assert info["conv2d_same_s2_dm1_k3"].output == "same, stride 2: ⌈224 / 2⌉ = 112"
    assert info["separableconv2d_valid_s1_dm1_k3"].params == "3·3·3·1 + 3·1·5 + 5 = 47"
    assert info["depthwiseconv2d_valid_s1_dm2_k3"].params == "3·3·3·2 + 3·2 = 60"
    assert info["sep_nobias"].params == "3·3·3·1 + 3·1·4 = 39"
    assert info["conv_nobias"].params == "3·3·3·4 = 108"
    assert info["conv_dilated"].output == "valid, stride 1, dilation 2: 224 − (3 − 1)·2 = 220"
    assert info["conv_rect"].output.startswith("height: valid, stride 1: 224 − 3 + 1 = 222; width:")
    assert info["bn"].params == "4·3 = 12 (6 trainable)"
    assert info["bn_nocenter"].params == "3·3 = 9 (3 trainable)"
    assert info["maxpooling2d_valid_snone_p2"].params == "no weights = 0"
    assert info["gap_bn"].output == "224×224×3 → 3 (one value per channel)"


def test_dense_formula_and_an_explanation_that_would_be_wrong_is_left_out(keras_truth) -> None:
    from dataclasses import replace

    _, inspection = keras_truth[0]
    layers = {x.name: x for x in inspection.architecture.layers}
    dense = layers["dense"]
    # Dense on a 4-D input acts on the last axis: 3 inputs per position.
    assert str(explain.params_formula(dense)) == "(3 + 1)·7 = 28"
    wrong = replace(layers["conv2d_valid_s1_dm1_k3"], params=225)
    assert explain.params_formula(wrong) is None
    assert explain.explain(wrong).params is None  # the size is still explained
    assert explain.output_formula(replace(wrong, output_shape=(None, 31, 30, 8))) is None
    assert explain.explain(replace(wrong, input_shape=None)) is None
    assert explain.explain(replace(wrong, type="LSTM")) is None


@hsettings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 512), kernel=st.integers(1, 9), stride=st.integers(1, 4),
    dilation=st.integers(1, 3), padding=st.sampled_from(["valid", "same"]),
)  # fmt: skip
def test_axis_size_shows_the_arithmetic_it_computes(n, kernel, stride, dilation, padding) -> None:
    if padding == "valid" and (kernel - 1) * dilation + 1 > n:
        return  # the inspection refuses a window larger than its input
    formula = explain.axis_size(n, kernel, stride, dilation, padding)
    assert formula.value == conv_length(n, kernel, stride, dilation, padding)
    assert _value(formula.expression) == formula.value
    assert str(formula).startswith(f"{padding}, stride {stride}")
    assert ("dilation" in str(formula)) == (dilation != 1)


@hsettings(max_examples=200, deadline=None)
@given(
    kernel=st.lists(st.integers(1, 7), min_size=1, max_size=3), cin=st.integers(1, 512),
    filters=st.integers(1, 512), dm=st.integers(1, 4), bias=st.booleans(),
    groups=st.sampled_from([1, 2, 4]),
)  # fmt: skip
def test_param_formulas_show_the_arithmetic_they_compute(kernel, cin, filters, dm, bias, groups):
    k = math.prod(kernel)
    cin_g = cin * groups
    formulas = {
        explain.conv_params(kernel, cin_g, filters, bias, groups): k * cin * filters
        + filters * bias,
        explain.separable_params(kernel, cin, dm, filters, bias): k * cin * dm
        + cin * dm * filters + filters * bias,
        explain.depthwise_params(kernel, cin, dm, bias): (k + bias) * cin * dm,
        explain.dense_params(cin, filters, bias): (cin + bias) * filters,
        explain.batchnorm_params(cin, bias, True): (3 + bias) * cin,
    }  # fmt: skip
    for formula, keras_count in formulas.items():
        assert formula.value == keras_count
        assert _value(formula.expression) == keras_count, formula


def test_expected_side_from_the_spec() -> None:
    sep = ExpectedLayer(type="SeparableConv2D", filters=32, kernel_size=3, depth_multiplier=1,
                        params=155)  # fmt: skip
    assert str(explain.expected_params(sep, 3)) == "3·3·3·1 + 3·1·32 + 32 = 155"
    assert explain.expected_channels_in(sep, 155) == 3
    assert explain.expected_channels_in(sep, 156) is None
    conv = ExpectedLayer(type="Conv2D", filters=64, kernel_size=3)
    assert explain.expected_channels_in(conv, 18_496) == 32
    assert explain.expected_params(ExpectedLayer(type="Conv2D", filters=64), 3) is None
    assert explain.expected_params(ExpectedLayer(type="Dense", units=10), 128).value == 1290
    assert str(explain.expected_params(ExpectedLayer(type="Dense", units=10), 128)) == (
        "(128 + 1)·10 = 1,290"
    )


def test_conv2d_where_separable_is_expected_is_explained_on_both_sides(
    model_dir: Path, settings
) -> None:
    """The failing checks say which formula was expected and which the student's layer
    follows; the report's layer table carries the formulas."""
    path = save(conv_stack("Conv2D"), model_dir / "explain-conv-for-separable.keras")
    spec = shipped_spec("day096-separable")
    arch = inspect_model(path, settings).architecture

    def evaluator(*_args: Any, **_kwargs: Any) -> EvaluationResult:
        return EvaluationResult(
            layers=[{"type": x.type, "params": x.params} for x in arch.layers],
            total_params=arch.total_params, trainable_params=arch.trainable_params,
            input_shape=None, predictions=None,
        )  # fmt: skip

    report = grade_file(path, spec, settings=settings, evaluator=evaluator)
    assert report.status == "failed"
    failed = {c.name: c.message for c in report.checks if not c.passed}
    assert failed["Parameters of layer 1 (SeparableConv2D)"] == (
        "Expected 155 = 3·3·3·1 + 3·1·32 + 32 (SeparableConv2D); yours 896 = (3·3·3 + 1)·32: "
        "you used Conv2D."
    )
    assert failed["Parameters of layer 2 (SeparableConv2D)"] == (
        "Expected 2,400 = 3·3·32·1 + 32·1·64 + 64 (SeparableConv2D); yours 18,496 = "
        "(3·3·32 + 1)·64: you used Conv2D."
    )
    first, second = (x.name for x in arch.layers)
    assert failed["Total parameters"] == (
        f"Total parameters: expected 2,555, yours 19,392 = 896 ({first}) + 18,496 ({second})."
    )
    assert all(len(c.message) <= 400 for c in report.checks)
    formula = report.model.layers[0].formula
    assert formula is not None and formula.params == "(3·3·3 + 1)·32 = 896"
    assert report.model_dump(mode="json")["model"]["layers"][0]["formula"] == {
        "params": "(3·3·3 + 1)·32 = 896",
        "output": "valid, stride 1: 224 − 3 + 1 = 222",
        "rule": "(kernel_h·kernel_w·channels_in + 1)·filters",
    }
    text = render_text(report, path.name)
    assert "params (3·3·3 + 1)·32 = 896; size valid, stride 1: 224 − 3 + 1 = 222" in text
    assert render_layers(report.model)[2].strip().startswith("params (3·3·3 + 1)·32")


@pytest.mark.parametrize(
    ("variant", "name", "message"),
    [
        (
            {"filters": (16, 64)},
            "Parameters of layer 2 (Conv2D)",
            "Expected 18,496 = (3·3·32 + 1)·64; yours 9,280 = (3·3·16 + 1)·64: your layer "
            "gets 16 input channels, not 32.",
        ),
        (
            {"filters": (16, 64)},
            "Parameters of layer 1 (Conv2D)",
            "Expected 896 = (3·3·3 + 1)·32; yours 448 = (3·3·3 + 1)·16: your filters 16, not 32.",
        ),
        (
            {"padding": "same", "strides": 2},
            "Layer 1: Conv2D",
            "output shape: expected (None, 222, 222, 32), yours (None, 112, 112, 32) (expected "
            "valid, stride 1: 224 − 3 + 1 = 222; yours same, stride 2: ⌈224 / 2⌉ = 112)",
        ),
        (
            {"filters": (32,)},
            "Parameters of layer 2 (Conv2D)",
            "Expected 18,496 parameters, yours no such layer.",  # nothing to explain
        ),
    ],
)
def test_other_mistakes_are_explained(variant, name, message, model_dir: Path, settings) -> None:
    path = save(conv_stack(**variant), model_dir / f"explain-{abs(hash(str(variant)))}.keras")
    spec = shipped_spec("day096-conv2d")
    checks = run_checks(spec, inspect_model(path, settings).architecture, None)
    failed = {c.name: c.message for c in checks if not c.passed}
    assert message in failed[name]
