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
from grader.sandbox.verdict import collect
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
