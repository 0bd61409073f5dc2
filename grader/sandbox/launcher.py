"""Runs INSIDE the sandbox: load one untrusted Keras file, describe it, predict.

Standalone on purpose (standard library, numpy, pyseccomp, keras only): the runner
copies this single file into the sandbox, so the grader's own code is never visible
to the payload. Everything it returns goes through files in the output directory and
is re-validated by the trusted side.

Exit codes: 0 ok, 2 bad arguments, 3 the model could not be loaded, 4 out of memory,
5 the model could not predict, 6 any other error. For 3-6 ``error.json`` holds
``{"error": "...", "kind": "..."}`` in plain words.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import json
import os
import resource
import sys
import time

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_LOAD = 3
EXIT_MEMORY = 4
EXIT_PREDICT = 5
EXIT_OTHER = 6

T_START = time.time()


# --------------------------------------------------------------------------- seccomp
#: SysV and POSIX IPC objects outlive the process inside one IPC namespace: a warm job
#: child shares that namespace with the next job, so it may not create any.
IPC_SYSCALLS = (
    "shmget", "shmat", "shmctl", "shmdt", "semget", "semop", "semctl", "semtimedop",
    "msgget", "msgsnd", "msgrcv", "msgctl", "mq_open", "mq_unlink", "mq_timedsend",
    "mq_timedreceive", "mq_notify", "mq_getsetattr",
)  # fmt: skip


def apply_seccomp(allow_fork: bool = False, deny_ipc: bool = False) -> bool:
    """Deny-list: no new processes, no exec, no network sockets, no kernel-admin calls.

    An allow-list broke TensorFlow in the measurements; a deny-list does not.
    Threads stay allowed (clone with CLONE_THREAD); clone3 answers ENOSYS so glibc
    falls back to clone, where the flags can be inspected. ``allow_fork`` is only for
    the warm zygote (it runs no untrusted code; each job child adds the full list).
    """
    try:
        import pyseccomp as sc
    except ImportError:
        return False
    f = sc.SyscallFilter(sc.ALLOW)
    eperm = sc.ERRNO(errno.EPERM)
    clone_thread = 0x00010000
    af_unix = 1
    names = [
        "fork",
        "vfork",
        "execve",
        "execveat",
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "mount",
        "umount2",
        "pivot_root",
        "chroot",
        "unshare",
        "setns",
        "keyctl",
        "add_key",
        "request_key",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "kexec_load",
        "kexec_file_load",
        "init_module",
        "finit_module",
        "delete_module",
        "swapon",
        "swapoff",
        "reboot",
        "acct",
        "quotactl",
        "open_by_handle_at",
        "name_to_handle_at",
        "iopl",
        "ioperm",
        "syslog",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "fanotify_init",
        "move_mount",
        "open_tree",
        "fsopen",
        "fsmount",
        "fsconfig",
        "fspick",
    ]
    if allow_fork:
        names = [n for n in names if n not in ("fork", "vfork")]
    if deny_ipc:
        names += IPC_SYSCALLS
    for name in names:
        with contextlib.suppress(Exception):  # syscall unknown on this architecture
            f.add_rule(eperm, name)
    if not allow_fork:
        f.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, clone_thread, 0))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    f.add_rule(sc.ERRNO(errno.EAFNOSUPPORT), "socket", sc.Arg(0, sc.NE, af_unix))
    f.add_rule(eperm, "socketpair", sc.Arg(0, sc.NE, af_unix))
    f.load()
    return True


# --------------------------------------------------------------------------- Landlock
_SYS_CREATE, _SYS_ADD_RULE, _SYS_RESTRICT = 444, 445, 446
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1, 2, 4, 8
_FS_V1_ALL = (1 << 13) - 1
_FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_NET_ALL = 3  # bind + connect TCP
_SCOPE_ALL = 3  # abstract unix sockets + signals outside the domain


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


#: Device files a warm job child may still write (instead of all of /dev, which the next
#: job would share).
DEV_FILES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")


def apply_landlock(write_dirs: list[str], dev_files: tuple[str, ...] | None = None) -> int:
    """Read-only filesystem except ``write_dirs`` and /dev; no TCP at all (ABI >= 4).

    ``dev_files`` narrows /dev to those device files. Optional: returns the ABI used,
    0 when the kernel has no Landlock (skipped silently).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(_SYS_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        return 0
    fs_all = _FS_V1_ALL
    if abi >= 2:
        fs_all |= _FS_REFER
    if abi >= 3:
        fs_all |= _FS_TRUNCATE
    if abi >= 5:
        fs_all |= _FS_IOCTL_DEV
    attr = _RulesetAttr(fs_all, _NET_ALL if abi >= 4 else 0, _SCOPE_ALL if abi >= 6 else 0)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = libc.syscall(_SYS_CREATE, ctypes.byref(attr), ctypes.c_size_t(size), 0)
    if ruleset < 0:
        return 0
    read = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
    rules = [("/", read)] + [(d, fs_all) for d in write_dirs]
    if dev_files is None:
        rules.append(("/dev", fs_all))
    else:
        file_rights = _FS_READ_FILE | _FS_WRITE_FILE
        file_rights |= fs_all & (_FS_TRUNCATE | _FS_IOCTL_DEV)
        rules += [(d, file_rights) for d in dev_files]
    for path, access in rules:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            rule = _PathBeneath(access, fd)
            if libc.syscall(_SYS_ADD_RULE, ruleset, 1, ctypes.byref(rule), 0) < 0:
                raise OSError(ctypes.get_errno(), f"landlock_add_rule({path})")
        finally:
            os.close(fd)
    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
    if libc.syscall(_SYS_RESTRICT, ruleset, 0) < 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    os.close(ruleset)
    return abi


# --------------------------------------------------------------------------- helpers
class Failure(Exception):
    def __init__(self, code: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.code, self.kind, self.message = code, kind, message


def short_reason(exc: BaseException, model_path: str) -> str:
    """First meaningful line of an exception, without the sandbox path, <= 300 chars."""
    text = str(exc).strip() or type(exc).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    line = lines[0] if lines else type(exc).__name__
    line = line.replace(model_path, "the model file")
    return line[:300]


def is_oom(exc: BaseException) -> bool:
    """TF reports an exhausted allocator as ResourceExhaustedError, JAX as
    RESOURCE_EXHAUSTED and torch as "CUDA out of memory", not MemoryError."""
    text = str(exc)
    return (
        isinstance(exc, MemoryError)
        or "ResourceExhausted" in type(exc).__name__
        or "OOM when allocating" in text
        or "bad_alloc" in text
        or "RESOURCE_EXHAUSTED" in text
        or "CUDA out of memory" in text
    )


def shape_list(shape) -> list | None:
    try:
        return [None if d is None else int(d) for d in shape]
    except TypeError:
        return None


def output_shape(layer) -> list | None:
    try:
        out = layer.output
    except Exception:
        return None
    if isinstance(out, list | tuple):
        return [shape_list(o.shape) for o in out]
    return shape_list(getattr(out, "shape", None) or ())


def n_weights(weights) -> int:
    total = 0
    for w in weights:
        n = 1
        for d in w.shape:
            n *= int(d)
        total += n
    return total


def layer_table(model, keras, prefix: str = "", depth: int = 0) -> list[dict]:
    """Leaf layers in model order; nested Model/Sequential layers are walked into."""
    rows: list[dict] = []
    for layer in model.layers:
        path = f"{prefix}/{layer.name}" if prefix else layer.name
        if isinstance(layer, keras.Model) and depth < 50:
            rows += layer_table(layer, keras, path, depth + 1)
            continue
        try:
            params = int(layer.count_params())
        except Exception:
            params = n_weights(layer.weights)
        rows.append(
            {
                "name": layer.name,
                "type": type(layer).__name__,
                "output_shape": output_shape(layer),
                "params": params,
                "trainable_params": n_weights(layer.trainable_weights),
                "path": path,
            }
        )
    return rows


def write_json(out_dir: str, name: str, data: dict) -> None:
    tmp = os.path.join(out_dir, name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, allow_nan=False)
    os.replace(tmp, os.path.join(out_dir, name))


# --------------------------------------------------------------------------- backends
#: Inter-op threads of torch (its pool is sized by the core count otherwise).
TORCH_INTEROP_THREADS = 2


def prepare_backend(gpu: int | None) -> str:
    """Import the backend ``KERAS_BACKEND`` names (TensorFlow only for "tensorflow") and
    bound its threads and GPU memory before any op runs; return its name."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend != "jax":
        # Keras imports JAX whenever it is installed (an optional callback); another
        # backend never needs it, and it costs address space, threads and import time.
        sys.modules.setdefault("jax", None)  # type: ignore[arg-type]
    if backend == "tensorflow":
        import tensorflow as tf

        if gpu is not None:
            for dev in tf.config.list_physical_devices("GPU"):
                tf.config.experimental.set_memory_growth(dev, True)
    elif backend == "torch":
        import torch

        with contextlib.suppress(RuntimeError):  # already set (a warm job child)
            torch.set_num_interop_threads(TORCH_INTEROP_THREADS)
    elif backend == "jax":
        import jax  # noqa: F401  (XLA_PYTHON_CLIENT_PREALLOCATE comes from the env)
    else:
        raise Failure(EXIT_OTHER, "other", f"unknown Keras backend {backend!r}")
    return backend


# --------------------------------------------------------------------------- main
# Per-channel mean and standard deviation of the CIFAR-10 training images.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def probe_input(name: str, x, scale, offset):
    """The same images under another convention (diagnosis) or slightly changed in a way
    that keeps their label (generalisation): what the model is asked beside the test set."""
    import numpy as np

    x = np.asarray(x, dtype=np.float32)
    if name == "raw":
        return x
    if name == "unit":
        return x / 255
    if name == "symmetric":
        return x / 127.5 - 1
    if name == "standardized":
        mean, std = np.float32(CIFAR10_MEAN), np.float32(CIFAR10_STD)
        return (x / 255 - mean) / std
    if name == "bgr":
        x = x[..., ::-1]
    elif name == "flip":
        x = x[:, :, ::-1, :]
    elif name == "shift":  # two pixels right and down, the edge repeated
        height, width = x.shape[1:3]
        x = np.pad(x, ((0, 0), (2, 0), (2, 0), (0, 0)), mode="edge")[:, :height, :width]
    else:
        raise ValueError(f"unknown probe {name!r}")
    return x * scale + offset


def run_probe(model, name: str, images, scale, offset, batch_size: int):
    import numpy as np

    chunks = []
    for start in range(0, len(images), batch_size):
        x = probe_input(name, images[start : start + batch_size], scale, offset)
        chunks.append(np.asarray(model.predict_on_batch(x), dtype=np.float32))
    return np.concatenate(chunks)


# Feature maps: what the convolution and pooling layers make of two fixed images. The
# trusted side re-checks every one of these caps (grader/sandbox/verdict.py).
FMAP_MAX_LAYERS = 16
FMAP_MAX_CHANNELS = 8
FMAP_MAX_SIDE = 48
FMAP_KINDS = ("Conv", "Pooling")


def _fmap_layer(layer) -> bool:
    name = type(layer).__name__
    return any(k in name for k in FMAP_KINDS) and not name.startswith("Global")


def _shrink(y, np):
    """First channels of a (N, H, W, C) activation, averaged down to FMAP_MAX_SIDE pixels."""
    y = np.asarray(y, dtype=np.float32)[..., :FMAP_MAX_CHANNELS]
    factor = -(-max(y.shape[1], y.shape[2]) // FMAP_MAX_SIDE)
    if factor > 1:
        h, w = y.shape[1] // factor * factor, y.shape[2] // factor * factor
        n, c = y.shape[0], y.shape[3]
        y = y[:, :h, :w].reshape(n, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))
    return np.ascontiguousarray(y, dtype=np.float32)


def feature_maps(model, keras, x, found: list, depth: int = 0):
    """Run ``x`` through ``model``, keeping (layer, real shape, shrunk activation) of its
    convolution and pooling layers in ``found``; a nested model is walked into. Returns
    the model's output."""
    if isinstance(model, keras.Sequential):
        for layer in model.layers:
            if isinstance(layer, keras.Model) and depth < 8:
                x = feature_maps(layer, keras, x, found, depth + 1)
            else:
                x = layer(x, training=False)
                if _fmap_layer(layer) and len(found) < FMAP_MAX_LAYERS:
                    _keep(found, layer, x)
        return x
    # A functional model: one pass returns its output, the chosen layers' outputs and what
    # enters each nested model, which is then walked with that input.
    wanted: list = []
    for layer in model.layers:
        if isinstance(layer, keras.Model) and depth < 8 and layer._inbound_nodes:
            entering = layer._inbound_nodes[-1].input_tensors
            if isinstance(entering, list | tuple):
                entering = entering[0] if len(entering) == 1 else None
            if entering is not None:
                wanted.append((layer, entering))
        elif _fmap_layer(layer):
            wanted.append((layer, layer.output))
    probe = keras.Model(model.inputs, [model.outputs[0], *(t for _, t in wanted)])
    results = probe(x, training=False)
    out, *values = results if isinstance(results, list | tuple) else [results]
    for (layer, _), value in zip(wanted, values, strict=True):
        if len(found) >= FMAP_MAX_LAYERS:
            break
        if isinstance(layer, keras.Model):
            feature_maps(layer, keras, value, found, depth + 1)
        else:
            _keep(found, layer, value)
    return out


def _keep(found: list, layer, value) -> None:
    """Keep a layer's activation already shrunk (a big model's full maps would not fit),
    with its real (height, width, channels); only image-shaped (4-D) outputs."""
    import numpy as np

    shape = getattr(value, "shape", ())
    if len(shape) == 4:
        found.append((layer, [int(d) for d in shape[1:]], _shrink(value, np)))


def write_feature_maps(model, keras, args, summary: dict) -> None:
    """Feature maps of the two fixed images in ``args.fmap_images``: never the grade, so a
    failure is only noted."""
    import numpy as np

    try:
        x = np.load(args.fmap_images, allow_pickle=False).astype(np.float32)
        x = x * np.float32(args.scale) + np.float32(args.offset)
        found: list = []
        feature_maps(model, keras, x, found)
        manifest = []
        for i, (layer, shape, small) in enumerate(found[:FMAP_MAX_LAYERS]):
            np.save(os.path.join(args.out, f"fmap_{i:02d}.npy"), small, allow_pickle=False)
            manifest.append({"name": layer.name, "type": type(layer).__name__, "shape": shape})
        summary["feature_maps"] = manifest
    except Exception as exc:
        summary["feature_map_error"] = short_reason(exc, args.model)


def evaluate(args: argparse.Namespace, images=None, started_at: float | None = None) -> dict:
    """Load, describe, predict. ``images``: an array already mapped (the warm zygote's)."""
    timings: dict[str, float] = {}
    t0 = time.time()
    import numpy as np

    backend = prepare_backend(args.gpu)
    if args.loader == "tf_keras":  # a file written by Keras 2: its own loader and numbers
        import tf_keras as keras
    else:
        import keras

    timings["import"] = time.time() - t0

    t0 = time.time()
    try:
        model = keras.saving.load_model(args.model, safe_mode=True, compile=False)
    except Exception as exc:
        if is_oom(exc):
            raise MemoryError(str(exc)) from exc
        raise Failure(EXIT_LOAD, "load", short_reason(exc, args.model)) from exc
    if not isinstance(model, keras.Model):
        raise Failure(EXIT_LOAD, "load", "the file does not contain a Keras model")
    timings["load"] = time.time() - t0

    try:
        input_shape = shape_list(model.inputs[0].shape)
    except Exception:
        input_shape = None
    summary = {
        "layers": layer_table(model, keras),
        "total_params": int(model.count_params()),
        "trainable_params": n_weights(model.trainable_weights),
        "input_shape": input_shape,
        "device": "cpu" if args.gpu is None else f"gpu:{args.gpu}",
        "backend": backend,
        "predictions": None,
    }

    t0 = time.time()
    if images is None and args.images is not None:
        images = np.load(args.images, mmap_mode="r", allow_pickle=False)
    if images is not None:
        scale, offset = np.float32(args.scale), np.float32(args.offset)
        chunks = []
        try:
            for start in range(0, len(images), args.batch_size):
                x = np.asarray(images[start : start + args.batch_size], dtype=np.float32)
                x = x * scale + offset
                y = model.predict_on_batch(x)
                if isinstance(y, dict | list | tuple):
                    raise Failure(
                        EXIT_PREDICT,
                        "predict",
                        f"the model has {len(y)} outputs; exactly one is expected",
                    )
                chunks.append(np.asarray(y))
        except Failure:
            raise
        except Exception as exc:
            if is_oom(exc):
                raise MemoryError(str(exc)) from exc
            raise Failure(EXIT_PREDICT, "predict", short_reason(exc, args.model)) from exc
        preds = np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)
        if preds.dtype.kind in "fiub":
            preds = preds.astype(np.float32, copy=False)
        np.save(os.path.join(args.out, "predictions.npy"), preds, allow_pickle=False)
        summary["predictions"] = "predictions.npy"
    timings["predict"] = time.time() - t0
    probes = [name for name in (args.probes or "").split(",") if name]
    if images is not None and probes and args.probe_images > 0:
        t0 = time.time()
        subset = images[: args.probe_images]
        try:  # probes never decide the grade: if they fail, the grade stands without them
            outputs = [
                run_probe(model, name, subset, args.scale, args.offset, args.batch_size)
                for name in probes
            ]
            np.save(os.path.join(args.out, "probes.npy"), np.stack(outputs), allow_pickle=False)
            summary["probes"] = probes
        except Exception as exc:
            summary["probe_error"] = short_reason(exc, args.model)
        timings["probes"] = time.time() - t0
    if getattr(args, "fmap_images", None):
        t0 = time.time()
        write_feature_maps(model, keras, args, summary)
        timings["feature_maps"] = time.time() - t0
    summary["timings"] = timings
    summary["started_at"] = T_START if started_at is None else started_at
    summary["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return summary


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--zygote"]:
        return zygote_main(argv[1:])
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", required=True)
    p.add_argument("--images")
    p.add_argument("--out", required=True)
    p.add_argument("--scale", type=float, default=1 / 255)
    p.add_argument("--offset", type=float, default=0.0)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--loader", choices=("keras", "tf_keras"), default="keras")
    p.add_argument("--probes", default="")
    p.add_argument("--probe-images", type=int, default=0)
    p.add_argument("--fmap-images")
    p.add_argument("--gpu", type=int)
    p.add_argument("--landlock", action="store_true")
    p.add_argument("--write-dir", action="append", default=[])
    args = p.parse_args(argv)
    if args.batch_size < 1:
        return EXIT_USAGE

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.gpu is None:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""

    def confine() -> dict:
        confinement = {"seccomp": apply_seccomp(), "landlock_abi": 0}
        if args.landlock:
            confinement["landlock_abi"] = apply_landlock([args.out, *args.write_dir])
        return confinement

    return run_evaluation(args, confine)


def run_evaluation(args: argparse.Namespace, confine, images=None, started_at=None) -> int:
    """Confine, evaluate, write summary.json or error.json; return the exit code."""
    try:
        confinement = confine()
        summary = evaluate(args, images, started_at)
        summary["confinement"] = confinement  # diagnostics only
    except Failure as exc:
        write_json(args.out, "error.json", {"error": exc.message, "kind": exc.kind})
        return exc.code
    except MemoryError:
        write_json(args.out, "error.json", {"error": "out of memory", "kind": "memory"})
        return EXIT_MEMORY
    except Exception as exc:
        msg = short_reason(exc, args.model)
        if is_oom(exc):
            write_json(args.out, "error.json", {"error": msg, "kind": "memory"})
            return EXIT_MEMORY
        write_json(
            args.out, "error.json", {"error": f"{type(exc).__name__}: {msg}", "kind": "other"}
        )
        return EXIT_OTHER
    write_json(args.out, "summary.json", summary)
    return EXIT_OK


# --------------------------------------------------------------------------- warm zygote
def _send(fd: int, msg: dict) -> None:
    data = (json.dumps(msg) + "\n").encode()
    while data:
        data = data[os.write(fd, data) :]


def zygote_main(argv: list[str]) -> int:
    """Warm mode: import Keras and its backend once, then fork one locked-down child per job.

    The zygote itself never touches a student's file. Requests are JSON lines on
    stdin; replies go to the original stdout ({"ready"}, then {"started"} and
    {"exit"} per job); fd 1 is pointed at stderr so stray prints cannot corrupt them.
    """
    p = argparse.ArgumentParser()
    p.add_argument("--images")
    p.add_argument("--jobs", required=True)
    p.add_argument("--allow-payloads", action="store_true")
    args = p.parse_args(argv)
    reply = os.dup(1)
    os.dup2(2, 1)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    t0 = time.time()
    import numpy as np

    prepare_backend(None)  # the point: pay the backend's import once
    import keras  # noqa: F401

    images = None
    if args.images is not None:
        images = np.load(args.images, mmap_mode="r", allow_pickle=False)
    imported = time.time() - t0
    # No ptrace or /proc/<pid>/mem access to the zygote for anyone without CAP_SYS_PTRACE.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0
    seccomp = apply_seccomp(allow_fork=True)
    abi = apply_landlock([args.jobs])
    _send(
        reply,
        {
            "ready": True,
            "pid": os.getpid(),
            "import": imported,
            "seccomp": seccomp,
            "landlock_abi": abi,
            "n_images": None if images is None else len(images),
        },
    )
    for line in sys.stdin.buffer:
        try:
            req = json.loads(line)
        except ValueError:
            return EXIT_USAGE
        if req.get("op") == "payload" and not args.allow_payloads:
            return EXIT_USAGE
        pid = os.fork()
        if pid == 0:
            code = EXIT_OTHER
            try:
                code = _job_child(req, images, reply, libc)
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                os._exit(code)
        _send(reply, {"started": pid})
        _, status = os.waitpid(pid, 0)
        _send(reply, {"exit": os.waitstatus_to_exitcode(status)})
    return EXIT_OK


def _job_child(req: dict, images, reply: int, libc) -> int:
    """One job, in a fresh child: lock down first (before the file is opened), then evaluate."""
    started_at = time.time()
    os.setpgid(0, 0)
    libc.prctl(4, 1, 0, 0, 0)  # own /proc/self readable again (the zygote stays hidden)
    out, tmp = req["out"], req["tmp"]
    null = os.open("/dev/null", os.O_RDONLY)
    log_out = os.open(os.path.join(out, "stdout.txt"), os.O_WRONLY | os.O_CREAT, 0o600)
    log_err = os.open(os.path.join(out, "stderr.txt"), os.O_WRONLY | os.O_CREAT, 0o600)
    os.dup2(null, 0)
    os.dup2(log_out, 1)
    os.dup2(log_err, 2)
    for fd in (null, log_out, log_err, reply):
        os.close(fd)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    for res, value in (
        (resource.RLIMIT_AS, req["memory_bytes"]),
        (resource.RLIMIT_CPU, req["cpu_seconds"]),
        (resource.RLIMIT_FSIZE, req["max_file_bytes"]),
        (resource.RLIMIT_CORE, 0),
    ):
        _, hard = resource.getrlimit(res)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(res, (value, value))
    for key in ("HOME", "TMPDIR", "KERAS_HOME", "MPLCONFIGDIR"):
        os.environ[key] = tmp
    import tempfile

    tempfile.tempdir = tmp

    def confine() -> dict:
        confinement = {"seccomp": apply_seccomp(deny_ipc=True), "landlock_abi": 0}
        confinement["landlock_abi"] = apply_landlock([out, tmp], dev_files=DEV_FILES)
        if not confinement["landlock_abi"]:
            raise RuntimeError("Landlock is required for a warm job")  # cross-job isolation
        return confinement

    if req.get("op") == "payload":  # tests only: hostile code exactly where a model loads
        confine()
        print("confined", flush=True)
        exec(compile(req["code"], "<payload>", "exec"), {"JOB": dict(req)})
        sys.stdout.flush()
        return EXIT_OK
    preloaded = req.get("images") == "preloaded"
    args = argparse.Namespace(
        model=req["model"],
        images=None if preloaded else req.get("images"),
        out=out,
        scale=float(req["scale"]),
        offset=float(req["offset"]),
        batch_size=int(req["batch_size"]),
        gpu=None,
        loader="keras",
        probes=str(req.get("probes", "")),
        probe_images=int(req.get("probe_images", 0)),
        fmap_images=req.get("fmap_images") or None,
    )
    return run_evaluation(args, confine, images if preloaded else None, started_at)


if __name__ == "__main__":
    sys.exit(main())
