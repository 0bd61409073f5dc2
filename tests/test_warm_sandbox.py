"""The warm path keeps the cold sandbox's guarantees: the same hostile probes, run in a job child.

Payloads go through ``WarmEvaluator.run_payload`` (a test-only hook): the code runs in a
forked job child after it has locked itself down, exactly where a model file would load.
The child prints "confined" before the payload, and every test asserts it, so a warm path
that fails to start cannot make a test pass. Nothing is mocked.
"""

from __future__ import annotations

import os
import socket
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sandboxutil import accept_once, limits, world_dir

from grader.errors import NotGradable
from grader.sandbox import WarmEvaluator, evaluate_model, sandbox_status

_OK, _WHY = sandbox_status()
pytestmark = pytest.mark.skipif(not _OK, reason=f"no sandbox here: {_WHY}")


@pytest.fixture(scope="module")
def warm():
    with WarmEvaluator(limits(), test_hooks=True) as w:
        assert w.warm, "the warm path fell back to cold sandboxes"
        yield w


def payload(w: WarmEvaluator, code: str, **kw) -> tuple[int, str, str, bool]:
    lim = kw.pop("limits", None) or limits()
    return w.run_payload(textwrap.dedent(code), limits=lim, **kw)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    import keras

    d = tmp_path_factory.mktemp("warm-tiny")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            keras.layers.SeparableConv2D(6, 3, name="sep"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(10, name="logits"),
        ],
        name="tiny",
    )
    path = d / "tiny.keras"
    model.save(path)
    path.chmod(0o600)  # root-only on the host: the warm path must still get it inside
    x = np.random.default_rng(1).integers(0, 256, (40, 16, 16, 3), dtype=np.uint8)
    images = d / "images.npy"
    np.save(images, x)
    images.chmod(0o600)
    return model, path, x, images


def _evaluates(w: WarmEvaluator, tiny) -> None:
    model, path, x, images = tiny
    res = w(path, images, limits=limits())
    assert res.predictions is not None and res.predictions.shape == (len(x), 10)
    expected = model.predict(x.astype(np.float32) * np.float32(1 / 255), verbose=0)
    assert np.allclose(res.predictions, expected, atol=1e-5)


# --------------------------------------------------------------------------- isolation
def test_job_runs_as_nobody_without_capabilities_under_seccomp(warm) -> None:
    rc, out, err, _ = payload(
        warm,
        """
        import os, socket
        print("ids", os.getuid(), os.getgid(), socket.gethostname())
        status = open("/proc/self/status").read()
        keys = ("CapEff", "NoNewPrivs", "Seccomp:")
        print([line for line in status.splitlines() if line.startswith(keys)])
        """,
    )
    assert rc == 0 and "confined" in out, err
    assert "ids 65534 65534 sandbox" in out
    assert "CapEff:\\t0000000000000000" in out and "NoNewPrivs:\\t1" in out
    assert "Seccomp:\\t2" in out


def test_cannot_connect_to_host_listener(warm) -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(8)
    port = srv.getsockname()[1]
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(accept_once(srv)), daemon=True)
    t.start()
    _rc, out, err, _ = payload(
        warm,
        f"""
        import socket
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                s = socket.socket(family, socket.SOCK_STREAM)
                s.settimeout(3)
                s.connect(("127.0.0.1", {port}) if family == socket.AF_INET else ("::1", {port}))
                print("CONNECTED")
            except OSError as e:
                print("blocked", e)
        """,
    )
    socket.create_connection(("127.0.0.1", port), timeout=3).close()  # control
    t.join(10)
    srv.close()
    assert "confined" in out, err
    assert out.count("blocked") == 2 and "CONNECTED" not in out
    assert got == ["host"]


def test_cannot_write_outside_its_own_job_folder(warm, tmp_path: Path) -> None:
    hidden = world_dir(tmp_path / "hidden")  # not mounted at all
    targets = [
        f"{hidden}/marker",
        "/usr/marker",
        "/marker",
        "/tmp/marker",  # the sandbox's tmpfs is shared by later jobs: must stay read-only
        "/dev/shm/marker",
        "/jobs/marker",
        "/sandbox/marker",
    ]
    _rc, out, err, _ = payload(
        warm,
        f"""
        import os
        for target in {targets!r}:
            try:
                open(target, "w").write("x")
                print("WROTE", target)
            except OSError as e:
                print("blocked", target, e.errno)
        open(os.path.join(JOB["out"], "ok"), "w").write("fine")
        open(os.path.join(JOB["tmp"], "ok"), "w").write("fine")
        print("wrote own folders")
        """,
    )
    assert "confined" in out and "wrote own folders" in out, err
    assert "WROTE" not in out and out.count("blocked") == len(targets)
    assert not (hidden / "marker").exists()
    assert not Path("/usr/marker").exists() and not Path("/marker").exists()


def test_cannot_read_files_outside_its_view_or_the_zygote(warm, tmp_path: Path) -> None:
    hidden = world_dir(tmp_path / "hidden")
    secret = hidden / "secret.txt"
    secret.write_text("TOP-SECRET")
    secret.chmod(0o644)
    _rc, out, err, _ = payload(
        warm,
        f"""
        import os
        zygote = os.getppid()
        for target in ["{secret}", "/etc/shadow", "/root/.bashrc",
                       f"/proc/{{zygote}}/environ", f"/proc/{{zygote}}/mem"]:
            try:
                print("READ", open(target, "rb").read(20))
            except OSError as e:
                print("blocked", e.errno)
        """,
    )
    assert "confined" in out, err
    assert "TOP-SECRET" not in out and "READ" not in out
    assert out.count("blocked") == 5


def test_memory_limit_stops_large_allocations(warm, tiny) -> None:
    _rc, out, err, _ = payload(
        warm,
        """
        chunks = []
        try:
            while True:
                chunks.append(bytearray(32 * 1024 * 1024))
        except MemoryError:
            print("memory error after", len(chunks) * 32, "MiB")
        """,
        limits=limits(memory_bytes=3 * 1024**3),
    )
    assert "confined" in out, err
    # the job's address space includes TensorFlow (mapped by the zygote): < 3 GiB in all
    got = int(out.split("memory error after")[1].split()[0])
    assert got < 3 * 1024
    _evaluates(warm, tiny)  # the zygote, which has more room, is unaffected


def test_fork_exec_and_ipc_are_denied(warm) -> None:
    starts = warm.stats["zygote_starts"]
    _rc, out, err, _ = payload(
        warm,
        """
        import ctypes, os, subprocess, time
        n = 0
        try:
            for _ in range(500):
                if os.fork() == 0:
                    time.sleep(30)
                    os._exit(0)
                n += 1
        except OSError as e:
            print("fork failed after", n, e.errno)
        try:
            subprocess.run(["/bin/true"])
            print("EXEC")
        except OSError as e:
            print("exec blocked", e.errno)
        libc = ctypes.CDLL(None, use_errno=True)
        print("shmget", libc.shmget(0, 4096, 0o1666), ctypes.get_errno())
        """,
    )
    assert "confined" in out, err
    assert "fork failed after 0" in out and "exec blocked" in out and "EXEC" not in out
    assert "shmget -1 1" in out  # EPERM: nothing can outlive the job in the shared IPC ns
    assert warm.stats["zygote_starts"] == starts


def test_cannot_signal_the_zygote(warm, tiny) -> None:
    starts = warm.stats["zygote_starts"]
    _rc, out, err, _ = payload(
        warm,
        """
        import os, signal
        try:
            os.kill(os.getppid(), signal.SIGKILL)
            print("SIGNALLED")
        except OSError as e:
            print("blocked", e.errno)
        """,
    )
    assert "confined" in out, err
    if "SIGNALLED" in out:  # Landlock ABI < 6 cannot scope signals: only a restart is owed
        pytest.skip("this kernel's Landlock cannot scope signals")
    assert "blocked" in out
    _evaluates(warm, tiny)
    assert warm.stats["zygote_starts"] == starts


def test_wall_clock_kills_the_job_and_the_next_job_is_served(warm, tiny) -> None:
    t0 = time.monotonic()
    rc, out, err, killed = payload(
        warm,
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("sleeping", flush=True)
        while True:
            time.sleep(60)
        """,
        limits=limits(wall_seconds=2),
    )
    assert "sleeping" in out, err
    assert killed and rc == -9
    assert time.monotonic() - t0 < 2 + 5
    _evaluates(warm, tiny)


def test_evaluation_past_the_wall_clock_is_not_gradable(warm, tiny, tmp_path: Path) -> None:
    _, path, _, _ = tiny
    many = tmp_path / "many.npy"  # 5,000 one-image batches: far more than 1 s
    np.save(many, np.zeros((5000, 16, 16, 3), np.uint8))
    t0 = time.monotonic()
    with pytest.raises(NotGradable, match="longer than the limit of 1 s"):
        warm(path, many, limits=limits(wall_seconds=1), batch_size=1)
    assert time.monotonic() - t0 < 1 + 5
    _evaluates(warm, tiny)


# --------------------------------------------------------------------------- evaluate
def test_predictions_equal_the_cold_path_exactly(warm, tiny) -> None:
    _, path, _, images = tiny
    kw = dict(scale=1 / 127.5, offset=-1.0, limits=limits(), batch_size=16)
    hot = warm(path, images, **kw)
    cold = evaluate_model(path, images, **kw)
    assert hot.predictions is not None and cold.predictions is not None
    assert np.array_equal(hot.predictions, cold.predictions)
    assert hot.layers == cold.layers and hot.total_params == cold.total_params
    assert hot.input_shape == cold.input_shape == [None, 16, 16, 3]
    assert set(hot.timings) == {"sandbox_start", "import", "load", "predict"}
    assert hot.timings["import"] < 0.5  # paid once by the zygote, not per job
    assert hot.peak_rss_bytes and hot.peak_rss_bytes > 50 * 1024**2


def test_crashed_jobs_do_not_break_the_next_one(warm, tiny) -> None:
    starts = warm.stats["zygote_starts"]
    rc, out, _, _ = payload(warm, "import os; os.abort()")
    assert "confined" in out and rc == -6
    rc, out, _, _ = payload(warm, "import os; os._exit(9)")
    assert rc == 9
    _evaluates(warm, tiny)
    assert warm.stats["zygote_starts"] == starts


def test_consecutive_jobs_cannot_see_each_other(warm, tiny, tmp_path: Path) -> None:
    _, path, _, _ = tiny
    other = tmp_path / "other.keras"
    other.write_bytes(path.read_bytes())
    rc, out, err, _ = payload(
        warm,
        """
        import os
        print("MODEL", JOB["model"], os.path.getsize(JOB["model"]))
        print("JOBS", os.listdir("/jobs"))
        open(os.path.join(JOB["tmp"], "left-behind"), "w").write("x")
        """,
        model_path=path,
    )
    assert rc == 0 and "confined" in out, err
    first_model = out.split("MODEL ")[1].split()[0]
    first_job = first_model.split("/")[2]
    assert f"JOBS ['{first_job}']" in out  # only its own job folder exists
    rc, out, err, _ = payload(
        warm,
        f"""
        import os
        print("JOBS", os.listdir("/jobs"))
        try:
            open("{first_model}", "rb").read()
            print("READ OLD MODEL")
        except OSError as e:
            print("old model gone", e.errno)
        print("tmp", sorted(os.listdir("/tmp")))  # the zygote's own empty .keras only
        """,
        model_path=other,
    )
    assert rc == 0 and "confined" in out, err
    assert "READ OLD MODEL" not in out and "old model gone 2" in out
    assert first_job not in out.split("JOBS")[1].split("\n")[0]
    assert "tmp []" in out or "tmp ['.keras']" in out


def test_garbage_model_is_not_gradable(warm, tmp_path: Path) -> None:
    path = tmp_path / "junk.keras"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(NotGradable) as info:
        warm(path, None, limits=limits())
    msg = str(info.value)
    assert msg.startswith("The model could not be loaded: ")
    assert str(tmp_path) not in msg and "/jobs/" not in msg


def test_evaluation_past_the_memory_limit_is_stopped(warm, tiny) -> None:
    _, path, _, images = tiny
    with pytest.raises(NotGradable, match="more memory than the limit of 1024 MiB"):
        warm(path, images, limits=limits(memory_bytes=1024**3))
    _evaluates(warm, tiny)


def test_a_dead_zygote_is_replaced_transparently(warm, tiny) -> None:
    starts = warm.stats["zygote_starts"]
    assert warm._zygote is not None
    warm._zygote.kill()
    _evaluates(warm, tiny)
    assert warm.stats["zygote_starts"] == starts + 1
