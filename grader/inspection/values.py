"""Strict readers for values in an uploaded configuration.

A configuration is hostile data: a number may be ``1e400`` (infinity once
parsed), a string, a bool, a list where a dict belongs. Every value the shape
inference uses is read through here, so each one is checked for type and range
in one place and a bad one becomes a ``NotGradable`` naming the layer and the
field, never a ``TypeError`` or ``OverflowError`` deep in the arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from grader.errors import NotGradable
from grader.units import shape as fmt_shape  # noqa: F401  (the one shape notation, re-exported)

Shape = tuple[int | None, ...]

# No real tensor dimension, kernel, stride or unit count comes near this; the
# bound keeps every product of a few of them a small, exact integer.
MAX_INT = 2**31 - 1
MAX_RANK = 16  # dimensions of any tensor, declared or inferred


def unwrap(value: Any) -> Any:
    """Keras 3 writes tuples as ``{"class_name": "__tuple__", "config": {"value": [...]}}``."""
    if isinstance(value, dict) and value.get("class_name") == "__tuple__":
        inner = value.get("config")
        return inner.get("value") if isinstance(inner, dict) else None
    return value


class Config:
    """One layer's configuration, read field by field with a clear refusal on bad data."""

    def __init__(self, raw: Any, kind: str, layer: str | None = None) -> None:
        self.kind = kind  # the class name, e.g. "Conv2D"
        self.layer = (layer or kind)[:80]  # the layer's name, for messages
        if not isinstance(raw, dict):
            raise NotGradable(f"The configuration of layer '{self.layer}' is not an object.")
        self.raw = raw

    def has(self, key: str) -> bool:
        return self.raw.get(key) is not None

    def get(self, key: str, default: Any = None) -> Any:
        value = unwrap(self.raw.get(key))
        return default if value is None else value

    def bad(self, key: str, why: str) -> NotGradable:
        return NotGradable(f"Layer '{self.layer}': the field '{key}' {why}.")

    def integer(self, key: str, default: int | None = None, *, low: int = 1) -> int:
        value = self.get(key, default)
        if value is None:
            raise self.bad(key, "is missing")
        return as_int(value, low=low, error=lambda why: self.bad(key, why))

    def ints(self, key: str, rank: int, default: Any = None, *, low: int = 1) -> tuple[int, ...]:
        """An int or a list of ``rank`` ints (Keras's ``kernel_size=3`` means ``(3, 3)``)."""
        value = self.get(key, default)
        if value is None:
            raise self.bad(key, "is missing")
        items = value if isinstance(value, list) else [value] * rank
        if len(items) != rank:
            raise self.bad(key, f"should have {rank} values")
        return tuple(as_int(v, low=low, error=lambda why: self.bad(key, why)) for v in items)

    def number(self, key: str, default: float | None = None) -> float:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.bad(key, "is not a number")
        if not math.isfinite(value):
            raise self.bad(key, "is not a finite number")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise self.bad(key, "is not true or false")
        return value

    def choice(self, key: str, default: str, choices: Sequence[str]) -> str:
        value = self.get(key, default)
        if not isinstance(value, str):
            raise self.bad(key, "is not text")
        lowered = value.lower()
        if lowered not in choices:
            raise self.bad(key, f"is {value[:40]!r}, not one of {', '.join(choices)}")
        return lowered

    def axes(self, key: str, default: Any, rank: int) -> list[int]:
        """Axis or list of axes, normalised to 0..rank-1."""
        value = self.get(key, default)
        items = value if isinstance(value, list) else [value]
        if len(items) > MAX_RANK or len(set(map(repr, items))) != len(items):
            raise self.bad(key, "repeats an axis or names too many")
        return [normalise_axis(v, rank, lambda why: self.bad(key, why)) for v in items]


def as_int(value: Any, *, low: int = 1, error: Any = None) -> int:
    """An exact integer in ``[low, MAX_INT]``; integral floats (Keras 2 wrote some) pass."""
    fail = error or (lambda why: NotGradable(f"A value in the configuration {why}."))
    if isinstance(value, bool):
        raise fail("is true/false, not a whole number")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise fail(f"is {value!r}, not a whole number")
        value = int(value)
    if not isinstance(value, int):
        raise fail("is not a whole number")
    if value > MAX_INT:
        shown = f"{value:,}" if value < 10**18 else "astronomically large"
        raise fail(f"is {shown}, far beyond any real model (at most {MAX_INT:,})")
    if value < low:
        raise fail(f"is {value if value > -(10**18) else 'hugely negative'}, below {low}")
    return value


def normalise_axis(value: Any, rank: int, error: Any = None) -> int:
    fail = error or (lambda why: NotGradable(f"An axis in the configuration {why}."))
    axis = as_int(value, low=-MAX_INT, error=fail)
    if not -rank <= axis < rank:
        raise fail(f"is {axis}, outside a tensor of rank {rank}")
    return axis % rank


def as_shape(value: Any, what: str) -> Shape:
    """A declared shape: a list of positive ints or None (unknown)."""
    value = unwrap(value)
    if not isinstance(value, list):
        raise NotGradable(f"{what} is not a list of sizes.")
    if len(value) > MAX_RANK:
        raise NotGradable(f"{what} has {len(value)} dimensions; at most {MAX_RANK} are supported.")

    def fail(why: str) -> NotGradable:
        return NotGradable(f"{what}: a size {why}.")

    return tuple(None if d is None else as_int(d, error=fail) for d in value)


def numbers_count(value: Any, what: str, cap: int) -> int:
    """How many finite numbers a scalar or nested list holds (e.g. Rescaling's scale)."""
    count = 0
    stack = [value]
    while stack:
        item = unwrap(stack.pop())
        if isinstance(item, list):
            stack.extend(item)
            if len(stack) > cap:
                raise NotGradable(f"{what} holds more than {cap:,} numbers.")
            continue
        if isinstance(item, bool) or not isinstance(item, int | float) or not math.isfinite(item):
            raise NotGradable(f"{what} holds something that is not a finite number.")
        count += 1
        if count > cap:
            raise NotGradable(f"{what} holds more than {cap:,} numbers.")
    return count
