"""Why an accuracy is low: plain sentences with their evidence, computed on the
trusted side from the scored predictions and the probes.

Codes (stable, part of the JSON report): ``constant_predictions``,
``collapsed_predictions``, ``input_convention``, ``saturated_outputs``,
``untrained``, ``wrong_class_count``, ``non_finite_outputs``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grader.inspection.architecture import Architecture
from grader.probes import CONVENTIONS, DESCRIPTIONS, describe_preprocessing
from grader.report import CIFAR10_CLASSES, Diagnosis, Metrics, ProbeResults
from grader.spec import Evaluation
from grader.units import pct

#: A probe must beat the assignment's convention by this much, and reach the minimum
#: accuracy or half as much again, to be named the cause.
CONVENTION_GAIN = 0.15
#: Outputs this large mean the activations overflowed.
SATURATED = 1e4
_INPUT_LAYERS = ("Rescaling", "Normalization")


@dataclass(frozen=True)
class OutputFacts:
    """What the model's raw outputs are, before any scoring: how many scores per image,
    how many images got NaN or infinity, and the largest finite magnitude."""

    width: int
    classes: int
    images: int
    non_finite: int
    max_abs: float
    invalid: np.ndarray  # one flag per image: scored as wrong whatever it holds

    @property
    def clean(self) -> bool:
        """One finite score per class for every image: probes and collapse apply."""
        return self.width == self.classes and self.non_finite == 0


def output_facts(
    predictions: np.ndarray, invalid_rows: np.ndarray | None, classes: int
) -> OutputFacts:
    """The facts about ``predictions`` (2-D, non-finite values already zeroed by the
    sandbox's verdict, which names their rows in ``invalid_rows``)."""
    rows, width = predictions.shape
    bad = np.zeros(rows, bool) if invalid_rows is None else np.asarray(invalid_rows, bool)
    invalid = bad | (width != classes)
    return OutputFacts(
        width=int(width),
        classes=classes,
        images=int(rows),
        non_finite=int(bad.sum()),
        max_abs=float(np.max(np.abs(predictions), initial=0.0)),
        invalid=invalid,
    )


def _outputs(arch: Architecture, facts: OutputFacts) -> list[Diagnosis]:
    """The model's outputs are not usable scores: the wrong number, or not numbers."""
    last = arch.layers[-1] if arch.layers else None
    where = f" (its last layer, '{last.name}', is a {last.type})" if last is not None else ""
    if facts.width != facts.classes:
        return [
            Diagnosis(
                code="wrong_class_count",
                message=(
                    f"Your model gives {facts.width} score{'s' if facts.width != 1 else ''} per "
                    f"image{where}, but CIFAR-10 has {facts.classes} classes: it needs one "
                    f"score per class, e.g. a last Dense({facts.classes}) layer. No image can "
                    "be counted as right."
                ),
                evidence={
                    "outputs": facts.width,
                    "classes": facts.classes,
                    "last_layer": last.name if last is not None else None,
                },
            )
        ]
    if facts.non_finite:
        share = facts.non_finite / max(facts.images, 1)
        return [
            Diagnosis(
                code="non_finite_outputs",
                message=(
                    f"Your model's outputs are NaN or infinite for {facts.non_finite:,} of the "
                    f"{facts.images:,} test images ({pct(share)}); those count as wrong. Its "
                    "weights or activations overflowed: training most likely diverged (try a "
                    "lower learning rate), or the model was saved after it did. Check "
                    "model.predict on a few images before saving."
                ),
                evidence={
                    "images": facts.images,
                    "non_finite_images": facts.non_finite,
                    "share": round(share, 4),
                },
            )
        ]
    return []


def diagnose(
    evaluation: Evaluation,
    arch: Architecture,
    metrics: Metrics,
    probes: ProbeResults | None,
    output_max: float | None = None,
    outputs: OutputFacts | None = None,
) -> list[Diagnosis]:
    """The explanations for an accuracy below the minimum (none when it passed)."""
    if metrics.accuracy >= evaluation.min_accuracy:
        return []
    found = _outputs(arch, outputs) if outputs is not None else []
    if found and found[0].code == "wrong_class_count":
        return found
    found += _collapse(metrics)
    convention = _convention(evaluation, arch, probes)
    if convention is not None:
        found.append(convention)
    if output_max is not None and output_max > SATURATED:
        found.append(
            Diagnosis(
                code="saturated_outputs",
                message=(
                    f"Your model's outputs reach {output_max:.3g}: its activations overflow, "
                    "so its answer hardly depends on the image. This usually means the "
                    "images are scaled far beyond what the model was trained on."
                ),
                evidence={"max_abs_output": output_max},
            )
        )
    chance = 1 / len(CIFAR10_CLASSES)
    if not found and metrics.accuracy <= chance + 0.05:
        found.append(
            Diagnosis(
                code="untrained",
                message=(
                    f"Your model scores {pct(metrics.accuracy)}, which is chance for "
                    f"{len(CIFAR10_CLASSES)} classes, although its answers vary from image to "
                    "image: it looks untrained. Check that you saved the model after "
                    "model.fit(), not a freshly built copy."
                ),
                evidence={"accuracy": metrics.accuracy, "chance": chance},
            )
        )
    return found


def _collapse(metrics: Metrics) -> list[Diagnosis]:
    counts = [sum(col) for col in zip(*metrics.confusion_matrix, strict=True)]
    total = sum(counts)
    if not total:
        return []
    ranked = sorted(range(len(counts)), key=lambda i: -counts[i])
    top = counts[ranked[0]] / total
    name = CIFAR10_CLASSES[ranked[0]]
    if top >= 0.8:
        return [
            Diagnosis(
                code="constant_predictions",
                message=(
                    f"Your model predicts '{name}' for {pct(top)} of the {total:,} test images, "
                    "whatever the image shows."
                ),
                evidence={"class": name, "share": round(top, 4), "images": total},
            )
        ]
    for k in (2, 3):
        share = sum(counts[i] for i in ranked[:k]) / total
        if share >= 0.9:
            names = [CIFAR10_CLASSES[i] for i in ranked[:k]]
            listed = ", ".join(f"'{n}'" for n in names[:-1]) + f" and '{names[-1]}'"
            return [
                Diagnosis(
                    code="collapsed_predictions",
                    message=(
                        f"Your model answers almost only {listed}: {pct(share)} of the "
                        f"{total:,} test images get one of these {k} classes."
                    ),
                    evidence={"classes": names, "share": round(share, 4), "images": total},
                )
            ]
    return []


def _convention(
    evaluation: Evaluation, arch: Architecture, probes: ProbeResults | None
) -> Diagnosis | None:
    if probes is None:
        return None
    tried = {n: a for n, a in probes.variants.items() if n in CONVENTIONS}
    if not tried:
        return None
    best = max(tried, key=lambda n: tried[n])
    gain = tried[best] - probes.accuracy
    convincing = tried[best] >= min(evaluation.min_accuracy, 1.5 * probes.accuracy)
    if gain < CONVENTION_GAIN or not convincing:
        return None
    own = describe_preprocessing(evaluation.preprocessing)
    message = (
        f"On the first {probes.images} test images your model scores {pct(tried[best])} when "
        f"given {DESCRIPTIONS[best]}, but {pct(probes.accuracy)} with this assignment's input "
        f"({own}). It was most likely trained on {DESCRIPTIONS[best]}."
    )
    layers = [layer for layer in arch.layers[:3] if layer.type in _INPUT_LAYERS]
    if layers:
        first = layers[0]
        message += (
            f" Its layer '{first.name}' ({first.type}) transforms the input itself, on top of "
            "the assignment's preprocessing: remove it, or train on the assignment's input."
        )
    else:
        message += " Train (and save) it on the input the assignment feeds."
    return Diagnosis(
        code="input_convention",
        message=message,
        evidence={
            "images": probes.images,
            "assignment_accuracy": probes.accuracy,
            "best_convention": best,
            "best_accuracy": tried[best],
            "conventions": tried,
            "input_layers": [layer.name for layer in layers],
        },
    )
