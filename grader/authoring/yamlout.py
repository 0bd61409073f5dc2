"""Spec YAML in the format of the shipped ``assignments/*.yaml``: keys in spec order,
the description as a literal block, shapes and pairs on one line (``[null, 222, 222, 32]``),
square kernels and strides as one number (``kernel_size: 3``), as the course writes them."""

from __future__ import annotations

from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    """Block style for mappings; flow style for short lists of numbers; list items
    indented under their key, as the shipped specs write them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.SequenceNode:
    flat = all(v is None or isinstance(v, int | float) for v in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flat)


_Dumper.add_representer(str, _str)
_Dumper.add_representer(list, _list)

_PAIRS = ("kernel_size", "strides")


def _compact(data: Any) -> Any:
    """``kernel_size: [3, 3]`` -> ``3`` (the spec reads an int as a square pair)."""
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            if key in _PAIRS and isinstance(value, list) and len(set(value)) == 1 and value:
                out[key] = value[0]
            else:
                out[key] = _compact(value)
        return out
    if isinstance(data, list):
        return [_compact(item) for item in data]
    return data


def dump_spec(data: dict[str, Any]) -> str:
    """YAML text of a spec given as plain data (``spec_data`` or ``model_dump``)."""
    return yaml.dump(_compact(data), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=88)
