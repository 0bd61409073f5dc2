"""Feature maps: what the student's convolution and pooling layers make of two fixed
images, shown as pictures so the student sees the maps shrink and the channels grow.

The trusted side chooses the images (two CIFAR-10 test images, resized to the
assignment's input, or a fixed synthetic pair when no test set is here), the sandbox
returns the activations as capped arrays (grader/sandbox/verdict.py re-checks them),
and they are drawn here, with Pillow, as small PNG data URIs kept in the report.
Feature maps are feedback only: they never change a grade, and any problem drops them.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grader.data import TestSet, _cache_dir, find_test_set, test_set_available
from grader.inspection.architecture import Architecture
from grader.report import FeatureMapLayer, FeatureMaps
from grader.sandbox.verdict import FeatureMapArray
from grader.settings import Settings
from grader.spec import AssignmentSpec

#: The test images shown, the same every time (a cat and a ship in CIFAR-10's test set).
TEST_INDICES = (0, 1)
#: The input image's side on the page, in pixels; each layer is drawn in proportion.
DISPLAY_SIDE = 64
#: All data URIs of one report together, in characters (later layers are left out).
MAX_REPORT_CHARS = 1_500_000
_GAP = 2

# Viridis, from dark blue (low activation) to yellow (high), at five stops.
_STOPS = np.array(
    [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], np.float64
)


def _palette() -> list[int]:
    """255 viridis colours for values 0..254, then white (255) for the gaps."""
    x = np.linspace(0, len(_STOPS) - 1, 255)
    rgb = np.stack([np.interp(x, np.arange(len(_STOPS)), _STOPS[:, k]) for k in range(3)], 1)
    return [int(v) for v in np.round(rgb).reshape(-1)] + [255, 255, 255]


_PALETTE = _palette()


@dataclass(frozen=True)
class FeatureInputs:
    """The images given to the model for its feature maps (uint8, the model's input)."""

    path: Path
    source: str

    def images(self) -> np.ndarray:
        return np.load(self.path, allow_pickle=False)


def _input_size(spec: AssignmentSpec) -> tuple[int, int, int] | None:
    """(height, width, channels) of the assignment's images, 32 for an open side; None
    when they are not 2-D images of 1 or 3 channels."""
    if len(spec.input_shape) != 3:
        return None
    height, width, channels = (32 if d is None else d for d in spec.input_shape)
    if channels not in (1, 3) or not (0 < height <= 1024 and 0 < width <= 1024):
        return None
    return height, width, channels


def synthetic_images(height: int, width: int) -> np.ndarray:
    """Two fixed pictures with edges, blobs and stripes (when no test set is here)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    y, x = y / max(height - 1, 1), x / max(width - 1, 1)
    disc = ((x - 0.35) ** 2 + (y - 0.4) ** 2 < 0.06).astype(np.float64)
    square = ((abs(x - 0.72) < 0.14) & (abs(y - 0.68) < 0.14)).astype(np.float64)
    first = np.stack([0.2 + 0.6 * x + 0.2 * disc, 0.3 + 0.5 * disc, 0.8 * y - 0.5 * square], -1)
    stripes = 0.5 + 0.5 * np.sin((x + y) * 6 * math.pi)
    checks = ((np.floor(x * 6) + np.floor(y * 6)) % 2).astype(np.float64)
    second = np.stack([stripes, 0.5 * checks + 0.25, 1 - stripes * (y > 0.5)], -1)
    both = np.stack([first, second])
    return np.round(np.clip(both, 0, 1) * 255).astype(np.uint8)


def _resize(images: np.ndarray, height: int, width: int) -> np.ndarray:
    from PIL import Image

    if images.shape[1:3] == (height, width):
        return np.ascontiguousarray(images)
    return np.stack(
        [
            np.asarray(Image.fromarray(img).resize((width, height), Image.Resampling.BICUBIC))
            for img in images
        ]
    )


def _test_set(given: TestSet | None, settings: Settings) -> TestSet | None:
    """The test set in hand, or one already on this machine (never downloaded here)."""
    if given is not None:
        return given
    try:
        if test_set_available(settings.cifar10):
            return find_test_set(None, settings.cifar10)
    except Exception:  # feedback only: without it, the synthetic pair
        return None
    return None


def input_images(
    spec: AssignmentSpec, test_set: TestSet | None, settings: Settings
) -> FeatureInputs | None:
    """The images whose feature maps this assignment shows, prepared once and cached as
    a small .npy the sandbox can read; None when the spec turns them off."""
    size = _input_size(spec)
    if not spec.feedback.feature_maps or size is None:
        return None
    try:
        return _prepare(size, test_set, settings)
    except (OSError, ValueError, IndexError):  # no writable cache, too few images: feedback only
        return None


def _prepare(
    size: tuple[int, int, int], test_set: TestSet | None, settings: Settings
) -> FeatureInputs:
    height, width, channels = size
    found = _test_set(test_set, settings)
    tag = f"{found.images_path}" if found is not None else "synthetic"
    key = hashlib.sha256(f"{tag}|{TEST_INDICES}|{size}".encode()).hexdigest()[:16]
    path = _cache_dir() / f"fmap-inputs-{key}.npy"
    if found is not None:
        a, b = TEST_INDICES
        source = f"CIFAR-10 test images {a + 1:,} and {b + 1:,}"
        if (height, width) != (32, 32):
            source += f", resized to {width}×{height}"
    else:
        source = f"two fixed synthetic {width}×{height} images (no CIFAR-10 test set here)"
    if not path.exists():
        if found is not None:
            picked = np.asarray(found.images()[list(TEST_INDICES)], dtype=np.uint8)
        else:
            picked = synthetic_images(height, width)
        picked = _resize(picked, height, width)
        if channels == 1:
            picked = np.round(picked.mean(axis=-1, keepdims=True)).astype(np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
        np.save(tmp, np.ascontiguousarray(picked, dtype=np.uint8), allow_pickle=False)
        tmp.chmod(0o644)
        tmp.replace(path)
    return FeatureInputs(path, source)


def _png(pixels: np.ndarray, palette: bool) -> str:
    from PIL import Image

    if palette:
        image = Image.fromarray(pixels, mode="P")
        image.putpalette(_PALETTE)
    else:
        image = Image.fromarray(pixels)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _grids(values: np.ndarray, scale: int) -> list[str]:
    """One PNG per image: its channels side by side, each scaled to 0..254 over both
    images (so the two are comparable), enlarged ``scale`` times, white between them."""
    lo = values.min(axis=(0, 1, 2), keepdims=True)
    span = values.max(axis=(0, 1, 2), keepdims=True) - lo
    levels = np.divide(values - lo, span, out=np.zeros_like(values), where=span > 0)
    levels = np.round(levels * 254).astype(np.uint8)
    levels = levels.repeat(scale, axis=1).repeat(scale, axis=2)
    n, height, width, channels = levels.shape
    out = []
    for i in range(n):
        grid = np.full((height, channels * (width + _GAP) - _GAP), 255, np.uint8)
        for c in range(channels):
            grid[:, c * (width + _GAP) : c * (width + _GAP) + width] = levels[i, :, :, c]
        out.append(_png(grid, palette=True))
    return out


def _input_uris(images: np.ndarray) -> list[str]:
    from PIL import Image

    uris = []
    for img in images:
        picture = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
        side = max(picture.size)
        factor = DISPLAY_SIDE / side
        size = (max(1, round(picture.width * factor)), max(1, round(picture.height * factor)))
        picture = picture.resize(size, Image.Resampling.NEAREST if factor > 1 else
                                 Image.Resampling.BILINEAR)  # fmt: skip
        uris.append(_png(np.asarray(picture), palette=False))
    return uris


def render(
    inputs: FeatureInputs | None, maps: list[FeatureMapArray], arch: Architecture
) -> FeatureMaps | None:
    """The report's feature maps: each layer the sandbox returned that the trusted
    architecture has, with that shape, drawn in proportion to its real size. None when
    there is nothing to show; never raises (feedback must not cost a grade)."""
    if inputs is None or not maps:
        return None
    try:
        return _render(inputs, maps, arch)
    except Exception:
        return None


def _render(inputs: FeatureInputs, maps: list[FeatureMapArray], arch: Architecture) -> FeatureMaps:
    images = inputs.images()
    shown = FeatureMaps(source=inputs.source, inputs=_input_uris(images))
    budget = MAX_REPORT_CHARS - sum(len(u) for u in shown.inputs)
    input_side = max(images.shape[1:3])
    trusted = {}
    for layer in arch.layers:
        trusted.setdefault(layer.name, layer)
    for fmap in maps:
        layer = trusted.get(fmap.name)
        if layer is None or layer.type != fmap.type:
            continue
        if list(layer.output_shape[1:]) != list(fmap.shape):
            continue  # the sandbox's word against the file's: not shown
        _, tile_h, tile_w, channels = fmap.values.shape
        real_side = max(fmap.shape[:2])
        scale = max(1, round(real_side * DISPLAY_SIDE / input_side / max(tile_h, tile_w)))
        # A map larger than the input (an upsampling layer) is drawn at most twice the
        # display size: the pictures are built here, before the budget can say no.
        scale = min(scale, max(1, 2 * DISPLAY_SIDE // max(tile_h, tile_w)))
        grids = _grids(fmap.values, scale)
        cost = sum(len(g) for g in grids)
        if cost > budget:
            break
        budget -= cost
        shown.layers.append(
            FeatureMapLayer(
                name=fmap.name,
                type=fmap.type,
                shape=list(fmap.shape),
                channels_shown=channels,
                tile=[tile_h, tile_w],
                images=grids,
            )
        )
    return shown
