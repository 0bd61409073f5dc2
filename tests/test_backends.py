"""The same grade on every Keras backend: TensorFlow, JAX and PyTorch in the real sandbox.

Keras 3 files do not depend on the backend, so a file graded on JAX or PyTorch must get
the verdict, checks and (within float rounding) the accuracy it gets on TensorFlow. The
sandbox's walls must hold whichever backend runs inside. A backend whose package is not
installed is skipped with the reason. The GPU paths are tested as logic only: this
machine has no GPU (bench/gpu_check.sh measures them on a GPU host).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import textwrap
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from sandboxutil import limits, world_dir
from testutil import real_cifar10, shipped_spec

from grader.cli import cli
from grader.data import find_test_set
from grader.errors import ConfigurationError
from grader.pipeline import grade_file
from grader.report import Report
from grader.sandbox import WarmEvaluator, evaluate_model, run_sandboxed, sandbox_status
from grader.sandbox.policy import (
    BACKENDS,
    GPU_ADDRESS_SPACE_BYTES,
    SandboxLimits,
    launcher_args,
    sandbox_argv,
    sandbox_env,
)
from grader.sandbox.runner import resolve_backend
from grader.settings import Settings, get_settings

FIXTURE = Path(__file__).parent / "fixtures" / "day097_cifar10.keras"
LAUNCHER_DIR = Path(__file__).resolve().parent.parent / "grader" / "sandbox"
#: Test images per run: enough for argmax agreement to mean something, few enough for CI.
N_IMAGES = 1000
#: The CPU build of PyTorch (a plain ``torch`` requirement pulls a CUDA build of GBs).
PIP_NAME = {"torch": "torch==2.13.0"}


def _installed(backend: str) -> bool:
    return importlib.util.find_spec(backend) is not None


def backend_params() -> list[Any]:
    """Every backend, skipped with the reason when its package is missing here."""
    return [
        pytest.param(
            b,
            marks=pytest.mark.skipif(
                not _installed(b),
                reason=f"{b} is not installed (pip install {PIP_NAME.get(b, b)})",
            ),
            id=b,
        )
        for b in BACKENDS
    ]


_OK, _WHY = sandbox_status()
needs_sandbox = pytest.mark.skipif(not _OK, reason=f"no sandbox here: {_WHY}")


# --------------------------------------------------------------------------- policy (logic)
@pytest.mark.parametrize("backend", BACKENDS)
def test_each_backend_gets_its_own_environment_and_bounded_threads(backend: str) -> None:
    env = sandbox_env(None, backend)
    assert env["KERAS_BACKEND"] == backend
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    assert env["OMP_NUM_THREADS"] == "4"
    # TensorFlow's pool sizes only where TensorFlow runs: the others never import it.
    assert ("TF_NUM_INTRAOP_THREADS" in env) == (backend == "tensorflow")
    if backend == "jax":
        assert env["JAX_PLATFORMS"] == "cpu"  # no probing for CUDA plugins on a CPU job
        assert env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"


def test_an_unknown_backend_is_refused_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="unknown Keras backend"):
        sandbox_env(None, "mxnet")
    monkeypatch.setenv("GRADER_KERAS_BACKEND", "mxnet")
    with pytest.raises(ConfigurationError, match="GRADER_KERAS_BACKEND"):
        get_settings()
    monkeypatch.setenv("GRADER_KERAS_BACKEND", "jax")
    assert get_settings().keras_backend == "jax"
    result = CliRunner().invoke(
        cli, ["check", str(FIXTURE), "-a", "day097-cifar10", "--backend", "mxnet"]
    )
    assert result.exit_code == 2 and "mxnet" in result.output


def test_a_keras2_file_runs_on_tensorflow_whatever_the_worker_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """tf_keras exists only for TensorFlow: the file falls back (and the report says so)."""
    assert resolve_backend("jax", "keras") == "jax"
    if _installed("tensorflow"):
        assert resolve_backend("jax", "tf_keras") == "tensorflow"
        assert resolve_backend("torch", "tf_keras") == "tensorflow"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # no TensorFlow here
    with pytest.raises(ConfigurationError, match="needs TensorFlow"):
        resolve_backend("jax", "tf_keras")
    assert resolve_backend("tensorflow", "tf_keras") == "tensorflow"


@pytest.mark.parametrize("backend", BACKENDS)
def test_gpu_paths_per_backend_as_logic_only(backend: str) -> None:
    """No GPU on this machine: the argv a GPU job would get is checked, not run.

    Every backend sees only its own GPU (CUDA_VISIBLE_DEVICES and that GPU's device
    nodes), the CUDA address-space limit and no Landlock (it broke CUDA when measured
    with TensorFlow; not yet measured with JAX or PyTorch on a GPU).
    """
    lim = SandboxLimits(4 * 1024**3, 60, 60, 64, 1024**2)
    argv = sandbox_argv(
        ["python"], limits=lim, binds=[], gpu=1, backend=backend, device_exists=lambda _: True
    )
    joined = " ".join(argv)
    assert f"--setenv KERAS_BACKEND {backend}" in joined
    assert "--setenv CUDA_VISIBLE_DEVICES 1" in joined
    assert "--dev-bind /dev/nvidia1 /dev/nvidia1" in joined
    assert "/dev/nvidia0" not in joined
    assert f"--as={GPU_ADDRESS_SPACE_BYTES}" in joined
    env = sandbox_env(1, backend)
    if backend == "jax":
        assert env["JAX_PLATFORMS"] == "cuda"  # fail loudly rather than run on the CPU
    args = launcher_args(
        model="m", images=None, out_dir="/out", scale=1.0, offset=0.0, batch_size=1,
        gpu=1, landlock=True, write_dirs=["/tmp"],
    )  # fmt: skip
    assert "--landlock" not in args and args[args.index("--gpu") + 1] == "1"


def test_worker_and_check_offer_the_backend_option() -> None:
    for command in ("worker", "check"):
        result = CliRunner().invoke(cli, [command, "--help"])
        assert result.exit_code == 0 and "--backend" in result.output


# --------------------------------------------------------------------------- the walls
ESCAPE = """
import os, socket, sys
sys.path.insert(0, "{launcher}")
import launcher
seccomp = launcher.apply_seccomp()
abi = launcher.apply_landlock(["{work}", "/tmp"])  # as the cold launcher: /tmp is a tmpfs
print("started", seccomp, abi, flush=True)
backend = launcher.prepare_backend(None)
import keras
import numpy as np
model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3),
                          keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
y = model.predict_on_batch(np.ones((2, 8, 8, 3), "float32"))
print("predicted", keras.backend.backend(), backend, np.asarray(y).shape, flush=True)
print("tensorflow imported", "tensorflow" in sys.modules, flush=True)
print("jax imported", sys.modules.get("jax") is not None, flush=True)
attempts = {{
    "inet": lambda: socket.create_connection(("127.0.0.1", 9), timeout=2),
    "write_host": lambda: open("{host}/new", "w"),
    "write_usr": lambda: open("{python}/x", "w"),
    "write_view": lambda: open("{launcher}/x", "w"),
    "read_host": lambda: open("{secret}").read(),
    "exec": lambda: os.execv("/bin/true", ["true"]),
}}
for name, attempt in attempts.items():
    try:
        attempt()
        print("ALLOWED", name, flush=True)
    except OSError as exc:
        print("denied", name, exc.errno, flush=True)
open("{work}/ok", "w").write("1")
"""


@needs_sandbox
@pytest.mark.parametrize("backend", backend_params())
def test_walls_hold_whichever_backend_runs(tmp_path: Path, backend: str) -> None:
    """Confined like the launcher, then the backend is imported and predicts: no socket,
    no write outside its folder, no read outside its view, no exec."""
    work = world_dir(tmp_path / "work")
    os.chown(work, 65534, 65534)
    secret = world_dir(tmp_path / "host") / "secret.txt"
    secret.write_text("host data")
    secret.chmod(0o644)
    code = ESCAPE.format(
        launcher=LAUNCHER_DIR, work=work, secret=secret, host=secret.parent, python=sys.prefix
    )
    proc = run_sandboxed(
        [sys.executable, "-I", "-c", textwrap.dedent(code)],
        read_only=[LAUNCHER_DIR],
        limits=limits(wall_seconds=240, cpu_seconds=240, max_processes=128),
        writable_dir=work,
        backend=backend,
    )
    out = proc.stdout
    assert "started True" in out, proc.stderr[-2000:]
    assert f"predicted {backend} {backend} (2, 3)" in out, proc.stderr[-2000:]
    assert "ALLOWED" not in out, out
    for name in ("inet", "write_host", "write_usr", "write_view", "read_host", "exec"):
        assert f"denied {name}" in out
    if backend != "tensorflow":
        assert "tensorflow imported False" in out  # a JAX or torch job never loads TF
    if backend != "jax":
        assert "jax imported False" in out  # nor does Keras load JAX behind its back
    assert (work / "ok").read_text() == "1"


# --------------------------------------------------------------------------- same grade
def _homework_models(directory: Path) -> dict[str, Path]:
    """Two CNNs as students write them, with non-trivial BatchNorm statistics and the
    augmentation layers that are inactive at inference."""
    import keras
    from keras import layers

    def batchnorm_stats(model: Any, seed: int) -> None:
        rng = np.random.default_rng(seed)
        for layer in model.layers:
            if isinstance(layer, layers.BatchNormalization):
                gamma, beta, mean, var = layer.get_weights()
                layer.set_weights([
                    rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                    rng.normal(0, 0.2, mean.shape), rng.uniform(0.5, 2.0, var.shape),
                ])  # fmt: skip

    keras.utils.set_random_seed(7)
    plain = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            layers.RandomFlip("horizontal"),
            layers.RandomRotation(0.1),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.BatchNormalization(),
            layers.MaxPooling2D(),
            layers.SeparableConv2D(32, 3, padding="same", activation="relu"),
            layers.BatchNormalization(),
            layers.AveragePooling2D(2),
            layers.Dropout(0.3),
            layers.DepthwiseConv2D(3, padding="same", activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(10, activation="softmax"),
        ]
    )
    batchnorm_stats(plain, 1)
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(24, 3, strides=2, activation="relu")(inputs)
    x = layers.BatchNormalization()(x)
    shortcut = x
    x = layers.SeparableConv2D(24, 3, padding="same", activation="relu")(x)
    x = layers.Add()([x, shortcut])
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.5)(x)
    functional = keras.Model(inputs, layers.Dense(10)(x))  # logits, no softmax
    batchnorm_stats(functional, 2)
    paths = {name: directory / f"{name}.keras" for name in ("sequential", "functional")}
    plain.save(paths["sequential"])
    functional.save(paths["functional"])
    return paths


@pytest.fixture(scope="module")
def cifar_1000(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = real_cifar10()
    if data is None:
        pytest.skip("real CIFAR-10 not found (set GRADER_CIFAR10 or add ../shared/data/cifar10)")
    test = find_test_set(data)
    x = np.load(test.images_path, mmap_mode="r")[:N_IMAGES]
    path = tmp_path_factory.mktemp("cifar1000") / "test.npz"
    np.savez(path, x=np.ascontiguousarray(x), y=test.labels[:N_IMAGES])
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {"fixture": FIXTURE, **_homework_models(tmp_path_factory.mktemp("homework"))}


@pytest.fixture(scope="module")
def graded() -> dict[tuple[str, str], Report]:
    """Reports by (backend, model), filled by :func:`_grade` once per backend."""
    return {}


def _grade(
    graded: dict[tuple[str, str], Report], backend: str, models: dict[str, Path], data: Path
) -> dict[str, Report]:
    if not _OK:
        pytest.skip(f"no sandbox here: {_WHY}")
    settings = Settings()
    spec = shipped_spec("day097-cifar10")
    test_set = find_test_set(data)
    if (backend, "fixture") not in graded:
        with WarmEvaluator(
            SandboxLimits.from_settings(settings), images=test_set.images_path, backend=backend
        ) as warm:
            for name, path in models.items():
                graded[backend, name] = grade_file(
                    path, spec, settings=settings, test_set=test_set, evaluator=warm
                )
            assert warm.stats["warm_jobs"] == len(models), warm.stats
    return {name: graded[backend, name] for name in models}


@pytest.mark.slow
@pytest.mark.parametrize("backend", backend_params())
def test_every_backend_gives_the_tensorflow_grade(
    graded: dict[tuple[str, str], Report], models: dict[str, Path], cifar_1000: Path, backend: str
) -> None:
    """Same verdict, same checks, same layer table; accuracy and probes within 1e-3 (one
    image in 1,000), per-class counts within a few ties. Warm sandboxes, one per backend."""
    if not _installed("tensorflow"):
        pytest.skip("TensorFlow, the reference backend, is not installed")
    reference = _grade(graded, "tensorflow", models, cifar_1000)
    mine = _grade(graded, backend, models, cifar_1000)
    for name, ref in reference.items():
        got = mine[name]
        assert got.backend == backend and ref.backend == "tensorflow"
        assert got.device == "cpu"
        assert got.status == ref.status, (name, got.reason)
        assert [(c.name, c.passed) for c in got.checks] == [(c.name, c.passed) for c in ref.checks]
        assert got.model == ref.model
        assert got.metrics is not None and ref.metrics is not None
        assert got.metrics.num_images == N_IMAGES
        assert abs(got.metrics.accuracy - ref.metrics.accuracy) <= 1e-3, name
        got_counts = np.diag(np.array(got.metrics.confusion_matrix))
        ref_counts = np.diag(np.array(ref.metrics.confusion_matrix))
        assert np.abs(got_counts - ref_counts).sum() <= 2, (name, got_counts, ref_counts)
        assert abs(got.score - ref.score) <= 0.1
        if ref.probes is not None:
            assert got.probes is not None
            assert got.probes.variants.keys() == ref.probes.variants.keys()
            for variant, accuracy in ref.probes.variants.items():
                assert abs(got.probes.variants[variant] - accuracy) <= 1 / got.probes.images
    assert mine["fixture"].status == "passed"


@pytest.mark.slow
@needs_sandbox
@pytest.mark.parametrize("backend", backend_params())
def test_cold_sandbox_predicts_like_tensorflow(cifar_1000: Path, backend: str) -> None:
    """The cold path (GPU workers, --trust) on the same backend: argmax agrees on 1,000
    test images with TensorFlow run in a bare process, and the backend is recorded."""
    import keras

    test_set = find_test_set(cifar_1000)
    settings = Settings()
    result = evaluate_model(
        FIXTURE, test_set.images_path, scale=1 / 255, limits=SandboxLimits.from_settings(settings),
        backend=backend,
    )  # fmt: skip
    assert result.backend == backend and result.device == "cpu"
    assert result.predictions is not None
    model = keras.saving.load_model(FIXTURE, compile=False)
    x = np.load(test_set.images_path).astype(np.float32) / np.float32(255)
    expected = np.asarray(model.predict(x, batch_size=500, verbose=0))
    agree = (result.predictions.argmax(1) == expected.argmax(1)).mean()
    assert agree >= 0.999, agree
    assert np.abs(result.predictions - expected).max() < 1e-4


@needs_sandbox
@pytest.mark.parametrize("backend", backend_params())
def test_a_hostile_file_is_refused_identically(tmp_path: Path, backend: str) -> None:
    """A Lambda payload is refused before any backend runs; the same words everywhere."""
    import hostile

    marker = tmp_path / "PWNED"
    path = hostile.lambda_keras(tmp_path, marker)
    spec = shipped_spec("day097-cifar10")
    settings = Settings()
    reports = [
        grade_file(path, spec, settings=settings, evaluator=partial(evaluate_model, backend=b))
        for b in ("tensorflow", backend)
    ]
    assert {r.status for r in reports} == {"not_gradable"}
    assert reports[0].reason == reports[1].reason
    assert not marker.exists()
