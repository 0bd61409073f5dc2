"""Tests for grader.inspection.modelfile: hostile uploads are refused before Keras sees them."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from grader.errors import NotGradable, SandboxUnavailable
from grader.inspection import modelfile
from grader.inspection.modelfile import ModelFile, read_model_file
from grader.settings import Settings

try:  # tests/ may or may not become a package; both import styles work
    from tests import hostile
except ImportError:
    import hostile

REPO = Path(__file__).resolve().parent.parent

# What each refusal must mention (a fixture added to the registry later is
# still checked for refusal, just without a message expectation).
EXPECTED_REASON = {
    "empty_file": "The file is empty.",
    "garbage_file": "not a Keras model file",
    "pickle_file": "pickle",
    "pickle_named_h5": "pickle",
    "onnx_file": "not a Keras model file",
    "savedmodel_dir": "model.save('model.keras')",
    "savedmodel_named_keras": "TensorFlow SavedModel",
    "torch_zip": "PyTorch",
    "weights_only_h5": "no model architecture",
    "keras_named_h5": "Rename it to end in .keras",
    "h5_named_keras": "Rename it to end in .h5",
    "keras_named_txt": "must end in .keras or .h5",
    "truncated_keras": "damaged or truncated",
    "truncated_h5": "damaged or truncated",
    "bad_json_keras": "not valid JSON",
    "deep_json_keras": "nested too deeply",
    "nan_config_keras": "NaN",
    "surrogate_config_keras": "invalid text",
    "weights_not_h5_keras": "not HDF5",
    "zip_slip_keras": "unsafe path",
    "absolute_path_keras": "unsafe path",
    "backslash_keras": "unsafe path",
    "symlink_member_keras": "symbolic link",
    "duplicate_member_keras": "twice",
    "extra_member_keras": "unexpected file",
    "npz_weights_keras": "unexpected file",
    "encrypted_keras": "encrypted",
    "lying_size_keras": "damaged",
    "huge_declared_keras": "zip bomb",
    "zip_bomb_keras": "zip bomb",
    "h5_external_link": "links to another file",
    "h5_external_storage": "keeps its data in another file",
    "h5_soft_link": "soft link",
    "h5_virtual_dataset": "virtual dataset",
    "h5_object_reference": "not numeric weights",
    "h5_opaque_dtype": "not numeric weights",
    "h5_string_dataset": "not numeric weights",
    "h5_unknown_filter": "compression filter",
    "h5_sparse_bomb": "over the limit",
    "h5_compressed_bomb": "stores only",
    "h5_corrupt_global_heap": "took too long",
    "keras_weights_external_link": "links to another file",
    "keras_weights_external_storage": "keeps its data in another file",
}


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("modelfile")


@pytest.fixture(scope="module")
def plain_keras(workdir: Path) -> Path:
    return hostile.plain_keras(workdir)


@pytest.fixture(scope="module")
def plain_h5(workdir: Path) -> Path:
    return hostile.plain_h5(workdir)


@pytest.fixture(scope="module")
def zip_bomb(workdir: Path) -> Path:
    return hostile.zip_bomb_keras(workdir)


@pytest.fixture(scope="module")
def one_megabyte_keras(workdir: Path) -> Path:
    """A ~1 MB real .keras (Dense 512x512) for the speed test."""
    import keras

    model = keras.Sequential([keras.Input((512,)), keras.layers.Dense(512), keras.layers.Dense(10)])
    path = workdir / "one_mb.keras"
    model.save(path)
    return path


def _refusal(path: Path, settings: Settings) -> str:
    with pytest.raises(NotGradable) as info:
        read_model_file(path, settings)
    reason = info.value.reason
    assert "Traceback" not in reason and len(reason) < 400
    return reason


# --------------------------------------------------------------------------- genuine files


def test_plain_keras_is_read(plain_keras: Path, settings: Settings) -> None:
    result = read_model_file(plain_keras, settings)
    assert isinstance(result, ModelFile)
    assert result.format == "keras"
    assert result.keras_version == "3.15.1"
    with zipfile.ZipFile(plain_keras) as zf:
        assert result.model_config == json.loads(zf.read("config.json"))
    assert result.model_config["class_name"] == "Sequential"
    assert result.weight_shapes["layers/conv2d/vars/0"] == (3, 3, 3, 4)
    assert result.weight_shapes["layers/dense/vars/1"] == (10,)


def test_plain_h5_is_read(plain_h5: Path, settings: Settings) -> None:
    result = read_model_file(plain_h5, settings)
    assert result.format == "h5"
    assert result.keras_version == "3.15.1"
    with h5py.File(plain_h5, "r") as f:
        assert result.model_config == json.loads(f.attrs["model_config"])
    assert result.weight_shapes["model_weights/conv2d/sequential/conv2d/kernel"] == (3, 3, 3, 4)


def test_keras_writes_exactly_three_members(plain_keras: Path) -> None:
    """The allowlist mirrors what Keras 3.15.1 writes for plain layers (all stored, no dirs)."""
    with zipfile.ZipFile(plain_keras) as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == ["metadata.json", "config.json", "model.weights.h5"]
    assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}
    assert set(modelfile.ALLOWED_MEMBERS) == {i.filename for i in infos}


def test_h5_with_user_block_is_found(workdir: Path, settings: Settings) -> None:
    path = hostile.h5_with_user_block(workdir)
    assert path.read_bytes()[:8] != modelfile.HDF5_MAGIC
    assert read_model_file(path, settings).format == "h5"


def test_suffix_is_case_insensitive(workdir: Path, settings: Settings) -> None:
    path = hostile.plain_keras(workdir, name="UPPER.KERAS")
    assert read_model_file(path, settings).format == "keras"


# --------------------------------------------------------------------------- hostile files


@pytest.fixture
def short_h5_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files that make libhdf5 spin are killed after 2 s instead of 5 in tests."""
    monkeypatch.setattr(modelfile, "H5_TIMEOUT_S", 2.0)


@pytest.mark.usefixtures("short_h5_timeout")
@pytest.mark.parametrize("name", sorted(hostile.REFUSED_BY_FILE_CHECKS))
def test_hostile_file_is_refused(name: str, tmp_path: Path, settings: Settings) -> None:
    marker = tmp_path / "MARKER"
    path = hostile.REFUSED_BY_FILE_CHECKS[name](tmp_path, marker)
    reason = _refusal(path, settings)
    assert EXPECTED_REASON.get(name, "") in reason
    assert not marker.exists()


@pytest.mark.parametrize("name", sorted(hostile.PASS_FILE_CHECKS))
def test_hostile_config_passes_intact(name: str, tmp_path: Path, settings: Settings) -> None:
    """Well-formed files with hostile configs reach the allowlist stage unchanged."""
    marker = tmp_path / "MARKER"
    path = hostile.PASS_FILE_CHECKS[name](tmp_path, marker)
    assert not marker.exists()
    result = read_model_file(path, settings)
    assert not marker.exists()
    assert result.model_config == _stored_config(path)
    text = json.dumps(result.model_config)
    needle = {
        "lambda_keras": '"Lambda"',
        "lambda_h5": '"Lambda"',
        "nested_lambda_keras": '"Lambda"',
        "os_system_layer_keras": '"module": "os"',
        "tfsmlayer_keras": '"TFSMLayer"',
        "custom_class_keras": "hostile>EvilLayer",
        "trillion_dense_keras": str(10**12),
    }.get(name, "")
    assert needle in text


def _stored_config(path: Path) -> dict[str, Any]:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            return json.loads(zf.read("config.json"))
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["model_config"])


def test_nested_lambda_sits_inside_a_submodel(tmp_path: Path, settings: Settings) -> None:
    config = read_model_file(hostile.nested_lambda_keras(tmp_path), settings).model_config
    inner = [layer for layer in config["config"]["layers"] if layer["class_name"] == "Sequential"]
    assert inner and "Lambda" in json.dumps(inner[0])


# --------------------------------------------------------------------------- limits from Settings


def test_upload_size_limit(plain_keras: Path) -> None:
    reason = _refusal(plain_keras, Settings(max_upload_bytes=1000))
    assert "over the upload limit" in reason


def test_total_uncompressed_limit(zip_bomb: Path) -> None:
    """With the ratio check relaxed, the declared total still stops the bomb."""
    settings = Settings(max_compression_ratio=1e9, max_uncompressed_bytes=100 * 1024 * 1024)
    assert "unpacks to" in _refusal(zip_bomb, settings)


def test_ratio_limit_is_per_member(zip_bomb: Path) -> None:
    assert "expands" in _refusal(zip_bomb, Settings())


def test_hdf5_declared_total_limit(plain_h5: Path) -> None:
    """The sum of declared dataset sizes counts, not the file size."""
    assert "declares more than" in _refusal(plain_h5, Settings(max_uncompressed_bytes=1_500))


def test_member_read_is_capped_whatever_the_header_says() -> None:
    """A stream longer than declared is cut at the cap, not read into memory."""

    class Endless:
        def read(self, n: int) -> bytes:
            return b"\0" * n

        def __enter__(self) -> Endless:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    class FakeZip:
        def open(self, info: zipfile.ZipInfo) -> Endless:
            return Endless()

    info = zipfile.ZipInfo("config.json")
    info.file_size = 10
    with pytest.raises(NotGradable, match="larger than allowed"):
        modelfile._read_member(FakeZip(), info, cap=1000)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- odd uploads


def test_symlink_upload_is_refused(plain_keras: Path, tmp_path: Path, settings: Settings) -> None:
    link = tmp_path / "link.keras"
    link.symlink_to(plain_keras)
    assert "symbolic link" in _refusal(link, settings)


def test_fifo_does_not_hang(tmp_path: Path, settings: Settings) -> None:
    fifo = tmp_path / "fifo.keras"
    os.mkfifo(fifo)
    assert "not a regular file" in _refusal(fifo, settings)


def test_missing_file(tmp_path: Path, settings: Settings) -> None:
    assert "could not be found" in _refusal(tmp_path / "nope.keras", settings)


def test_fork_failure_is_an_infrastructure_error(
    plain_keras: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No isolation means no HDF5 parsing at all, and it is not the student's fault."""

    def no_fork() -> int:
        raise OSError("Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    with pytest.raises(SandboxUnavailable):
        read_model_file(plain_keras, settings)


def test_concurrent_reads_from_threads(
    plain_keras: Path, plain_h5: Path, settings: Settings
) -> None:
    """Forking while other threads use h5py must neither deadlock nor mix answers."""
    paths = [plain_keras, plain_h5] * 12
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda p: read_model_file(p, settings), paths))
    assert [r.format for r in results] == ["keras", "h5"] * 12


@pytest.mark.usefixtures("short_h5_timeout")
@pytest.mark.parametrize("which", ["keras", "h5"])
def test_mutations_never_escape_as_tracebacks(
    which: str, plain_keras: Path, plain_h5: Path, tmp_path: Path, settings: Settings
) -> None:
    """Truncations and byte flips give a ModelFile or NotGradable, nothing else."""
    original = (plain_keras if which == "keras" else plain_h5).read_bytes()
    rng = np.random.default_rng(1234)
    target = tmp_path / f"mutant.{which}"
    for i in range(100):
        data = bytearray(original)
        if i % 3 == 0:
            data = data[: int(rng.integers(1, len(data)))]
        else:
            for pos in rng.integers(0, len(data), size=int(rng.integers(1, 8))):
                data[pos] = int(rng.integers(0, 256))
        target.write_bytes(bytes(data))
        with contextlib.suppress(NotGradable):
            read_model_file(target, settings)


# --------------------------------------------------------------------------- speed, no TF


def test_fast_and_never_imports_tensorflow(one_megabyte_keras: Path) -> None:
    """Runs in a fresh interpreter: importing and calling must not pull in TF or Keras."""
    size = one_megabyte_keras.stat().st_size
    assert 900_000 < size < 1_300_000
    code = f"""
import json, sys, time
t0 = time.perf_counter()
from grader.inspection.modelfile import read_model_file
from grader.settings import Settings
t1 = time.perf_counter()
settings = Settings()
times = []
for _ in range(5):
    start = time.perf_counter()
    read_model_file({str(one_megabyte_keras)!r}, settings)
    times.append(time.perf_counter() - start)
best = min(times)
print(json.dumps({{"import_s": t1 - t0, "call_s": best,
    "tf": "tensorflow" in sys.modules, "keras": "keras" in sys.modules}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["tf"] is False and result["keras"] is False
    assert result["call_s"] < 0.3, result


def test_zipped_savedmodel_says_how_to_save_an_accepted_file(tmp_path: Path, settings) -> None:
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("my_model/saved_model.pb", b"\x08\x01")
        zf.writestr("my_model/variables/variables.index", b"")
    reason = _refusal(path, settings)
    assert "TensorFlow SavedModel" in reason and "model.save('model.h5')" in reason


def test_a_keras_version_in_unicode_digits_is_not_a_traceback() -> None:
    from grader.inspection.modelfile import written_by

    assert written_by("³.1") == 3 and written_by("２.15") == 3 and written_by("2.15") == 2
