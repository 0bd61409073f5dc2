"""What a sandbox run left behind, read on the trusted side and trusted in nothing:
its exit status turned into a verdict, its summary and predictions validated.

Both the fresh-sandbox runner and the warm pool read their results here.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from grader.errors import NotGradable
from grader.sandbox.policy import SandboxLimits, python_roots
from grader.settings import get_settings

SUMMARY_MAX_BYTES = 16 * 1024 * 1024
STREAM_MAX_BYTES = 4 * 1024 * 1024

#: The feature-map channel's caps (the launcher keeps within them; nothing beyond is read).
FMAP_MAX_LAYERS = 16
FMAP_MAX_CHANNELS = 8
FMAP_MAX_SIDE = 48
FMAP_MAX_IMAGES = 4
#: One layer's file: the largest array allowed, float32, plus its header.
FMAP_FILE_MAX_BYTES = FMAP_MAX_IMAGES * FMAP_MAX_SIDE**2 * FMAP_MAX_CHANNELS * 4 + 4096
#: All layers together.
FMAP_TOTAL_MAX_BYTES = 4 * 1024 * 1024


@dataclass
class FeatureMapArray:
    """One layer's activations for the feature-map images, as the sandbox gave them:
    ``values`` (images, height, width, channels) float32, at most FMAP_MAX_SIDE pixels a
    side and FMAP_MAX_CHANNELS channels; ``shape`` the layer's real (height, width,
    channels) as the sandbox reported it."""

    name: str
    type: str
    shape: tuple[int, int, int]
    values: np.ndarray


@dataclass
class EvaluationResult:
    """What the sandbox reported about one model, after validation on the trusted side."""

    layers: list[dict]
    total_params: int
    trainable_params: int
    input_shape: list | None
    predictions: np.ndarray | None
    timings: dict[str, float] = field(default_factory=dict)
    peak_rss_bytes: int | None = None
    device: str = "cpu"
    backend: str = "tensorflow"  # the Keras backend the sandbox ran
    # Outputs for probe variants of the first images, by probe name (never scored here).
    probes: dict[str, np.ndarray] = field(default_factory=dict)
    # Rows of ``predictions`` that held NaN or infinity (set to 0 there); None: all finite.
    invalid_rows: np.ndarray | None = None
    # Convolution and pooling activations of the feature-map images (feedback only).
    feature_maps: list[FeatureMapArray] = field(default_factory=list)


def read_capped(path: Path, limit: int = STREAM_MAX_BYTES) -> str:
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > limit:
                fh.seek(size - limit)
            return fh.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


def count_images(path: Path) -> int:
    """Row count of the trusted images file (header only, no pickle)."""
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    if arr.ndim != 4 or arr.dtype != np.uint8:
        raise ValueError(f"images must be uint8 NHWC, got {arr.dtype} {arr.shape}")
    return int(arr.shape[0])


# --------------------------------------------------------------------------- verdicts
_MEMORY_HINTS = (
    "MemoryError",
    "bad_alloc",
    "Cannot allocate memory",
    "OOM when allocating",
    "ResourceExhaustedError",
    "out of memory",
)

_THREAD_HINTS = (
    "pthread_create",
    "Resource temporarily unavailable",
    "libgcc_s.so.1 must be installed",  # glibc failed to dlopen it: mmap refused
)


def raise_for_failure(
    rc: int,
    err: str,
    out: Path,
    elapsed: float,
    killed: bool,
    limits: SandboxLimits,
    scrub: list[str],
) -> None:
    """Map how the sandbox ended to a NotGradable with a plain-words reason."""
    if rc == 0:
        return
    timed_out = killed or (
        rc in (124, 137, -signal.SIGKILL) and elapsed >= limits.wall_seconds - 0.5
    )
    if timed_out:
        raise NotGradable(
            f"Evaluation took longer than the limit of {limits.wall_seconds} s and was stopped."
        )
    info = _read_error_json(out / "error.json")
    if info is not None:
        kind, msg = info
        if kind == "load":
            raise NotGradable(f"The model could not be loaded: {msg}")
        if kind == "predict":
            raise NotGradable(f"The model could not make predictions on the images: {msg}")
        if kind == "memory":
            raise NotGradable(_memory_message(limits))
    if rc in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        raise NotGradable(
            f"Evaluation used more CPU time than the limit of {limits.cpu_seconds} s "
            "and was stopped."
        )
    if any(h in err for h in _MEMORY_HINTS) or rc in (-signal.SIGKILL, 137):
        raise NotGradable(_memory_message(limits))
    if any(h in err for h in _THREAD_HINTS):
        # RLIMIT_AS (thread stacks, dlopen) or RLIMIT_NPROC (threads count as processes).
        raise NotGradable(
            "Evaluation used more memory than the limit of "
            f"{limits.memory_bytes // (1024 * 1024)} MiB (or more than "
            f"{limits.max_processes} threads) and was stopped."
        )
    if info is not None:
        raise NotGradable(f"Evaluation failed: {_scrub(info[1], scrub)}")
    status = (
        f"signal {signal.Signals(-rc).name}"
        if rc < 0 and -rc in _SIGNALS
        else (f"exit status {rc}")
    )
    last = tail(_scrub(err, scrub), 5)
    raise NotGradable(
        f"Evaluation stopped unexpectedly ({status})."
        + (f" Last lines of its error output:\n{last}" if last else "")
    )


_SIGNALS = {s.value for s in signal.Signals}


def _memory_message(limits: SandboxLimits) -> str:
    mib = limits.memory_bytes // (1024 * 1024)
    return f"Evaluation used more memory than the limit of {mib} MiB and was stopped."


def _open_regular(path: Path, limit: int) -> BinaryIO:
    """A file the sandbox wrote, opened only if it is a regular file (no link, no FIFO,
    no device) of at most ``limit`` bytes. OSError otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            raise OSError(f"{path.name} is not a regular file within {limit} bytes")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_bounded(path: Path, limit: int) -> bytes:
    with _open_regular(path, limit) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"{path.name} grew past {limit} bytes")
    return data


def _load_npy(path: Path, limit: int) -> np.ndarray:
    """An .npy file whose header agrees with its size, so a tiny file cannot make NumPy
    allocate what its header claims (ValueError otherwise)."""
    with _open_regular(path, limit) as fh:
        size = os.fstat(fh.fileno()).st_size
        version = np.lib.format.read_magic(fh)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read_header(fh)
        if dtype.hasobject or math.prod(shape) * dtype.itemsize > size - fh.tell():
            raise ValueError("the array is larger than the file holding it")
        fh.seek(0)
        return np.load(fh, allow_pickle=False)


def _read_error_json(path: Path) -> tuple[str, str] | None:
    try:
        data = json.loads(_read_bounded(path, 64 * 1024).decode("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("error"), str):
        return None
    kind = data.get("kind") if isinstance(data.get("kind"), str) else "other"
    return kind, _scrub(data["error"], [])[:300]


_PATH_RE = re.compile(r"(?:/[\w.@+-]+){2,}")


def _scrub(text: str, extra: list[str]) -> str:
    """Remove host paths (temp dirs, the Python installation) from sandbox output."""
    for root in [*extra, *map(str, python_roots()), sys.prefix]:
        if root and root != "/":
            text = text.replace(root, "…")
    return _PATH_RE.sub(lambda m: "…/" + m.group(0).rsplit("/", 1)[-1], text)


_NOISE = re.compile(r"^(@ |\*\*\* |\[symbolize|WARNING: All log messages|[IW]\d{4} )")


def tail(text: str, n: int) -> str:
    """Last ``n`` meaningful lines (no stack-frame addresses or TF info chatter)."""
    lines = (ln.strip() for ln in text.splitlines())
    keep = [ln[:200] for ln in lines if ln and not _NOISE.match(ln)]
    return "\n".join(keep[-n:])


# --------------------------------------------------------------------------- results
def _bad(reason: str) -> NotGradable:
    return NotGradable(f"The evaluation returned unusable results: {reason}.")


def collect(
    out: Path,
    n_images: int | None,
    spawn_t: float,
    limits: SandboxLimits,
    gpu: int | None,
    n_feature_images: int = 0,
    backend: str = "tensorflow",
) -> EvaluationResult:
    """Parse and validate everything the sandbox wrote; trust none of it.

    ``n_feature_images``: how many feature-map images were given (0: none asked for);
    ``backend``: the one it was started with, which the summary must name."""
    path = out / "summary.json"
    try:
        data = json.loads(_read_bounded(path, SUMMARY_MAX_BYTES).decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise _bad("the summary is missing or unreadable") from exc
    if get_settings().sandbox_debug:
        print("sandbox confinement:", data.get("confinement"), file=sys.stderr)
    if not isinstance(data, dict):
        raise _bad("the summary is not an object")

    layers = data.get("layers")
    if not isinstance(layers, list) or not all(isinstance(r, dict) for r in layers):
        raise _bad("the layer table is malformed")
    clean_layers = [_clean_layer(r) for r in layers]
    total, trainable = data.get("total_params"), data.get("trainable_params")
    if not _is_count(total) or not _is_count(trainable):
        raise _bad("parameter counts are missing")
    input_shape = _clean_shape(data.get("input_shape"))
    if data.get("backend", backend) != backend:  # the record is what was started
        raise _bad(f"the sandbox did not run the {backend} backend")

    timings: dict[str, float] = {}
    raw_t = data.get("timings") if isinstance(data.get("timings"), dict) else {}
    started = data.get("started_at")
    if isinstance(started, int | float) and math.isfinite(started):
        timings["sandbox_start"] = max(0.0, float(started) - spawn_t)
    for key in ("import", "load", "predict"):
        v = raw_t.get(key)
        if isinstance(v, int | float) and math.isfinite(v):
            timings[key] = float(v)
    rss = data.get("peak_rss_bytes")

    predictions = None
    invalid = None
    probes: dict[str, np.ndarray] = {}
    if n_images is not None:
        predictions, invalid = _load_predictions(out / "predictions.npy", n_images, limits)
        probes = _load_probes(out / "probes.npy", data.get("probes"), predictions, limits)
    maps: list[FeatureMapArray] = []
    if n_feature_images > 0:
        maps = load_feature_maps(out, data.get("feature_maps"), n_feature_images)
    for key in ("probes", "feature_maps"):
        v = raw_t.get(key)
        if isinstance(v, int | float) and math.isfinite(v):
            timings[key] = float(v)
    return EvaluationResult(
        layers=clean_layers,
        total_params=int(total),
        trainable_params=int(trainable),
        input_shape=input_shape,
        predictions=predictions,
        timings=timings,
        peak_rss_bytes=int(rss) if _is_count(rss) else None,
        device="cpu" if gpu is None else f"gpu:{gpu}",
        backend=backend,
        probes=probes,
        invalid_rows=invalid,
        feature_maps=maps,
    )


def _is_count(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _clean_shape(v: object) -> list | None:
    if not isinstance(v, list):
        return None
    if all(d is None or _is_count(d) for d in v):
        return list(v)
    if all(isinstance(d, list) for d in v):  # several outputs
        return [_clean_shape(d) for d in v]
    return None


def _clean_layer(r: dict) -> dict:
    def text(key: str) -> str:
        v = r.get(key)
        return v[:200] if isinstance(v, str) else ""

    params, trainable = r.get("params"), r.get("trainable_params")
    return {
        "name": text("name"),
        "type": text("type"),
        "output_shape": _clean_shape(r.get("output_shape")),
        "params": int(params) if _is_count(params) else 0,
        "trainable_params": int(trainable) if _is_count(trainable) else 0,
        "path": text("path"),
    }


def _load_predictions(
    path: Path, n_images: int, limits: SandboxLimits
) -> tuple[np.ndarray, np.ndarray | None]:
    """The predictions, with non-finite values set to 0, and which rows held them (None
    when none did): such rows are scored as wrong and explained, never trusted."""
    try:
        if path.is_symlink() or not path.is_file():
            raise _bad("no predictions were written")
        arr = _load_npy(path, limits.max_file_bytes)
    except NotGradable:
        raise
    except (OSError, ValueError, EOFError, MemoryError) as exc:
        raise _bad("the predictions file is unreadable") from exc
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
        raise NotGradable("The model's predictions are not numbers.")
    if arr.ndim != 2:
        raise NotGradable(
            f"The model's output has shape {list(arr.shape)}; expected one row of "
            "class scores per image (a 2-D output)."
        )
    if arr.shape[0] != n_images:
        raise NotGradable(f"The model returned {arr.shape[0]} predictions for {n_images} images.")
    with np.errstate(over="ignore", invalid="ignore"):
        arr = arr.astype(np.float32)
    finite = np.isfinite(arr)
    if finite.all():
        return arr, None
    return np.where(finite, arr, np.float32(0)), ~finite.all(axis=1)


MAX_PROBES = 16


def _load_probes(
    path: Path, names: object, predictions: np.ndarray, limits: SandboxLimits
) -> dict[str, np.ndarray]:
    """The probe outputs, or none at all: they are evidence for feedback, never the grade,
    so anything malformed (wrong shape, too large, non-finite) is dropped, not refused."""
    if not isinstance(names, list) or not names or len(names) > MAX_PROBES:
        return {}
    if not all(isinstance(n, str) and len(n) <= 32 for n in names) or len(set(names)) < len(names):
        return {}
    try:
        arr = _load_npy(path, limits.max_file_bytes)
    except (OSError, ValueError, EOFError, MemoryError):
        return {}
    if (
        not isinstance(arr, np.ndarray)
        or arr.dtype.kind not in "fiu"
        or arr.ndim != 3
        or arr.shape[0] != len(names)
        or not 0 < arr.shape[1] <= predictions.shape[0]
        or arr.shape[2] != predictions.shape[1]
    ):
        return {}
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        return {}
    return {name: arr[i] for i, name in enumerate(names)}


def _fmap_entry(entry: object) -> tuple[str, str, tuple[int, int, int]] | None:
    """A manifest entry's name, type and real (height, width, channels), or None."""
    if not isinstance(entry, dict):
        return None
    name, kind, shape = entry.get("name"), entry.get("type"), entry.get("shape")
    if not isinstance(name, str) or not isinstance(kind, str) or not 0 < len(name) <= 200:
        return None
    if not 0 < len(kind) <= 64 or not isinstance(shape, list) or len(shape) != 3:
        return None
    if not all(_is_count(d) and 0 < d <= 1_000_000 for d in shape):
        return None
    return name, kind, (shape[0], shape[1], shape[2])


def load_feature_maps(out: Path, manifest: object, n_images: int) -> list[FeatureMapArray]:
    """The feature maps the sandbox wrote, each re-checked against the caps; like the
    probes they are feedback, never the grade, so anything wrong (a malformed manifest, a
    link, a file or array over its cap, another dtype or shape, a non-finite value) is
    dropped, and nothing past FMAP_TOTAL_MAX_BYTES is read. File names are the trusted
    side's (``fmap_00.npy`` ...), never taken from the manifest."""
    if not isinstance(manifest, list) or not 0 < n_images <= FMAP_MAX_IMAGES:
        return []
    found: list[FeatureMapArray] = []
    total = 0
    for i, entry in enumerate(manifest[:FMAP_MAX_LAYERS]):
        described = _fmap_entry(entry)
        if described is None:
            continue
        name, kind, (height, width, channels) = described
        try:
            arr = _load_npy(out / f"fmap_{i:02d}.npy", FMAP_FILE_MAX_BYTES)
        except (OSError, ValueError, EOFError, MemoryError):
            continue
        if (
            not isinstance(arr, np.ndarray)
            or arr.dtype not in (np.dtype("<f4"), np.dtype("<f2"))
            or arr.ndim != 4
            or arr.shape[0] != n_images
            or not 0 < arr.shape[1] <= min(height, FMAP_MAX_SIDE)
            or not 0 < arr.shape[2] <= min(width, FMAP_MAX_SIDE)
            or not 0 < arr.shape[3] <= min(channels, FMAP_MAX_CHANNELS)
            or total + arr.nbytes > FMAP_TOTAL_MAX_BYTES
        ):
            continue
        if not np.isfinite(arr).all():
            continue
        total += arr.nbytes
        found.append(FeatureMapArray(name, kind, (height, width, channels), arr.astype(np.float32)))
    return found
