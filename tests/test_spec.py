"""Assignment specs: the shipped ones load; each kind of mistake gets a precise error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from testutil import ASSIGNMENTS, shipped_spec

from grader.errors import ConfigurationError
from grader.spec import list_specs, load_spec, parse_spec

MINIMAL = """
id: demo
title: Demo
input_shape: [32, 32, 3]
"""


def test_shipped_specs_load_and_are_faithful_to_the_course() -> None:
    ids = [s.id for s in list_specs(ASSIGNMENTS)]
    assert ids == ["day096-conv2d", "day096-separable", "day096-strides-padding", "day097-cifar10"]

    conv = shipped_spec("day096-conv2d")
    assert [(x.type, x.filters, x.output_shape, x.params) for x in conv.layers] == [
        ("Conv2D", 32, [None, 222, 222, 32], 896),
        ("Conv2D", 64, [None, 220, 220, 64], 18496),
    ]
    assert conv.total_params.exact == 19392

    sep = shipped_spec("day096-separable")
    assert [(x.type, x.params, x.depth_multiplier) for x in sep.layers] == [
        ("SeparableConv2D", 155, 1),
        ("SeparableConv2D", 2400, 1),
    ]
    assert sep.total_params.exact == 2555

    cifar = shipped_spec("day097-cifar10")
    assert cifar.input_shape == [32, 32, 3]
    assert cifar.evaluation.min_accuracy == 0.70
    assert cifar.evaluation.preprocessing.scale == pytest.approx(1 / 255)
    assert cifar.total_params.max == 1_500_000
    assert {(c.type, c.min) for c in cifar.layer_counts} == {("Conv2D", 1), ("SeparableConv2D", 1)}


def test_minimal_spec_gets_defaults() -> None:
    spec = parse_spec(MINIMAL)
    assert spec.layers is None and spec.evaluation is None
    assert spec.policy.counts == "best"


def test_kernel_size_accepts_an_int_like_keras() -> None:
    spec = parse_spec(MINIMAL + "layers:\n  - {type: Conv2D, kernel_size: 5, strides: 2}\n")
    assert spec.layers[0].kernel_size == [5, 5]
    assert spec.layers[0].strides == [2, 2]


@pytest.mark.parametrize(
    ("extra", "field", "problem"),
    [
        ("colour: red\n", "colour", "Extra inputs are not permitted"),
        ("layers:\n  - {type: Conv2D, filters: many}\n", "layers.0.filters", "valid integer"),
        ("layers:\n  - {type: Conv2D, padding: full}\n", "layers.0.padding", "'valid'"),
        (
            "layers:\n  - {type: Conv2D, kernel_size: [3, 3, 3]}\n",
            "layers.0.kernel_size",
            "at most 2",
        ),
        ("layers:\n  - {filters: 3}\n", "layers.0.type", "Field required"),
        ("total_params: {min: 10, max: 5}\n", "total_params", "min (10) is greater than max (5)"),
        ("total_params: {exact: 3, max: 5}\n", "total_params", "either exact or min/max"),
        ("layer_counts:\n  - {type: Conv2D}\n", "layer_counts.0", "give min, max or both"),
        ("rubric: {accuracy: 10}\n", "(top level)", "no evaluation block"),
        ("evaluation: {min_accuracy: 1.5}\n", "evaluation.min_accuracy", "less than or equal to 1"),
        (
            "evaluation: {min_accuracy: 0.7, target_accuracy: 0.5}\n",
            "evaluation",
            "target_accuracy must not be below min_accuracy",
        ),
        ("evaluation: {min_accuracy: 0.7, dataset: mnist}\n", "evaluation.dataset", "'cifar10'"),
        ("policy: {counts: worst}\n", "policy.counts", "'best' or 'last'"),
    ],
)
def test_invalid_spec_names_file_field_and_problem(extra: str, field: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_spec(MINIMAL + extra, "assignments/demo.yaml")
    message = str(info.value)
    assert message.startswith("assignments/demo.yaml: invalid assignment spec")
    line = next(t for t in message.splitlines() if t.strip().startswith(f"{field} (line "))
    assert problem in line
    # The line named is where the field is written: within the extra text, after MINIMAL
    # (where the spec's mapping begins, for an error about the spec as a whole).
    number = int(re.search(r"\(line (\d+)\)", line).group(1))
    first = MINIMAL.count("\n") + 1
    if field == "(top level)":
        assert number < first
    else:
        assert first <= number < first + extra.count("\n"), (number, first)


def test_scale_written_as_a_fraction() -> None:
    spec = parse_spec(MINIMAL + "evaluation: {min_accuracy: 0.5, preprocessing: {scale: 1/255}}\n")
    assert spec.evaluation.preprocessing.scale == pytest.approx(1 / 255)


def test_not_yaml_and_not_a_mapping() -> None:
    with pytest.raises(ConfigurationError, match=r"^x.yaml, line 3, column 7: not valid YAML"):
        parse_spec("id: x\ntitle: [unclosed, x\nlayers: 3\n", "x.yaml")
    with pytest.raises(ConfigurationError) as info:
        parse_spec("id: x\n  bad: indent\n", "x.yaml")
    assert "<unicode string>" not in str(info.value)  # no PyYAML dump of the text
    with pytest.raises(ConfigurationError, match=r"^x.yaml: a spec must be a mapping"):
        parse_spec("- a\n- b\n", "x.yaml")


def test_id_must_match_file_name(tmp_path: Path) -> None:
    path = tmp_path / "other.yaml"
    path.write_text(MINIMAL)
    with pytest.raises(ConfigurationError, match=r"other.yaml: id: 'demo' does not match"):
        load_spec(path)
