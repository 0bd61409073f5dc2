"""Real isolation tests: hostile payloads run through run_sandboxed, then evaluate_model.

Every payload prints "started" first and the test asserts it, so a sandbox that fails to
start cannot make a test pass. Nothing is mocked.
"""

from __future__ import annotations

import os
import socket
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sandboxutil import accept_once, limits, world_dir

from grader.errors import NotGradable
from grader.sandbox import (
    evaluate_model,
    run_sandboxed,
    sandbox_status,
)

_OK, _WHY = sandbox_status()
pytestmark = pytest.mark.skipif(not _OK, reason=f"no sandbox here: {_WHY}")

LAUNCHER_DIR = Path(__file__).resolve().parent.parent / "grader" / "sandbox"


def run_py(code: str, **kw) -> tuple[int, str, str]:
    lim = kw.pop("limits", None) or limits()
    proc = run_sandboxed(
        [sys.executable, "-I", "-c", textwrap.dedent(code)],
        read_only=kw.pop("read_only", []),
        limits=lim,
        **kw,
    )
    return proc.returncode, proc.stdout, proc.stderr


# --------------------------------------------------------------------------- isolation
def test_payload_runs_as_nobody_without_capabilities() -> None:
    rc, out, err = run_py(
        """
        import os, socket
        print("started", os.getuid(), os.getgid(), socket.gethostname())
        status = open("/proc/self/status").read()
        print([l for l in status.splitlines() if l.startswith(("CapEff", "NoNewPrivs"))])
        print("pids", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
        """
    )
    assert rc == 0, err
    assert "started 65534 65534 sandbox" in out
    assert "CapEff:\\t0000000000000000" in out and "NoNewPrivs:\\t1" in out
    # own pid namespace: only bwrap's init and the payload are visible
    assert "pids [1, 2]" in out


def test_cannot_connect_to_host_listener(tmp_path: Path) -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(8)
    port = srv.getsockname()[1]
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(accept_once(srv)), daemon=True)
    t.start()
    _rc, out, err = run_py(
        f"""
        import socket
        print("started", flush=True)
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=3)
            print("CONNECTED")
        except OSError as e:
            print("blocked", e)
        """
    )
    # control: the host itself can reach the listener, so the block is the sandbox's doing
    socket.create_connection(("127.0.0.1", port), timeout=3).close()
    t.join(10)
    srv.close()
    assert "started" in out, err
    assert "blocked" in out and "CONNECTED" not in out
    assert got == ["host"]


def test_cannot_write_outside_its_writable_dir(tmp_path: Path) -> None:
    hidden = world_dir(tmp_path / "hidden")  # not mounted at all
    shown = world_dir(tmp_path / "shown")  # mounted read-only, mode 0777 on the host
    work = world_dir(tmp_path / "work")
    os.chown(work, 65534, 65534)
    _rc, out, err = run_py(
        f"""
        print("started", flush=True)
        for target in ["{hidden}/marker", "{shown}/marker", "/usr/marker", "/marker"]:
            try:
                open(target, "w").write("x")
                print("WROTE", target)
            except OSError as e:
                print("blocked", target, e.errno)
        open("{work}/ok", "w").write("fine")
        print("wrote work")
        """,
        read_only=[shown],
        writable_dir=work,
    )
    assert "started" in out and "wrote work" in out, err
    assert "WROTE" not in out and out.count("blocked") == 4
    assert not (hidden / "marker").exists()
    assert not (shown / "marker").exists()
    assert not Path("/usr/marker").exists() and not Path("/marker").exists()
    assert (work / "ok").read_text() == "fine"  # positive control


def test_cannot_read_files_outside_its_view(tmp_path: Path) -> None:
    hidden = world_dir(tmp_path / "hidden")
    secret = hidden / "secret.txt"
    secret.write_text("TOP-SECRET")
    secret.chmod(0o644)
    shown = world_dir(tmp_path / "shown")
    (shown / "public.txt").write_text("PUBLIC")
    (shown / "public.txt").chmod(0o644)
    _rc, out, err = run_py(
        f"""
        print("started", flush=True)
        for target in ["{secret}", "/etc/shadow", "/etc/passwd", "/root/.bashrc"]:
            try:
                print("READ", open(target).read()[:20])
            except OSError as e:
                print("blocked", e.errno)
        print(open("{shown}/public.txt").read())
        """,
        read_only=[shown],
    )
    assert "started" in out and "PUBLIC" in out, err
    assert "TOP-SECRET" not in out and "READ" not in out
    assert out.count("blocked") == 4


def test_memory_limit_stops_large_allocations() -> None:
    _rc, out, err = run_py(
        """
        print("started", flush=True)
        chunks = []
        try:
            while True:
                chunks.append(bytearray(32 * 1024 * 1024))
        except MemoryError:
            print("memory error after", len(chunks) * 32, "MiB")
        """,
        limits=limits(memory_bytes=512 * 1024**2),
    )
    assert "started" in out, err
    assert "memory error after" in out
    got = int(out.split("memory error after")[1].split()[0])
    assert got < 512


def test_fork_bomb_is_bounded() -> None:
    _rc, out, err = run_py(
        """
        import os, time  # fork-bomb-token
        print("started", flush=True)
        n = 0
        try:
            for _ in range(500):
                if os.fork() == 0:
                    time.sleep(30)
                    os._exit(0)
                n += 1
        except OSError as e:
            print("fork failed after", n, e.errno)
        """,
        limits=limits(max_processes=32),
    )
    assert "started" in out, err
    assert "fork failed after" in out
    assert int(out.split("fork failed after")[1].split()[0]) < 32
    # the host is fine: no sleeping children survive the sandbox
    assert _none_left("fork-bomb-token")


def _none_left(token: str, seconds: float = 5) -> bool:
    """The pid namespace dies with bwrap; give the kernel a moment to reap it.

    Only processes whose command line carries ``token`` count: other sandboxes (other
    tests running at the same time) also run as uid 65534.
    """
    deadline = time.monotonic() + seconds
    while _pids_with(token) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _pids_with(token) == []


def _pids_with(token: str) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if p.stat().st_uid == 65534 and token.encode() in (p / "cmdline").read_bytes():
                    pids.append(int(p.name))
            except OSError:
                pass
    return pids


def test_wall_clock_limit_stops_a_sleeper_even_if_it_ignores_sigterm() -> None:
    t0 = time.monotonic()
    rc, out, err = run_py(
        """
        import signal, time  # sleeper-token
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("started", flush=True)
        while True:
            time.sleep(60)
        """,
        limits=limits(wall_seconds=3),
    )
    elapsed = time.monotonic() - t0
    assert "started" in out, err
    assert rc in (124, 137)
    assert elapsed < 3 + 5 + 3
    assert _none_left("sleeper-token")


def test_launcher_seccomp_and_landlock_add_a_second_wall(tmp_path: Path) -> None:
    work = world_dir(tmp_path / "work")
    os.chown(work, 65534, 65534)
    _rc, out, err = run_py(
        f"""
        import os, socket, subprocess, sys
        sys.path.insert(0, "{LAUNCHER_DIR}")
        import launcher
        print("started", launcher.apply_seccomp(), flush=True)
        abi = launcher.apply_landlock(["{work}"])
        print("landlock", abi, flush=True)
        checks = {{
            "fork": lambda: os.fork(),
            "exec": lambda: subprocess.run(["/bin/true"]),
            "inet": lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM),
            "tmp": lambda: open("/tmp/x", "w"),
        }}
        for name, fn in checks.items():
            try:
                fn()
                print("ALLOWED", name)
            except OSError as e:
                print("denied", name, e.errno)
        open("{work}/ok", "w").write("1")
        import threading; t = threading.Thread(target=print, args=("thread ok",)); t.start()
        t.join()
        """,
        read_only=[LAUNCHER_DIR],
        writable_dir=work,
    )
    assert "started True" in out, err
    assert "ALLOWED fork" not in out and "ALLOWED exec" not in out and "ALLOWED inet" not in out
    assert "thread ok" in out and (work / "ok").exists()
    if "landlock 0" not in out:  # the kernel has Landlock: /tmp is no longer writable
        assert "denied tmp" in out


# --------------------------------------------------------------------------- evaluate
@pytest.fixture(scope="module")
def keras_mod():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    import keras

    return keras


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, keras_mod):
    keras = keras_mod
    d = tmp_path_factory.mktemp("tiny")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(10, name="logits"),
        ],
        name="tiny",
    )
    path = d / "tiny.keras"
    model.save(path)
    path.chmod(0o600)  # root-only on the host: the runner must still get it inside
    x = np.random.default_rng(1).integers(0, 256, (20, 16, 16, 3), dtype=np.uint8)
    images = d / "images.npy"
    np.save(images, x)
    images.chmod(0o600)
    return model, path, x, images


def test_evaluate_model_end_to_end(tiny) -> None:
    model, path, x, images = tiny
    t0 = time.monotonic()
    res = evaluate_model(path, images, scale=1 / 127.5, offset=-1.0, limits=limits())
    elapsed = time.monotonic() - t0
    assert res.predictions is not None and res.predictions.shape == (20, 10)
    assert res.predictions.dtype == np.float32
    expected = model.predict(x.astype(np.float32) * np.float32(1 / 127.5) - 1.0, verbose=0)
    assert np.allclose(res.predictions, expected, atol=1e-5)
    assert [r["type"] for r in res.layers] == ["Conv2D", "GlobalAveragePooling2D", "Dense"]
    assert [r["name"] for r in res.layers] == ["conv", "gap", "logits"]
    assert res.layers[0]["output_shape"] == [None, 14, 14, 4]
    assert res.layers[2]["output_shape"] == [None, 10]
    assert res.total_params == model.count_params() == sum(r["params"] for r in res.layers)
    assert res.trainable_params == model.count_params()
    assert res.input_shape == [None, 16, 16, 3]
    assert set(res.timings) == {"sandbox_start", "import", "load", "predict"}
    assert res.device == "cpu"
    assert res.peak_rss_bytes and res.peak_rss_bytes > 50 * 1024**2
    assert elapsed < 30


def test_evaluate_nested_model_paths_and_trust_mode(tmp_path: Path, keras_mod) -> None:
    keras = keras_mod
    inner = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3, name="c")], name="inner"
    )
    inp = keras.Input((8, 8, 3))
    y = keras.layers.Dense(3, name="head")(keras.layers.Flatten(name="flat")(inner(inp)))
    model = keras.Model(inp, y, name="outer")
    path = tmp_path / "nested.keras"
    model.save(path)
    x = np.random.default_rng(2).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    res = evaluate_model(path, tmp_path / "x.npy", limits=limits(), trust=True, batch_size=2)
    assert [r["path"] for r in res.layers if r["type"] != "InputLayer"] == [
        "inner/c",
        "flat",
        "head",
    ]
    assert res.total_params == model.count_params()
    expected = model.predict(x.astype(np.float32) / 255, verbose=0)
    assert np.allclose(res.predictions, expected, atol=1e-5)


def test_garbage_model_is_not_gradable(tmp_path: Path) -> None:
    path = tmp_path / "junk.keras"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(NotGradable) as info:
        evaluate_model(path, None, limits=limits())
    msg = str(info.value)
    assert msg.startswith("The model could not be loaded: ")
    assert str(tmp_path) not in msg and "/sandbox/" not in msg


def test_nan_predictions_come_back_flagged_and_zeroed(tmp_path: Path, keras_mod) -> None:
    """NaN outputs are not a refusal but a diagnosis (grader.diagnosis): the verdict
    zeroes them so nothing downstream is poisoned, and names the rows that held them."""
    keras = keras_mod
    model = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    w, b = model.layers[-1].get_weights()
    model.layers[-1].set_weights([np.full_like(w, np.nan), b])
    model.save(tmp_path / "nan.keras")
    np.save(tmp_path / "x.npy", np.zeros((3, 4, 4, 1), np.uint8))
    res = evaluate_model(tmp_path / "nan.keras", tmp_path / "x.npy", limits=limits())
    assert res.predictions is not None and np.isfinite(res.predictions).all()
    assert res.invalid_rows is not None and res.invalid_rows.tolist() == [True] * 3


def test_evaluation_past_the_wall_clock_is_stopped(tiny) -> None:
    _, path, _, images = tiny
    t0 = time.monotonic()
    with pytest.raises(NotGradable, match="longer than the limit of 1 s"):
        evaluate_model(path, images, limits=limits(wall_seconds=1))
    assert time.monotonic() - t0 < 1 + 5 + 3


def test_evaluation_past_the_memory_limit_is_stopped(tiny) -> None:
    # TensorFlow alone needs about 1.5 GiB of address space here; 1 GiB cannot suffice.
    _, path, _, images = tiny
    with pytest.raises(NotGradable, match="more memory than the limit of 1024 MiB"):
        evaluate_model(path, images, limits=limits(memory_bytes=1024**3))
