"""What a sandbox leaves behind is read on the trusted side with bounds: a link, a FIFO
or an .npy whose header promises terabytes is refused cheaply, never allocated."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from grader.errors import NotGradable
from grader.sandbox.policy import SandboxLimits
from grader.sandbox.verdict import (
    FMAP_FILE_MAX_BYTES,
    FMAP_MAX_CHANNELS,
    FMAP_MAX_LAYERS,
    FMAP_MAX_SIDE,
    FMAP_TOTAL_MAX_BYTES,
    collect,
    load_feature_maps,
)
from grader.settings import Settings


def _summary(out: Path, **extra: object) -> None:
    data = {"layers": [], "total_params": 0, "trainable_params": 0, **extra}
    (out / "summary.json").write_text(json.dumps(data))


def _huge_header(path: Path) -> None:
    header = np.lib.format.header_data_from_array_1_0(np.ones((1,), np.float32))
    header["shape"] = (10**6, 10**6)
    with path.open("wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        fh.write(b"\0" * 16)


@pytest.fixture
def limits() -> SandboxLimits:
    return SandboxLimits.from_settings(Settings())


def test_predictions_that_promise_more_than_they_hold_are_refused(
    tmp_path: Path, limits: SandboxLimits
) -> None:
    _summary(tmp_path)
    _huge_header(tmp_path / "predictions.npy")
    with pytest.raises(NotGradable, match="unusable results"):
        collect(tmp_path, 4, 0.0, limits, None)


def test_a_crafted_probe_file_is_dropped_and_the_grade_stands(
    tmp_path: Path, limits: SandboxLimits
) -> None:
    _summary(tmp_path, probes=["flip"])
    np.save(tmp_path / "predictions.npy", np.eye(10, dtype=np.float32)[:4])
    _huge_header(tmp_path / "probes.npy")
    result = collect(tmp_path, 4, 0.0, limits, None)
    assert result.predictions is not None and result.probes == {}


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_summary_that_is_not_a_regular_file_is_refused(
    tmp_path: Path, limits: SandboxLimits, kind: str
) -> None:
    if kind == "symlink":
        os.symlink("/dev/zero", tmp_path / "summary.json")
    else:
        os.mkfifo(tmp_path / "summary.json")  # reading it would block forever
    with pytest.raises(NotGradable, match="summary"):
        collect(tmp_path, None, 0.0, limits, None)


# --------------------------------------------------------------------------- feature maps
def _fmap(out: Path, i: int, arr: np.ndarray) -> dict:
    """One layer as the launcher writes it, and its manifest entry."""
    np.save(out / f"fmap_{i:02d}.npy", arr, allow_pickle=False)
    return {"name": f"conv_{i}", "type": "Conv2D", "shape": [222, 222, 64]}


def _good(n: int = 2) -> np.ndarray:
    return np.random.default_rng(0).random((n, 44, 44, 8), dtype=np.float32)


def test_well_formed_feature_maps_come_back(tmp_path: Path, limits: SandboxLimits) -> None:
    manifest = [_fmap(tmp_path, i, _good()) for i in range(3)]
    _summary(tmp_path, feature_maps=manifest)
    np.save(tmp_path / "predictions.npy", np.eye(10, dtype=np.float32)[:4])
    result = collect(tmp_path, 4, 0.0, limits, None, 2)
    assert [m.name for m in result.feature_maps] == ["conv_0", "conv_1", "conv_2"]
    assert result.feature_maps[0].shape == (222, 222, 64)
    assert result.feature_maps[0].values.dtype == np.float32
    assert collect(tmp_path, 4, 0.0, limits, None).feature_maps == []  # none asked for


def _hostile(out: Path, case: str) -> None:
    path = out / "fmap_00.npy"
    good = _good()
    if case == "float64":
        np.save(path, good.astype(np.float64))
    elif case == "int":
        np.save(path, (good * 100).astype(np.int32))
    elif case == "object":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif case == "nan":
        good[1, 3, 3, 3] = np.nan
        np.save(path, good)
    elif case == "inf":
        good[0, 0, 0, 0] = np.inf
        np.save(path, good)
    elif case == "too wide":
        np.save(path, np.zeros((2, 44, FMAP_MAX_SIDE + 1, 8), np.float32))
    elif case == "too many channels":
        np.save(path, np.zeros((2, 44, 44, FMAP_MAX_CHANNELS + 1), np.float32))
    elif case == "other image count":
        np.save(path, np.zeros((3, 44, 44, 8), np.float32))
    elif case == "larger than the layer":
        np.save(path, np.zeros((2, 44, 44, 8), np.float32))
    elif case == "3-d":
        np.save(path, np.zeros((2, 44, 44), np.float32))
    elif case == "big-endian":
        np.save(path, good.astype(">f4"))
    elif case == "huge header":
        _huge_header(path)
    elif case == "huge file":
        np.save(path, good)
        with path.open("ab") as fh:
            fh.truncate(FMAP_FILE_MAX_BYTES + 1)
    elif case == "symlink":
        os.symlink("/dev/zero", path)
    elif case == "fifo":
        os.mkfifo(path)
    elif case == "truncated":
        np.save(path, good)
        with path.open("r+b") as fh:
            fh.truncate(200)


HOSTILE = [
    "float64", "int", "object", "nan", "inf", "too wide", "too many channels",
    "other image count", "larger than the layer", "3-d", "big-endian", "huge header",
    "huge file", "symlink", "fifo", "truncated",
]  # fmt: skip


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_feature_map_is_dropped_and_the_others_stand(
    tmp_path: Path, limits: SandboxLimits, case: str
) -> None:
    _hostile(tmp_path, case)
    first = {"name": "evil", "type": "Conv2D", "shape": [222, 222, 64]}
    if case == "larger than the layer":
        first["shape"] = [20, 20, 4]  # the array claims more than the layer has
    manifest = [first, _fmap(tmp_path, 1, _good())]
    _summary(tmp_path, feature_maps=manifest)
    np.save(tmp_path / "predictions.npy", np.eye(10, dtype=np.float32)[:4])
    result = collect(tmp_path, 4, 0.0, limits, None, 2)  # never raises
    assert [m.name for m in result.feature_maps] == ["conv_1"]
    assert result.predictions is not None  # the grade stands


@pytest.mark.parametrize(
    "manifest",
    [
        "fmap_00.npy",
        {"0": "fmap_00.npy"},
        [{"name": "x" * 201, "type": "Conv2D", "shape": [4, 4, 4]}],
        [{"name": "c", "type": "Conv2D", "shape": [4, 4]}],
        [{"name": "c", "type": "Conv2D", "shape": [4, 4, True]}],
        [{"name": "c", "type": "Conv2D", "shape": [4, 4, 10**9]}],
        [{"name": "c", "type": None, "shape": [4, 4, 4]}],
        ["../../etc/passwd"],
    ],
)
def test_a_malformed_manifest_reads_nothing(tmp_path: Path, manifest: object) -> None:
    np.save(tmp_path / "fmap_00.npy", np.zeros((2, 4, 4, 4), np.float32))
    assert load_feature_maps(tmp_path, manifest, 2) == []


def test_the_feature_map_channel_never_returns_more_than_its_caps(tmp_path: Path) -> None:
    """A payload that writes as much as it can (many layers, each file at its cap)
    gets at most FMAP_MAX_LAYERS layers and FMAP_TOTAL_MAX_BYTES back."""
    biggest = np.ones((4, FMAP_MAX_SIDE, FMAP_MAX_SIDE, FMAP_MAX_CHANNELS), np.float32)
    manifest = [_fmap(tmp_path, i, biggest) for i in range(FMAP_MAX_LAYERS * 2)]
    assert all(os.path.getsize(tmp_path / f"fmap_{i:02d}.npy") <= FMAP_FILE_MAX_BYTES
               for i in range(len(manifest)))  # fmt: skip
    found = load_feature_maps(tmp_path, manifest, 4)
    assert 0 < len(found) <= FMAP_MAX_LAYERS
    assert sum(m.values.nbytes for m in found) <= FMAP_TOTAL_MAX_BYTES
    assert len(found) < FMAP_MAX_LAYERS  # the total cap bit before the layer cap


def test_nan_predictions_are_zeroed_and_their_rows_named(
    tmp_path: Path, limits: SandboxLimits
) -> None:
    preds = np.eye(10, dtype=np.float32)[:4]
    preds[1, 3] = np.nan
    preds[3, 0] = -np.inf
    _summary(tmp_path)
    np.save(tmp_path / "predictions.npy", preds)
    result = collect(tmp_path, 4, 0.0, limits, None)
    assert result.predictions is not None and np.isfinite(result.predictions).all()
    assert result.invalid_rows is not None
    assert result.invalid_rows.tolist() == [False, True, False, True]
