"""The whole static inspection of one upload, bounded in time and memory.

Reading the file (zip, JSON, HDF5 metadata) and inferring its architecture
happen in one forked child with a CPU, address-space and wall-clock limit
(``isolation``), wherever inspection runs: ``grader check``, ``grader inspect``,
the inspect worker and batch grading. Whatever the file holds, the answer is an
``Inspection`` or a ``NotGradable`` reason, and the grading process never grows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.inspection.architecture import Architecture, Layer, Limits, Resources, analyse
from grader.inspection.isolation import run_isolated
from grader.inspection.modelfile import read_model_file, written_by
from grader.settings import Settings

# Weights may be float64, and a legacy .h5 may carry an optimizer's two slots per
# weight: 3 x 8 bytes a parameter, plus HDF5's own bookkeeping.
BYTES_PER_PARAM_ALLOWED = 32
WEIGHT_SLACK_BYTES = 4 * 1024 * 1024


@dataclass
class Inspection:
    """What the trusted side knows about a file without running it."""

    format: str  # "keras" or "h5"
    keras_version: str | None  # as the file says; decides the loader
    architecture: Architecture
    fingerprint: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def loader(self) -> str:
        """Keras 2 files are loaded by Keras 2 (tf-keras), so their numbers are its own."""
        return "tf_keras" if written_by(self.keras_version) == 2 else "keras"

    def to_json(self) -> dict[str, Any]:
        """Plain JSON, so a job can hand the inspection to the evaluate queue."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Inspection:
        """The inverse of :meth:`to_json` (trusted data: written by :meth:`to_json`)."""
        arch = dict(data["architecture"])
        layers = [
            Layer(
                **{
                    **layer,
                    "output_shape": _shape(layer["output_shape"]),
                    "input_shape": _shape(layer.get("input_shape")),
                }
            )
            for layer in arch.pop("layers")
        ]
        architecture = Architecture(
            model_type=arch["model_type"],
            input_shape=_shape(arch["input_shape"]),
            output_shape=_shape(arch["output_shape"]),
            layers=layers,
            resources=Resources(**arch["resources"]),
        )
        return cls(data["format"], data["keras_version"], architecture, data.get("fingerprint", []))


def _shape(value: Any) -> Any:
    return None if value is None else tuple(value)


def limits_from(settings: Settings) -> Limits:
    return Limits(
        max_params=settings.max_params,
        max_layers=settings.max_layers,
        max_depth=settings.max_nesting_depth,
        max_activation_bytes=settings.max_activation_bytes,
        max_flops=settings.max_flops,
    )


def inspect_model(path: Path, settings: Settings) -> Inspection:
    """Read and analyse ``path`` in a limited child; raises NotGradable with the reason."""
    limits = limits_from(settings)

    def work() -> dict[str, Any]:
        analysed: list[Architecture] = []

        def weight_budget(config: dict[str, Any]) -> int:
            analysed.append(analyse(config, limits))
            return BYTES_PER_PARAM_ALLOWED * analysed[0].total_params + WEIGHT_SLACK_BYTES

        model_file = read_model_file(path, settings, weight_budget)
        arch = analysed[0] if analysed else analyse(model_file.model_config, limits)
        return {
            "format": model_file.format,
            "keras_version": model_file.keras_version,
            "architecture": _plain(arch),
            "fingerprint": model_file.fingerprint,
        }

    result = run_isolated(
        work,
        timeout_s=settings.inspect_timeout_seconds,
        memory_bytes=settings.inspect_memory_bytes,
        too_slow=f"Inspecting the file took longer than {settings.inspect_timeout_seconds:g} s; "
        "it is damaged or crafted to stall the grader.",
    )
    return Inspection(
        result["format"],
        result["keras_version"],
        _architecture(result["architecture"]),
        result["fingerprint"],
    )


def _plain(arch: Architecture) -> dict[str, Any]:
    """JSON for the pipe (dataclasses.asdict deep-copies every value: 10x slower here)."""
    return {
        "model_type": arch.model_type,
        "input_shape": list(arch.input_shape),
        "output_shape": list(arch.output_shape),
        "layers": [vars(layer) for layer in arch.layers],
        "resources": vars(arch.resources),
    }


def _architecture(data: dict[str, Any]) -> Architecture:
    layers = [
        Layer(
            **{
                **layer,
                "output_shape": tuple(layer["output_shape"]),
                "input_shape": _shape(layer["input_shape"]),
            }
        )
        for layer in data["layers"]
    ]
    return Architecture(
        model_type=data["model_type"],
        input_shape=tuple(data["input_shape"]),
        output_shape=tuple(data["output_shape"]),
        layers=layers,
        resources=Resources(**data["resources"]),
    )
