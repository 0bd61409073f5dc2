"""Probes: a few hundred test images shown to the model again, under other input
conventions (to explain a low accuracy) or flipped and shifted (to tell learning
from memorising). The sandbox only predicts them; they are scored here, where the
labels are, and never count toward the grade."""

from __future__ import annotations

import math

import numpy as np

from grader.report import ProbeResults
from grader.spec import Preprocessing

#: Images per probe: the first of the test set, the same every time (about 3 % of the
#: test set each, so the probes together add about a fifth to the prediction time).
PROBE_IMAGES = 300

#: Input conventions a student's model may have been trained for, as (scale, offset)
#: where that is all they are; the launcher knows how to build each.
CONVENTIONS: dict[str, tuple[float, float] | None] = {
    "raw": (1.0, 0.0),
    "unit": (1 / 255, 0.0),
    "symmetric": (1 / 127.5, -1.0),
    "standardized": None,
    "bgr": None,
}
#: Label-preserving changes a model that learned the classes mostly survives.
GENERALISATION = ("flip", "shift")

DESCRIPTIONS = {
    "raw": "raw pixel values 0–255 (no scaling)",
    "unit": "pixels scaled to 0–1 (x / 255)",
    "symmetric": "pixels scaled to −1…1 (x / 127.5 − 1)",
    "standardized": "pixels standardized with the CIFAR-10 mean and standard deviation",
    "bgr": "the colour channels in BGR order",
    "flip": "mirrored left to right",
    "shift": "shifted by two pixels",
}


def _same(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9) for x, y in zip(a, b, strict=True))


def plan(preprocessing: Preprocessing) -> tuple[str, ...]:
    """The probes for an assignment: every other convention, then the generalisation ones."""
    own = (float(preprocessing.scale), float(preprocessing.offset))
    others = [n for n, conv in CONVENTIONS.items() if conv is None or not _same(conv, own)]
    return (*others, *GENERALISATION)


def describe_preprocessing(preprocessing: Preprocessing) -> str:
    """The assignment's own convention in words."""
    own = (float(preprocessing.scale), float(preprocessing.offset))
    for name, conv in CONVENTIONS.items():
        if conv is not None and _same(conv, own):
            return DESCRIPTIONS[name]
    return f"x × {preprocessing.scale:g} + {preprocessing.offset:g}"


def score_probes(
    outputs: dict[str, np.ndarray],
    requested: tuple[str, ...],
    predictions: np.ndarray,
    labels: np.ndarray,
) -> ProbeResults | None:
    """Accuracy under each probe, beside the model's own accuracy on the same images."""
    outputs = {name: out for name, out in outputs.items() if name in requested}
    if not outputs:
        return None
    n = min(len(out) for out in outputs.values())
    labels = np.asarray(labels).reshape(-1)[:n].astype(np.int64)
    own = float(np.mean(np.argmax(predictions[:n], axis=1) == labels))
    return ProbeResults(
        images=n,
        accuracy=round(own, 4),
        variants={
            name: round(float(np.mean(np.argmax(out[:n], axis=1) == labels)), 4)
            for name, out in outputs.items()
        },
    )
