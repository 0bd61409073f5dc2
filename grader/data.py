"""Finding the CIFAR-10 test set, wherever this machine keeps it.

Order: an explicit path, ``GRADER_CIFAR10``, Keras's own cache, then a
download through ``keras.datasets.cifar10``. The images are materialised once
as a ``.npy`` file that sandboxes map read-only; the labels stay in the
trusted process.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grader.errors import ConfigurationError, TestSetMissing

HOW_TO_PROVIDE = (
    "Provide the CIFAR-10 test set with --data PATH or the GRADER_CIFAR10 environment "
    "variable: an .npz file with arrays x (10000, 32, 32, 3) uint8 and y, a folder holding "
    "test.npz, the official cifar-10-batches-py folder or cifar-10-python.tar.gz. Online, "
    "the grader downloads it through keras.datasets.cifar10."
)


CLASSES = 10


@dataclass(frozen=True)
class TestSet:
    images_path: Path  # uint8 NHWC .npy, safe to bind read-only into a sandbox
    labels: np.ndarray
    source: str

    def images(self) -> np.ndarray:
        return np.load(self.images_path, mmap_mode="r", allow_pickle=False)


class _ArraysOnly(pickle.Unpickler):
    """The official batches are pickles: allow only what they contain."""

    _allowed = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
        }
    )

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._allowed:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in CIFAR-10 batch")
        return super().find_class(module, name)


def _from_batch(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    batch = _ArraysOnly(io.BytesIO(raw), encoding="bytes").load()
    data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(data), np.asarray(batch[b"labels"], dtype=np.uint8)


def _read_source(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if path.is_dir():
        for candidate in (path / "test.npz", path / "test_batch", path / "cifar-10-batches-py"):
            if candidate.exists():
                return _read_source(candidate)
        raise ConfigurationError(f"{path}: no test.npz or test_batch inside. {HOW_TO_PROVIDE}")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            x = np.asarray(archive["x"])
            if x.dtype != np.uint8:  # a cast would turn 0–1 floats into black images
                raise ConfigurationError(f"{path}: x must be uint8 pixels 0–255, not {x.dtype}.")
            return x, np.asarray(archive["y"]).reshape(-1)
    if path.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(path, "r:gz") as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("test_batch"))
            handle = tar.extractfile(member)
            assert handle is not None
            return _from_batch(handle.read())
    if path.name == "test_batch":
        return _from_batch(path.read_bytes())
    raise ConfigurationError(f"{path}: not a CIFAR-10 file I can read. {HOW_TO_PROVIDE}")


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "keras-grader"


def _keras_cache() -> Path | None:
    root = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"
    for candidate in (root / "cifar-10-batches-py", root / "cifar-10-batches-py-target"):
        if (candidate / "test_batch").exists():
            return candidate / "test_batch"
    return None


def _download() -> Path:
    try:
        import keras

        keras.datasets.cifar10.load_data()
    except Exception as exc:
        raise TestSetMissing(
            f"No CIFAR-10 test set found and the download failed ({exc}). {HOW_TO_PROVIDE}"
        ) from None
    found = _keras_cache()
    if found is None:
        raise ConfigurationError(
            f"keras downloaded CIFAR-10 but it was not found. {HOW_TO_PROVIDE}"
        )
    return found


def _save(path: Path, array: np.ndarray) -> None:
    """Write a cache file atomically, under a temporary name no other thread or process
    shares, so that a reader never sees half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp.npy")
    with os.fdopen(fd, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _materialise(source: Path, kind: str = "cifar10-test") -> TestSet:
    stat = source.stat()
    key = hashlib.sha256(
        f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()
    ).hexdigest()
    cache = _cache_dir()
    images_path = cache / f"{kind}-{key[:16]}.npy"
    labels_path = cache / f"{kind}-{key[:16]}-labels.npy"
    if images_path.exists() and labels_path.exists():
        return TestSet(images_path, np.load(labels_path, allow_pickle=False), str(source))
    x, y = _read_source(source)
    if x.ndim != 4 or x.shape[1:] != (32, 32, 3) or len(x) != len(y) or len(x) == 0:
        raise ConfigurationError(
            f"{source}: expected images of shape (N, 32, 32, 3) and N labels, got {x.shape} "
            f"and {y.shape}."
        )
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= CLASSES:
        raise ConfigurationError(f"{source}: labels must be class numbers 0 to {CLASSES - 1}.")
    cache.mkdir(parents=True, exist_ok=True)
    _save(images_path, x)
    _save(labels_path, y.astype(np.uint8))
    return TestSet(images_path, y.astype(np.uint8), str(source))


def test_set_available(configured: Path | None = None) -> bool:
    """Whether a test set is here now, without downloading anything (cheap: the
    watchdog asks it on every sweep while evaluations wait)."""
    if configured is not None:
        return configured.exists()
    return _keras_cache() is not None


def find_test_set(explicit: Path | None = None, configured: Path | None = None) -> TestSet:
    """Locate and prepare the CIFAR-10 test split; ConfigurationError says how to fix it."""
    for given in (explicit, configured):
        if given is not None:
            if not given.exists():
                raise TestSetMissing(f"{given}: no such file or folder. {HOW_TO_PROVIDE}")
            return _materialise(given)
    return _materialise(_keras_cache() or _download())


def load_holdout(path: Path) -> TestSet:
    """An instructor's second held-out set (an ``.npz`` with ``x`` and ``y``, e.g.
    CIFAR-10.1), prepared like the test set; ConfigurationError says what is wrong."""
    if path.suffix != ".npz" or not path.is_file():
        raise ConfigurationError(f"{path}: the held-out set must be an .npz file with x and y.")
    try:
        return _materialise(path, "holdout")
    except ConfigurationError:
        raise
    except Exception as exc:  # an instructor's file: whatever breaks is reported, not raised
        raise ConfigurationError(f"{path}: the held-out set could not be read ({exc}).") from None


def combined_images(first: TestSet, second: TestSet) -> Path:
    """One images file holding ``first``'s images then ``second``'s, so that the sandbox
    predicts both in one run (its predictions are split again on the trusted side)."""
    key = hashlib.sha256(f"{first.images_path}|{second.images_path}".encode()).hexdigest()
    path = _cache_dir() / f"combined-{key[:16]}.npy"
    if not path.exists():
        _save(path, np.concatenate([first.images(), second.images()]))
    return path
