"""How numbers read in the grader's sentences, tables and pages, so every place writes
them alike: counts with thousands separators, percentages with one decimal, shapes in
one notation, scores as "90.5 / 100", sizes that never read "0.0 KiB".

The web pages use these through Jinja filters of the same names (grader.web.filters)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

DASH = "–"  # shown where there is no value


def number(value: float | None) -> str:
    """19392 -> "19,392"; 0.5 -> "0.5"; None -> "–". Whole numbers, even as floats, read
    without decimals; others keep up to four significant decimals."""
    if value is None:
        return DASH
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.4f}".rstrip("0").rstrip(".")


def pct(fraction: float | None) -> str:
    """0.8125 -> "81.3 %" (one decimal, a space before the sign, as on the pages)."""
    return DASH if fraction is None else f"{fraction * 100:.1f} %"


def score(value: float | None) -> str:
    """A score as the pages show it: 90.48 -> "90.5", 85.0 -> "85", None -> "–"
    (one decimal at most; the CSV export rounds the same way)."""
    if value is None:
        return DASH
    rounded = round(float(value), 1)
    return f"{rounded:.1f}".rstrip("0").rstrip(".") if rounded % 1 else f"{rounded:.0f}"


def score_of(value: float | None, max_score: float | None) -> str:
    """ "90.5 / 100"; without a maximum just the score; without a score "–"."""
    if value is None:
        return DASH
    return score(value) if max_score is None else f"{score(value)} / {score(max_score)}"


def shape(dims: Sequence[int | None] | None) -> str:
    """[None, 222, 222, 32] -> "(None, 222, 222, 32)": the one notation of a tensor shape."""
    if dims is None:
        return "unknown"
    return "(" + ", ".join("None" if d is None else str(d) for d in dims) + ")"


MIB = 1024 * 1024


def size(n: int) -> str:
    """A file size or limit as students read it: 1000000 -> "1.0 MB", 1000 -> "1,000 bytes",
    8 -> "8 bytes" (one decimal, and never a misleading "0.0 MB" or "0.0 KiB")."""
    if n >= MIB // 10:
        return f"{n / MIB:.1f} MB"
    return "1 byte" if n == 1 else f"{n:,} bytes"


def seconds(value: float) -> str:
    """2.4371 -> "2.44 s"; what took under 5 ms reads "< 0.01 s", not "0.00 s"."""
    return "< 0.01 s" if 0 < value < 0.005 else f"{value:.2f} s"


#: What each timing key of a report means, in words.
PHASES = {
    "inspect": "inspecting the file",
    "sandbox_start": "starting the sandbox",
    "import": "loading TensorFlow",
    "load": "loading the model",
    "predict": "predicting the test images",
    "probes": "extra diagnostic predictions",
    "evaluate": "evaluating",
    "score": "scoring",
    "total": "total",
}
#: Phases that exist only when the model predicted something.
PREDICTION_PHASES = ("predict", "probes")


def phase(key: str) -> str:
    """``sandbox_start`` -> "starting the sandbox"; an unknown key in words."""
    return PHASES.get(key, key.replace("_", " "))


def timing_rows(timings: Mapping[str, float], predicted: bool = True) -> list[tuple[str, str]]:
    """(phase in words, "2.44 s") for each timing; the prediction phases are left out
    when nothing was predicted (no "predict 0.00 s" for an assignment without a test set)."""
    return [
        (phase(key), seconds(value))
        for key, value in timings.items()
        if predicted or key not in PREDICTION_PHASES or value > 0
    ]


def _pair(value: Any) -> str:
    """3 or [3, 3] -> "3×3"; [2, 1] -> "2×1"."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "×".join(check_value(v) for v in value)
    return f"{value}×{value}" if isinstance(value, int) else check_value(value)


def _stride(value: Any) -> str:
    if isinstance(value, Sequence) and not isinstance(value, str):
        values = list(value)
        if values and all(v == values[0] for v in values):
            return f"stride {check_value(values[0])}"
        return "stride " + "×".join(check_value(v) for v in values)
    return f"stride {check_value(value)}"


def _plural(n: Any, word: str) -> str:
    return f"{check_value(n)} {word}" + ("" if n == 1 else "s")


_LAYER_FIELDS = {
    "filters": lambda v: _plural(v, "filter"),
    "units": lambda v: _plural(v, "unit"),
    "kernel_size": _pair,
    "pool_size": lambda v: f"pool {_pair(v)}",
    "strides": _stride,
    "padding": lambda v: check_value(v),
    "depth_multiplier": lambda v: f"depth multiplier {check_value(v)}",
    "activation": lambda v: f"{check_value(v)} activation",
    "output_shape": lambda v: f"output {check_value(v)}",
    "params": lambda v: _plural(v, "parameter"),
}


def check_value(value: Any) -> str:
    """An expected or actual value of a check as a reader wants it: a layer's settings
    {"type": "Conv2D", "filters": 32, "kernel_size": [3, 3], "strides": [1, 1],
    "padding": "valid"} -> "Conv2D, 32 filters, 3×3, stride 1, valid"; a count with
    thousands separators; a shape in the one notation; nothing -> ""."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return number(value)
    if isinstance(value, Mapping):
        parts = [check_value(value["type"])] if "type" in value else []
        for key, item in value.items():
            if key == "type" or item is None:
                continue
            describe = _LAYER_FIELDS.get(key)
            words = key.replace("_", " ")
            parts.append(describe(item) if describe else f"{words} {check_value(item)}")
        return ", ".join(parts)
    if isinstance(value, Sequence) and not isinstance(value, str):
        if all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in value):
            return shape(value)
        return ", ".join(check_value(v) for v in value)
    return str(value)


# --- Time ---------------------------------------------------------------------------
# Instants are stored as naive UTC (the database) or aware (spec deadlines with an
# offset); they are shown in the course's zone, with the zone named.


def aware_utc(instant: dt.datetime) -> dt.datetime:
    """An aware UTC instant: a naive value is read as UTC (how the database stores them)."""
    if instant.tzinfo is None:
        return instant.replace(tzinfo=dt.UTC)
    return instant.astimezone(dt.UTC)


def when(instant: dt.datetime | None, zone: dt.tzinfo = dt.UTC) -> str:
    """2026-12-01 08:09 UTC in Europe/Berlin -> "2026-12-01 09:09 CET": the wall time in
    ``zone``, labelled with that zone's name at that instant (CET or CEST)."""
    if instant is None:
        return DASH
    local = aware_utc(instant).astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or zone}"


def _span(seconds: float) -> str:
    """A rounded length of time: "40 s", "12 min", "3 h", "2 days"."""
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    if seconds < 2 * 86400:
        hours = round(seconds / 3600)
        return f"{hours} h" if hours < 48 else "2 days"
    return f"{round(seconds / 86400)} days"


def relative(instant: dt.datetime, now: dt.datetime) -> str:
    """ "in 3 h" for an instant ahead of ``now``, "2 days ago" for one behind."""
    delta = (aware_utc(instant) - aware_utc(now)).total_seconds()
    if abs(delta) < 1:
        return "now"
    return f"in {_span(delta)}" if delta > 0 else f"{_span(-delta)} ago"


def days_late(days: int) -> str:
    """0 -> "on time", 1 -> "1 day late", 2 -> "2 days late"."""
    if days <= 0:
        return "on time"
    return f"{days} day late" if days == 1 else f"{days} days late"
