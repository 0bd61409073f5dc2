"""Which graded files are copies of which: the one rule that the service (with its
database index) and offline batch grading (with an index in memory) both apply.

Two files are a pair when they belong to different students and hold the same file,
the same weights (whatever the layer names or the format), or at least ``THRESHOLD``
of their weights in common (see :func:`grader.fingerprint.similarity`). A student's
own files are never a pair: re-submitting one's own work is not copying.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from grader import fingerprint

#: Share of the weights two submissions must have in common to be listed.
THRESHOLD = 0.5


@dataclass(frozen=True)
class Match:
    kind: str  # "identical file" | "identical weights" | "similar weights"
    similarity: float  # 0 to 1: the share of the weights in common


def compare(
    sha_a: str | None,
    prints_a: list[dict[str, Any]],
    sha_b: str | None,
    prints_b: list[dict[str, Any]],
) -> Match | None:
    """The match between two graded files, or None below the threshold."""
    if sha_a and sha_a == sha_b:
        return Match("identical file", 1.0)
    if fingerprint.identical(prints_a, prints_b):
        return Match("identical weights", 1.0)
    score = fingerprint.similarity(prints_a, prints_b)
    return Match("similar weights", round(score, 4)) if score >= THRESHOLD else None


@dataclass(frozen=True)
class Graded:
    """One graded file as the pairing sees it."""

    owner: Hashable  # the student: files of one owner are never paired
    sha256: str | None
    prints: list[dict[str, Any]]


def find_pairs(files: Sequence[Graded]) -> list[tuple[int, int, Match]]:
    """Every pair ``(i, j, match)`` with ``i < j`` among ``files``, most similar first.

    Candidates come from shared index keys (the sha256 and :func:`fingerprint.keys`),
    as in the service's database, so unrelated files are never compared.
    """
    index: dict[str, list[int]] = {}
    for i, item in enumerate(files):
        keys = fingerprint.keys(item.prints)
        if item.sha256:
            keys.add(f"sha:{item.sha256}")
        for key in keys:
            index.setdefault(key, []).append(i)
    candidates = {
        (i, j)
        for members in index.values()
        for n, i in enumerate(members)
        for j in members[n + 1 :]
        if files[i].owner != files[j].owner
    }
    found = []
    for i, j in sorted(candidates):
        a, b = files[i], files[j]
        match = compare(a.sha256, a.prints, b.sha256, b.prints)
        if match is not None:
            found.append((i, j, match))
    return sorted(found, key=lambda pair: (-pair[2].similarity, pair[0], pair[1]))
