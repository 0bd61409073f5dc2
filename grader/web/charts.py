"""Data for the pictures on feedback and dashboard pages (drawn by Chart.js and CSS)."""

from __future__ import annotations

from typing import Any

from grader.report import CIFAR10_CLASSES


def heat_class(value: float) -> str:
    """CSS class heat-0..heat-10: a CSP-safe heatmap without inline styles."""
    return f"heat-{max(0, min(10, round(value * 10)))}"


def confusion_rows(matrix: list[list[int]]) -> list[list[tuple[int, str]]]:
    """Each cell with its heat class, normalised by the row (true class) total."""
    rows = []
    for row in matrix:
        total = sum(row) or 1
        rows.append([(count, heat_class(count / total)) for count in row])
    return rows


def histogram(values: list[float], lo: float, hi: float, bins: int = 10) -> dict[str, Any]:
    width = (hi - lo) / bins if hi > lo else 1.0
    counts = [0] * bins
    for value in values:
        index = int((value - lo) / width) if width else 0
        counts[max(0, min(bins - 1, index))] += 1
    labels = [f"{lo + i * width:.3g}–{lo + (i + 1) * width:.3g}" for i in range(bins)]
    return {"labels": labels, "values": counts}


def class_labels() -> list[str]:
    return list(CIFAR10_CLASSES)
