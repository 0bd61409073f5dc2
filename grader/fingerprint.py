"""Weight fingerprints: what tells one student's trained weights from another's,
whatever the layer names or the file format, without loading the model.

Each weight array gets an exact digest (its float32 values and shape), a sketch
(its first values, for near-identical copies: the same weights with a little
noise stay correlated) and band keys (sign bits of the sketch, so a database
index finds candidate copies without comparing every pair of files).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import numpy as np

SKETCH = 64
BANDS = 4  # 16 sign bits each
MIN_SIZE = 32  # smaller arrays (biases of tiny layers) say too little
#: Sketch correlation above which two arrays count as the same weights.
SAME = 0.98


def array_print(values: np.ndarray) -> dict[str, Any] | None:
    """The fingerprint of one weight array; None for arrays that say nothing
    (tiny, or constant: an untrained BatchNormalization's ones and zeros)."""
    flat = np.asarray(values, dtype=np.float32).reshape(-1)
    if flat.size < MIN_SIZE or not np.isfinite(flat).all() or float(flat.std()) == 0.0:
        return None
    digest = hashlib.sha256(repr(values.shape).encode() + flat.tobytes()).hexdigest()[:32]
    sketch = flat[:SKETCH].astype(np.float64)
    bits = sketch > np.median(sketch)
    bands = [
        int("".join("1" if b else "0" for b in bits[i * 16 : (i + 1) * 16]), 2)
        for i in range(min(BANDS, len(bits) // 16))
    ]
    return {
        "size": int(flat.size),
        "digest": digest,
        "bands": bands,
        "sketch": [round(float(v), 7) for v in sketch],
    }


#: The largest arrays kept (they hold nearly all the weights; the rest would only make
#: the stored fingerprint of a 1,000-layer network large).
MAX_ARRAYS = 200


def fingerprint(arrays: Iterable[np.ndarray]) -> list[dict[str, Any]]:
    prints = [p for p in (array_print(a) for a in arrays) if p is not None]
    return sorted(prints, key=lambda p: (-p["size"], p["digest"]))[:MAX_ARRAYS]


def keys(prints: list[dict[str, Any]]) -> set[str]:
    """Index keys: any shared key makes two submissions candidates."""
    out = {f"d:{p['digest']}" for p in prints}
    for p in prints:
        out.update(f"b{i}:{p['size']}:{band}" for i, band in enumerate(p["bands"]))
    return out


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a["digest"] == b["digest"]:
        return True
    if a["size"] != b["size"] or len(a["sketch"]) != len(b["sketch"]):
        return False
    x, y = np.asarray(a["sketch"]), np.asarray(b["sketch"])
    if x.std() == 0 or y.std() == 0:
        return False
    return float(np.corrcoef(x, y)[0, 1]) >= SAME


def similarity(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> float:
    """The share of the weights (by count) found in both, 0 to 1. Arrays pair up one
    to one: by digest first, then by size and sketch."""
    total = max(sum(p["size"] for p in a), sum(p["size"] for p in b))
    if total == 0:
        return 0.0
    by_digest: dict[str, list[dict[str, Any]]] = {}
    for q in b:
        by_digest.setdefault(q["digest"], []).append(q)
    shared, rest = 0, []
    for p in a:
        twins = by_digest.get(p["digest"])
        if twins:
            twins.pop()
            shared += p["size"]
        else:
            rest.append(p)
    by_size: dict[int, list[dict[str, Any]]] = {}
    for twins in by_digest.values():
        for q in twins:
            by_size.setdefault(q["size"], []).append(q)
    for p in rest:
        candidates = by_size.get(p["size"], [])
        for i, q in enumerate(candidates):
            if _same(p, q):
                shared += p["size"]
                del candidates[i]
                break
    return shared / total


def identical(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """Every array equal, whatever the names and the order."""
    return bool(a) and sorted(p["digest"] for p in a) == sorted(p["digest"] for p in b)
