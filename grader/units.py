"""How numbers read in the grader's sentences, so every message writes them alike."""

from __future__ import annotations


def pct(fraction: float) -> str:
    """0.8125 -> "81.3 %" (one decimal, a space before the sign, as on the pages)."""
    return f"{fraction * 100:.1f} %"


MIB = 1024 * 1024


def size(n: int) -> str:
    """A file size or limit as students read it: 1000000 -> "1.0 MB", 1000 -> "1,000 bytes"
    (one decimal, and never a misleading "0.0 MB")."""
    return f"{n / MIB:.1f} MB" if n >= MIB // 10 else f"{n:,} bytes"
