"""WCAG AA contrast (4.5:1 for normal text) of the status pills and the heatmap cells,
read from the stylesheet itself."""

from __future__ import annotations

import re

import pytest
from webutil import ROOT

CSS = (ROOT / "grader" / "web" / "static" / "app.css").read_text()
VARS = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", CSS))
BODY_TEXT = VARS["fg"]


def _colour(value: str) -> str:
    value = value.strip()
    match = re.fullmatch(r"var\(--([\w-]+)\)", value)
    return VARS[match.group(1)] if match else {"#fff": "#ffffff"}.get(value, value)


def rule(selector: str) -> tuple[str, str]:
    """(background, text colour) of the rule for ``selector``."""
    body = re.search(re.escape(selector) + r"\s*\{([^}]*)\}", CSS)
    assert body, f"no rule for {selector}"
    props = dict(re.findall(r"([\w-]+)\s*:\s*([^;]+)", body.group(1)))
    return _colour(props["background"]), _colour(props.get("color", BODY_TEXT))


def contrast(a: str, b: str) -> float:
    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


PILLS = [".step", ".step.done", ".step.current", ".step.stopped", ".state-graded",
         ".state-failed, .state-error", ".state-not_gradable",
         ".state-queued, .state-inspecting, .state-evaluating", ".state-none",
         ".badge.counts"]  # fmt: skip


@pytest.mark.parametrize("selector", PILLS + [f".heat-{i}" for i in range(11)])
def test_aa_contrast(selector: str) -> None:
    background, text = rule(selector)
    assert contrast(background, text) >= 4.5, (selector, background, text)
