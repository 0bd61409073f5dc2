"""One way to write each kind of number (grader/units.py): what the pages, the CSV and
the CLI text print."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from grader import units


def test_numbers_percentages_scores_and_sizes() -> None:
    assert units.number(19392) == "19,392" and units.number(1_500_000.0) == "1,500,000"
    assert units.number(0.5) == "0.5" and units.number(None) == "–"
    assert units.pct(0.766) == "76.6 %" and units.pct(0.1) == "10.0 %"
    assert units.score(90.48) == "90.5" and units.score(85.0) == "85" and units.score(None) == "–"
    assert units.score(89.96) == "90"  # rounds, then drops the ".0"
    assert units.score_of(90.48, 100) == "90.5 / 100" and units.score_of(None, 100) == "–"
    assert units.size(8) == "8 bytes" and units.size(1) == "1 byte"
    assert units.size(1000) == "1,000 bytes" and units.size(200 * 1024 * 1024) == "200.0 MB"


def test_one_notation_for_shapes() -> None:
    assert units.shape([None, 222, 222, 32]) == "(None, 222, 222, 32)"
    assert units.shape((None, 10)) == units.check_value([None, 10]) == "(None, 10)"


def test_check_cells_read_as_text_not_reprs() -> None:
    conv = {"type": "Conv2D", "filters": 32, "kernel_size": [3, 3], "strides": [1, 1],
            "padding": "valid"}  # fmt: skip
    assert units.check_value(conv) == "Conv2D, 32 filters, 3×3, stride 1, valid"
    dense = {"type": "Dense", "units": 1, "activation": "softmax", "output_shape": "(None, 1)"}
    assert units.check_value(dense) == "Dense, 1 unit, softmax activation, output (None, 1)"
    assert units.check_value({"type": "SeparableConv2D", "kernel_size": 3, "strides": [2, 1],
                              "depth_multiplier": 2}) == (
        "SeparableConv2D, 3×3, stride 2×1, depth multiplier 2")  # fmt: skip
    assert units.check_value(121642) == "121,642" and units.check_value(None) == ""
    assert units.check_value("at most 1,500,000") == "at most 1,500,000"


@given(st.dictionaries(st.sampled_from(["type", "filters", "units", "kernel_size", "strides",
                                        "padding", "activation", "other_field"]),
                       st.one_of(st.integers(1, 999), st.text(alphabet="abcxyz_ ", max_size=8),
                                 st.lists(st.integers(1, 9), min_size=1, max_size=3))))  # fmt: skip
def test_no_check_value_prints_a_python_repr(value: dict[str, object]) -> None:
    text = units.check_value(value)
    assert "{" not in text and "[" not in text and "': " not in text


def test_timings_have_human_phase_names_and_no_empty_predict() -> None:
    timings = {"inspect": 0.05, "sandbox_start": 0.05, "import": 2.5, "load": 0.24,
               "predict": 0.0, "score": 0.0}  # fmt: skip
    rows = dict(units.timing_rows(timings, predicted=False))
    assert "starting the sandbox" in rows and "sandbox_start" not in rows
    assert "predicting the test images" not in rows  # nothing was predicted
    assert rows["scoring"] == "< 0.01 s" or rows["scoring"] == "0.00 s"
    assert rows["loading TensorFlow"] == "2.50 s"
    assert "predicting the test images" in dict(units.timing_rows(timings, predicted=True))


def test_the_cli_text_uses_the_pages_words() -> None:
    """`grader check` prints check values, accuracy and phases as the pages do: no dict
    reprs, one-decimal percentages, phase names, no prediction phases without predictions."""
    from grader.render import render_text
    from grader.report import Check, Report

    layer = {"type": "Conv2D", "filters": 32, "kernel_size": [3, 3], "strides": [1, 1],
             "padding": "valid"}  # fmt: skip
    report = Report(
        status="failed", assignment="day096-conv2d", score=50, max_score=100,
        checks=[Check(name="layer 1", group="architecture", passed=False,
                      expected=layer, actual={**layer, "filters": 64})],
        timings={"inspect": 0.1, "predict": 0.0},
    )  # fmt: skip
    text = render_text(report, "m.keras")
    assert "expected Conv2D, 32 filters, 3×3, stride 1, valid | yours Conv2D, 64 filters" in text
    assert "{" not in text and "predict" not in text
