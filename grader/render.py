"""Plain-text rendering of a Report for the terminal."""

from __future__ import annotations

from typing import Any

from grader import units
from grader.checks import fmt_shape
from grader.report import ModelInfo, Report


def _value(value: Any) -> str:
    """A check's value in the pages' words ("Conv2D, 32 filters, 3×3, stride 1, valid")."""
    return units.check_value(value) or "-"


def render_layers(model: ModelInfo) -> list[str]:
    """The layer table: type, output shape and parameters of every layer, each with how
    they are computed where ``grader.explain`` can say, then totals."""
    rows = [("#", "layer", "type", "output shape", "params")]
    rows += [
        (str(i), layer.path or layer.name, layer.type, fmt_shape(layer.output_shape),
         f"{layer.params:,}" if layer.params is not None else "-")
        for i, layer in enumerate(model.layers, 1)
    ]  # fmt: skip
    widths = [max(len(r[k]) for r in rows) for k in range(5)]
    lines = []
    for i, row in enumerate(rows):
        cells = [
            row[k].rjust(widths[k]) if k in (0, 4) else row[k].ljust(widths[k]) for k in range(5)
        ]
        lines.append("  " + "  ".join(cells).rstrip())
        formula = model.layers[i - 1].formula if i else None
        if formula is not None and (formula.params or formula.output):
            # How the row's numbers are computed, under it: "params (3·3·3 + 1)·32 = 896;
            # size valid, stride 1: 224 − 3 + 1 = 222".
            parts = [f"params {formula.params}" if formula.params else "",
                     f"size {formula.output}" if formula.output else ""]  # fmt: skip
            lines.append("  " + " " * (widths[0] + 2) + "; ".join(p for p in parts if p))
    lines.append(
        f"  Total parameters: {model.total_params:,} (trainable {model.trainable_params:,})"
    )
    return lines


def render_text(report: Report, model_name: str, title: str = "") -> str:
    """A report a student can read top to bottom: verdict, what to fix, then detail."""
    lines = [f"Grading {model_name} against {report.assignment}" + (f" ({title})" if title else "")]
    verdict = report.status.replace("_", " ").upper()
    lines += ["", f"Result: {verdict}    Score: {report.score:g} / {report.max_score:g}"]
    if report.reason:
        lines += ["", f"Not gradable: {report.reason}"]

    if report.checks:
        lines += ["", "Checks (expected vs yours)"]
        width = max(len(c.name) for c in report.checks)
        for check in report.checks:
            mark = "PASS" if check.passed else "FAIL"
            if check.passed:  # expected and yours agree: show it once
                detail = _value(check.actual)
            else:
                detail = check.message or (
                    f"expected {_value(check.expected)} | yours {_value(check.actual)}"
                )
            lines.append(f"  [{mark}] {check.name.ljust(width)}  {detail}")

    if report.model.layers:
        lines += ["", "Your layers", *render_layers(report.model)]

    metrics = report.metrics
    if metrics is not None:
        lines += [
            "",
            f"CIFAR-10 test accuracy: {units.pct(metrics.accuracy)} on "
            f"{metrics.num_images:,} images",
        ]
        lines.append("  Per class: " + ", ".join(
            f"{name} {units.pct(acc)}" for name, acc in metrics.per_class_accuracy.items()
        ))  # fmt: skip
        names = list(metrics.per_class_accuracy)
        lines += ["", "Confusion matrix (rows: true class, columns: predicted)"]
        lines.append("  " + " " * 11 + "".join(n[:5].rjust(6) for n in names))
        for name, row in zip(names, metrics.confusion_matrix, strict=True):
            lines.append("  " + name.ljust(11) + "".join(str(v).rjust(6) for v in row))

    if report.diagnosis:
        lines += ["", "Why the accuracy is low"]
        lines += [f"  - {d.message}" for d in report.diagnosis]
    verdict = report.integrity
    if verdict is not None and verdict.flagged and verdict.action == "zero":
        lines += ["", f"Generalisation check: score set to 0. {verdict.message}"]

    maps = report.feature_maps
    if maps is not None and maps.layers:
        lines += ["", f"Feature maps (on the web page; {maps.source}): output W×H×C"]
        lines += [
            f"  {layer.name} ({layer.type}): {layer.shape[1]}×{layer.shape[0]}×{layer.shape[2]}"
            for layer in maps.layers
        ]

    if report.score_breakdown:
        lines += ["", "Score"]
        for part in report.score_breakdown:
            lines.append(
                f"  {part.group.ljust(13)} {part.points:g} / {part.max_points:g}  ({part.detail})"
            )
    if report.timings:
        rows = units.timing_rows(report.timings, predicted=report.metrics is not None)
        lines += ["", "Time: " + ", ".join(f"{phase} {took}" for phase, took in rows)]
    return "\n".join(lines)
