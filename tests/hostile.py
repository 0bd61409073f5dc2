"""Builders for hostile (and a few benign) model files, shared by every test module.

Each builder writes one file or folder into ``directory`` and returns its path.
Builders whose payload could run take ``marker``: if the payload were ever
executed it would create that file, so a test can assert ``not marker.exists()``.
Models are saved by real Keras; the ones that need Keras import it lazily, and the
small template models are built once per process.

Two registries help parametrised tests elsewhere:

* ``REFUSED_BY_FILE_CHECKS``: ``read_model_file`` itself must refuse these.
* ``PASS_FILE_CHECKS``: well-formed files whose *configuration* is hostile; they
  pass the file-format stage and must be refused later (layer allowlist).
"""

from __future__ import annotations

import functools
import io
import json
import os
import pickle
import stat
import struct
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

Builder = Callable[..., Path]

KERAS_MEMBERS = ("metadata.json", "config.json", "model.weights.h5")


def default_marker(directory: Path) -> Path:
    """Where a payload would leave its trace when no marker is given."""
    return Path(directory) / "PWNED"


def _marker(directory: Path, marker: Path | None) -> Path:
    return Path(marker) if marker is not None else default_marker(directory)


def _keras() -> Any:
    """Import Keras only when a builder really needs it (it takes seconds)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    return keras


def _touch_command(marker: Path) -> str:
    return f"touch '{marker}'"


# --------------------------------------------------------------------------- templates


@functools.cache
def _templates() -> dict[str, bytes]:
    """A tiny real CNN saved as .keras, legacy .h5 and weights-only (built once per process)."""
    import tempfile

    keras = _keras()
    # Explicit names: Keras numbers default names per process, and the builders and
    # tests below edit and look up these names whatever ran before them.
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv2d"),
            keras.layers.MaxPooling2D(name="max_pooling2d"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(10, activation="softmax", name="dense"),
        ],
        name="sequential",
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy-format warning
        files = {"keras": "m.keras", "h5": "m.h5", "weights": "m.weights.h5"}
        model.save(Path(tmp) / files["keras"])
        model.save(Path(tmp) / files["h5"])
        model.save_weights(Path(tmp) / files["weights"])
        return {kind: (Path(tmp) / name).read_bytes() for kind, name in files.items()}


def _template_keras_bytes() -> bytes:
    return _templates()["keras"]


def _template_h5_bytes() -> bytes:
    return _templates()["h5"]


def _template_members() -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(_template_keras_bytes())) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _write_zip(
    path: Path,
    members: list[tuple[str | zipfile.ZipInfo, bytes]],
    compression: int = zipfile.ZIP_STORED,
) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are the point of some fixtures
        with zipfile.ZipFile(path, "w", compression=compression) as zf:
            for name, data in members:
                zf.writestr(name, data)
    return path


def _keras_with(directory: Path, name: str, **replace: bytes) -> Path:
    """The template .keras with some members replaced (same member order as Keras)."""
    members = _template_members()
    members.update(replace)
    return _write_zip(Path(directory) / name, list(members.items()))


def _edited_config(edit: Callable[[dict[str, Any]], None]) -> bytes:
    config = json.loads(_template_members()["config.json"])
    edit(config)
    return json.dumps(config).encode()


def _edited_weights(edit: Callable[[h5py.File], None]) -> bytes:
    buf = io.BytesIO(_template_members()["model.weights.h5"])
    with h5py.File(buf, "r+") as f:
        edit(f)
    return buf.getvalue()


def _edited_h5(path: Path, edit: Callable[[h5py.File], None]) -> Path:
    path.write_bytes(_template_h5_bytes())
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


# --------------------------------------------------------------------------- benign


def plain_keras(directory: Path, marker: Path | None = None, name: str = "plain.keras") -> Path:
    """A genuine small CNN in .keras format (the thing students should upload)."""
    path = Path(directory) / name
    path.write_bytes(_template_keras_bytes())
    return path


def plain_h5(directory: Path, marker: Path | None = None, name: str = "plain.h5") -> Path:
    """The same CNN in the legacy .h5 format."""
    path = Path(directory) / name
    path.write_bytes(_template_h5_bytes())
    return path


def h5_with_user_block(directory: Path, marker: Path | None = None) -> Path:
    """A legacy .h5 model whose HDF5 superblock sits after a 512-byte user block."""
    path = Path(directory) / "userblock.h5"
    src = h5py.File(io.BytesIO(_template_h5_bytes()), "r")
    with src, h5py.File(path, "w", userblock_size=512) as dst:
        for key in src:
            src.copy(src[key], dst, name=key)
        for key, value in src.attrs.items():
            dst.attrs[key] = value
    return path


# --------------------------------------------------------------------------- pass file checks


def lambda_keras(directory: Path, marker: Path | None = None) -> Path:
    """A Lambda layer whose marshalled bytecode runs ``os.system("touch MARKER")``."""
    return _lambda_model(directory, marker, "lambda.keras")


def lambda_h5(directory: Path, marker: Path | None = None) -> Path:
    """The same Lambda payload in the legacy .h5 format."""
    return _lambda_model(directory, marker, "lambda.h5")


def _lambda_model(directory: Path, marker: Path | None, name: str, nested: bool = False) -> Path:
    keras = _keras()
    marker = _marker(directory, marker)
    command = _touch_command(marker)
    payload = keras.layers.Lambda(lambda x, c=command: (__import__("os").system(c), x)[1])
    if nested:
        inner = keras.Sequential([keras.Input((4,)), payload, keras.layers.Dense(3)], name="inner")
        model = keras.Sequential([keras.Input((4,)), inner, keras.layers.Dense(2)])
    else:
        model = keras.Sequential([keras.Input((4,)), payload, keras.layers.Dense(2)])
    path = Path(directory) / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(path)
    marker.unlink(missing_ok=True)  # building the model traced the Lambda once, here
    return path


def nested_lambda_keras(directory: Path, marker: Path | None = None) -> Path:
    """The Lambda payload hidden inside a sub-model."""
    return _lambda_model(directory, marker, "nested_lambda.keras", nested=True)


def os_system_layer_keras(directory: Path, marker: Path | None = None) -> Path:
    """A "layer" whose module is ``os`` and class ``system``, arguments a shell command."""
    command = _touch_command(_marker(directory, marker))

    def edit(config: dict[str, Any]) -> None:
        config["config"]["layers"].insert(
            1,
            {
                "module": "os",
                "class_name": "system",
                "config": {"command": command},
                "registered_name": "system",
            },
        )

    return _keras_with(directory, "os_system.keras", **{"config.json": _edited_config(edit)})


def tfsmlayer_keras(directory: Path, marker: Path | None = None) -> Path:
    """A TFSMLayer, which would load (and run) an arbitrary TensorFlow SavedModel."""
    evil = Path(directory) / "evil_savedmodel"

    def edit(config: dict[str, Any]) -> None:
        config["config"]["layers"].insert(
            1,
            {
                "module": "keras.layers",
                "class_name": "TFSMLayer",
                "config": {
                    "name": "tfsm",
                    "filepath": str(evil),
                    "call_endpoint": "serve",
                    "trainable": False,
                },
                "registered_name": None,
            },
        )

    return _keras_with(directory, "tfsmlayer.keras", **{"config.json": _edited_config(edit)})


@functools.cache
def _evil_layer_class() -> type:
    keras = _keras()

    @keras.saving.register_keras_serializable(package="hostile", name="EvilLayer")
    class EvilLayer(keras.layers.Layer):
        """Creates the marker whenever it is constructed from a config."""

        def __init__(self, marker: str = "", **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.marker = marker
            if marker:
                Path(marker).touch()

        def call(self, x: Any) -> Any:
            return x

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "marker": self.marker}

    return EvilLayer


def custom_class_keras(directory: Path, marker: Path | None = None) -> Path:
    """A registered custom layer class (its code is not in the file, but must not be trusted)."""
    keras = _keras()
    marker = _marker(directory, marker)
    layer = _evil_layer_class()(marker=str(marker))
    model = keras.Sequential([keras.Input((4,)), layer, keras.layers.Dense(2)])
    path = Path(directory) / "custom_class.keras"
    model.save(path)
    marker.unlink(missing_ok=True)  # constructing it here created the marker once
    return path


def trillion_dense_keras(directory: Path, marker: Path | None = None) -> Path:
    """A Dense layer declaring 10**12 units: building it would exhaust memory."""

    def edit(config: dict[str, Any]) -> None:
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "Dense":
                layer["config"]["units"] = 10**12

    return _keras_with(directory, "trillion.keras", **{"config.json": _edited_config(edit)})


# --------------------------------------------------------------------------- refused: not Keras


def empty_file(directory: Path, marker: Path | None = None) -> Path:
    path = Path(directory) / "empty.keras"
    path.write_bytes(b"")
    return path


def garbage_file(directory: Path, marker: Path | None = None) -> Path:
    path = Path(directory) / "garbage.keras"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return path


class _Payload:
    """Pickling this yields ``os.system(command)`` on unpickling."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


def pickle_file(directory: Path, marker: Path | None = None, name: str = "model.pkl") -> Path:
    """A pickle that runs a shell command when loaded."""
    path = Path(directory) / name
    path.write_bytes(pickle.dumps(_Payload(_touch_command(_marker(directory, marker))), 4))
    return path


def pickle_named_h5(directory: Path, marker: Path | None = None) -> Path:
    """The same pickle, named like a Keras file."""
    return pickle_file(directory, marker, name="model.h5")


def onnx_file(directory: Path, marker: Path | None = None) -> Path:
    """Protocol-buffer bytes shaped like an ONNX ModelProto."""
    path = Path(directory) / "model.onnx"
    path.write_bytes(b"\x08\x07\x12\x07pytorch\x1a\x052.1.0:\x8a\x01\n\x1d" + bytes(200))
    return path


def savedmodel_dir(directory: Path, marker: Path | None = None, name: str = "saved_model") -> Path:
    """A TensorFlow SavedModel folder (a graph that could run any op)."""
    path = Path(directory) / name
    (path / "variables").mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"\x08\x01\x12\x02\n\x00" + bytes(64))
    (path / "variables" / "variables.index").write_bytes(bytes(16))
    (path / "config.json").write_text("{}")  # Keras treats such folders as models
    return path


def savedmodel_named_keras(directory: Path, marker: Path | None = None) -> Path:
    """A folder named model.keras."""
    return savedmodel_dir(directory, marker, name="folder.keras")


def torch_zip(directory: Path, marker: Path | None = None, name: str = "torch.keras") -> Path:
    """A PyTorch-style zip (data.pkl runs a command when loaded), named .keras."""
    payload = pickle.dumps(_Payload(_touch_command(_marker(directory, marker))), 2)
    members = [
        ("archive/data.pkl", payload),
        ("archive/byteorder", b"little"),
        ("archive/data/0", bytes(64)),
        ("archive/version", b"3\n"),
    ]
    return _write_zip(Path(directory) / name, members)


def weights_only_h5(directory: Path, marker: Path | None = None) -> Path:
    """Weights saved with save_weights: no architecture inside."""
    path = Path(directory) / "weights_only.h5"
    path.write_bytes(_templates()["weights"])
    return path


def keras_named_h5(directory: Path, marker: Path | None = None) -> Path:
    """A genuine .keras archive whose name says .h5 (Keras would pick the wrong loader)."""
    return plain_keras(directory, name="renamed.h5")


def h5_named_keras(directory: Path, marker: Path | None = None) -> Path:
    """A genuine legacy .h5 model whose name says .keras."""
    return plain_h5(directory, name="renamed.keras")


def keras_named_txt(directory: Path, marker: Path | None = None) -> Path:
    return plain_keras(directory, name="model.txt")


# --------------------------------------------------------------------------- refused: damaged


def truncated_keras(directory: Path, marker: Path | None = None) -> Path:
    data = _template_keras_bytes()
    path = Path(directory) / "truncated.keras"
    path.write_bytes(data[: len(data) // 2])
    return path


def truncated_h5(directory: Path, marker: Path | None = None) -> Path:
    data = _template_h5_bytes()
    path = Path(directory) / "truncated.h5"
    path.write_bytes(data[: len(data) // 2])
    return path


def bad_json_keras(directory: Path, marker: Path | None = None) -> Path:
    return _keras_with(directory, "bad_json.keras", **{"config.json": b'{"class_name": "Seq'})


def deep_json_keras(directory: Path, marker: Path | None = None) -> Path:
    """config.json nested 100 000 levels deep (a RecursionError bomb for naive walkers)."""
    depth = 100_000
    data = b'{"class_name": "Sequential", "config": ' + b"[" * depth + b"]" * depth + b"}"
    return _keras_with(directory, "deep_json.keras", **{"config.json": data})


def nan_config_keras(directory: Path, marker: Path | None = None) -> Path:
    """Units set to NaN, which Python's json accepts unless told not to."""

    def edit(config: dict[str, Any]) -> None:
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "Dense":
                layer["config"]["units"] = float("nan")

    return _keras_with(directory, "nan.keras", **{"config.json": _edited_config(edit)})


def surrogate_config_keras(directory: Path, marker: Path | None = None) -> Path:
    """A lone UTF-16 surrogate escape: valid JSON, but the string can never be encoded."""
    data = _template_members()["config.json"].replace(b'"sequential"', b'"seq\\ud800"', 1)
    return _keras_with(directory, "surrogate.keras", **{"config.json": data})


def weights_not_h5_keras(directory: Path, marker: Path | None = None) -> Path:
    payload = pickle.dumps(_Payload(_touch_command(_marker(directory, marker))), 4)
    return _keras_with(directory, "weights_pickle.keras", **{"model.weights.h5": payload})


# --------------------------------------------------------------------------- refused: zip tricks


def _keras_plus(
    directory: Path, name: str, extra: list[tuple[str | zipfile.ZipInfo, bytes]]
) -> Path:
    return _write_zip(Path(directory) / name, [*_template_members().items(), *extra])


def zip_slip_keras(directory: Path, marker: Path | None = None) -> Path:
    """A ``../evil`` member that an extractor would write outside its folder."""
    return _keras_plus(directory, "zip_slip.keras", [("../evil", b"#!/bin/sh\n")])


def absolute_path_keras(directory: Path, marker: Path | None = None) -> Path:
    return _keras_plus(directory, "absolute.keras", [("/tmp/evil", b"x")])


def backslash_keras(directory: Path, marker: Path | None = None) -> Path:
    return _keras_plus(directory, "backslash.keras", [("..\\evil", b"x")])


def symlink_member_keras(directory: Path, marker: Path | None = None) -> Path:
    """``config.json`` stored as a symlink to /etc/passwd (an extractor would follow it)."""
    info = zipfile.ZipInfo("config.json")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    members = _template_members()
    return _write_zip(
        Path(directory) / "symlink.keras",
        [
            ("metadata.json", members["metadata.json"]),
            (info, b"/etc/passwd"),
            ("model.weights.h5", members["model.weights.h5"]),
        ],
    )


def duplicate_member_keras(directory: Path, marker: Path | None = None) -> Path:
    """Two config.json members: different readers may pick different ones."""
    return _keras_plus(directory, "duplicate.keras", [("config.json", b'{"class_name": "x"}')])


def extra_member_keras(directory: Path, marker: Path | None = None) -> Path:
    return _keras_plus(directory, "extra.keras", [("assets/evil.py", b"import os\n")])


def npz_weights_keras(directory: Path, marker: Path | None = None) -> Path:
    members = _template_members()
    buf = io.BytesIO()
    np.savez(buf, a=np.zeros(3))
    return _write_zip(
        Path(directory) / "npz.keras",
        [
            ("metadata.json", members["metadata.json"]),
            ("config.json", members["config.json"]),
            ("model.weights.npz", buf.getvalue()),
        ],
    )


def encrypted_keras(directory: Path, marker: Path | None = None) -> Path:
    """The template with the 'encrypted' flag set on every member."""
    path = plain_keras(directory, name="encrypted.keras")
    path.write_bytes(_patch_zip(path.read_bytes(), flag_bits=0x1))
    return path


def lying_size_keras(directory: Path, marker: Path | None = None) -> Path:
    """The central directory understates config.json's size (a reader must not trust it)."""
    path = plain_keras(directory, name="lying.keras")
    path.write_bytes(_patch_zip(path.read_bytes(), member="config.json", file_size=10))
    return path


def huge_declared_keras(directory: Path, marker: Path | None = None) -> Path:
    """The central directory claims weights of 4 GB (without bytes behind it)."""
    path = plain_keras(directory, name="huge_declared.keras")
    data = _patch_zip(path.read_bytes(), member="model.weights.h5", file_size=0xFFFF_FFF0)
    path.write_bytes(data)
    return path


def _patch_zip(
    data: bytes, *, member: str | None = None, flag_bits: int = 0, file_size: int | None = None
) -> bytes:
    """Edit header fields in place (zipfile refuses to write such lies itself)."""
    out = bytearray(data)
    pos = out.find(b"PK\x01\x02")
    while pos >= 0:
        name_len = struct.unpack_from("<H", out, pos + 28)[0]
        name = bytes(out[pos + 46 : pos + 46 + name_len]).decode()
        local = struct.unpack_from("<L", out, pos + 42)[0]
        if member is None or name == member:
            if flag_bits:
                struct.pack_into(
                    "<H", out, pos + 8, struct.unpack_from("<H", out, pos + 8)[0] | flag_bits
                )
                struct.pack_into(
                    "<H", out, local + 6, struct.unpack_from("<H", out, local + 6)[0] | flag_bits
                )
            if file_size is not None:
                struct.pack_into("<L", out, pos + 24, file_size)
                struct.pack_into("<L", out, local + 22, file_size)
        pos = out.find(b"PK\x01\x02", pos + 46 + name_len)
    return bytes(out)


def zip_bomb_keras(directory: Path, marker: Path | None = None, size_mb: int = 300) -> Path:
    """model.weights.h5 is 300 MB of zeros deflated to ~300 KB (ratio ~1000:1)."""
    path = Path(directory) / "zip_bomb.keras"
    members = _template_members()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.json", members["metadata.json"])
        zf.writestr("config.json", members["config.json"])
        with zf.open("model.weights.h5", "w", force_zip64=True) as out:
            chunk = bytes(1 << 20)
            for _ in range(size_mb):
                out.write(chunk)
    return path


# --------------------------------------------------------------------------- refused: HDF5 tricks


def _secret_h5(directory: Path) -> Path:
    secret = Path(directory) / "secret.h5"
    with h5py.File(secret, "w") as f:
        f["stolen"] = np.arange(10, dtype="float32")
    return secret


def h5_external_link(directory: Path, marker: Path | None = None) -> Path:
    """A legacy .h5 model with an ExternalLink into another file."""
    secret = _secret_h5(directory)

    def edit(f: h5py.File) -> None:
        f["model_weights/evil"] = h5py.ExternalLink(str(secret), "/stolen")

    return _edited_h5(Path(directory) / "external_link.h5", edit)


def h5_external_storage(directory: Path, marker: Path | None = None) -> Path:
    """A dataset whose bytes live in another file (here: /etc/passwd-like raw file)."""
    raw = Path(directory) / "outside.bin"
    raw.write_bytes(bytes(400))

    def edit(f: h5py.File) -> None:
        f.create_dataset(
            "model_weights/evil", shape=(100,), dtype="float32", external=[(str(raw), 0, 400)]
        )

    return _edited_h5(Path(directory) / "external_storage.h5", edit)


def h5_soft_link(directory: Path, marker: Path | None = None) -> Path:
    def edit(f: h5py.File) -> None:
        f["model_weights/alias"] = h5py.SoftLink("/optimizer_weights")

    return _edited_h5(Path(directory) / "soft_link.h5", edit)


def h5_virtual_dataset(directory: Path, marker: Path | None = None) -> Path:
    secret = _secret_h5(directory)

    def edit(f: h5py.File) -> None:
        layout = h5py.VirtualLayout(shape=(10,), dtype="float32")
        layout[:] = h5py.VirtualSource(str(secret), "stolen", shape=(10,))
        f.create_virtual_dataset("model_weights/virtual", layout)

    return _edited_h5(Path(directory) / "virtual.h5", edit)


def h5_object_reference(directory: Path, marker: Path | None = None) -> Path:
    def edit(f: h5py.File) -> None:
        ds = f.create_dataset("model_weights/refs", shape=(1,), dtype=h5py.ref_dtype)
        ds[0] = f["model_weights"].ref

    return _edited_h5(Path(directory) / "object_ref.h5", edit)


def h5_opaque_dtype(directory: Path, marker: Path | None = None) -> Path:
    def edit(f: h5py.File) -> None:
        f.create_dataset("model_weights/opaque", data=np.array([np.void(b"\x00" * 16)]))

    return _edited_h5(Path(directory) / "opaque.h5", edit)


def h5_string_dataset(directory: Path, marker: Path | None = None) -> Path:
    def edit(f: h5py.File) -> None:
        f.create_dataset("model_weights/strings", data=[b"import os"] * 4)

    return _edited_h5(Path(directory) / "strings.h5", edit)


def h5_unknown_filter(directory: Path, marker: Path | None = None) -> Path:
    """A dataset compressed with a plugin filter: HDF5 would dlopen a library to read it."""

    def edit(f: h5py.File) -> None:
        f.create_dataset(
            "model_weights/plugin",
            shape=(64,),
            dtype="float32",
            chunks=(64,),
            compression=32_123,
            allow_unknown_filter=True,
        )

    return _edited_h5(Path(directory) / "unknown_filter.h5", edit)


def h5_sparse_bomb(directory: Path, marker: Path | None = None) -> Path:
    """A 2 GB dataset that stores nothing: reading it would materialise 2 GB of zeros."""

    def edit(f: h5py.File) -> None:
        f.create_dataset("model_weights/bomb", shape=(512 * 1024 * 1024,), dtype="float32")

    return _edited_h5(Path(directory) / "sparse_bomb.h5", edit)


def h5_compressed_bomb(directory: Path, marker: Path | None = None) -> Path:
    """64 MB of zeros gzip-compressed into a few KB inside the HDF5 file."""

    def edit(f: h5py.File) -> None:
        ds = f.create_dataset(
            "model_weights/bomb",
            shape=(16 * 1024 * 1024,),
            dtype="float32",
            chunks=(1024 * 1024,),
            compression="gzip",
        )
        ds[:] = 0.0  # written chunks, all zeros

    return _edited_h5(Path(directory) / "compressed_bomb.h5", edit)


def h5_corrupt_global_heap(directory: Path, marker: Path | None = None) -> Path:
    """One global-heap object's size grown by 256 bytes: libhdf5 then spins forever
    reading the ``model_config`` attribute (found by mutation testing; h5py 3.14)."""
    data = bytearray(_template_h5_bytes())
    heap = data.find(b"GCOL")
    heap_size = struct.unpack_from("<Q", data, heap + 8)[0]
    pos, last = heap + 16, -1
    while pos < heap + heap_size - 16:
        index, size = (
            struct.unpack_from("<H", data, pos)[0],
            struct.unpack_from("<Q", data, pos + 8)[0],
        )
        if index == 0:
            break
        last, pos = pos, pos + 16 + (size + 7) // 8 * 8
    struct.pack_into("<Q", data, last + 8, struct.unpack_from("<Q", data, last + 8)[0] + 256)
    path = Path(directory) / "corrupt_heap.h5"
    path.write_bytes(bytes(data))
    return path


def keras_weights_external_link(directory: Path, marker: Path | None = None) -> Path:
    """The .keras archive's own model.weights.h5 links to a file outside the archive."""
    secret = _secret_h5(directory)

    def edit(f: h5py.File) -> None:
        f["layers/dense/vars/evil"] = h5py.ExternalLink(str(secret), "/stolen")

    weights = _edited_weights(edit)
    return _keras_with(directory, "weights_external_link.keras", **{"model.weights.h5": weights})


def keras_weights_external_storage(directory: Path, marker: Path | None = None) -> Path:
    raw = Path(directory) / "outside.bin"
    raw.write_bytes(bytes(400))

    def edit(f: h5py.File) -> None:
        f.create_dataset(
            "layers/dense/vars/evil", shape=(100,), dtype="float32", external=[(str(raw), 0, 400)]
        )

    weights = _edited_weights(edit)
    return _keras_with(directory, "weights_external.keras", **{"model.weights.h5": weights})


PASS_FILE_CHECKS: dict[str, Builder] = {
    "lambda_keras": lambda_keras,
    "lambda_h5": lambda_h5,
    "nested_lambda_keras": nested_lambda_keras,
    "os_system_layer_keras": os_system_layer_keras,
    "tfsmlayer_keras": tfsmlayer_keras,
    "custom_class_keras": custom_class_keras,
    "trillion_dense_keras": trillion_dense_keras,
}

REFUSED_BY_FILE_CHECKS: dict[str, Builder] = {
    "empty_file": empty_file,
    "garbage_file": garbage_file,
    "pickle_file": pickle_file,
    "pickle_named_h5": pickle_named_h5,
    "onnx_file": onnx_file,
    "savedmodel_dir": savedmodel_dir,
    "savedmodel_named_keras": savedmodel_named_keras,
    "torch_zip": torch_zip,
    "weights_only_h5": weights_only_h5,
    "keras_named_h5": keras_named_h5,
    "h5_named_keras": h5_named_keras,
    "keras_named_txt": keras_named_txt,
    "truncated_keras": truncated_keras,
    "truncated_h5": truncated_h5,
    "bad_json_keras": bad_json_keras,
    "deep_json_keras": deep_json_keras,
    "nan_config_keras": nan_config_keras,
    "surrogate_config_keras": surrogate_config_keras,
    "weights_not_h5_keras": weights_not_h5_keras,
    "zip_slip_keras": zip_slip_keras,
    "absolute_path_keras": absolute_path_keras,
    "backslash_keras": backslash_keras,
    "symlink_member_keras": symlink_member_keras,
    "duplicate_member_keras": duplicate_member_keras,
    "extra_member_keras": extra_member_keras,
    "npz_weights_keras": npz_weights_keras,
    "encrypted_keras": encrypted_keras,
    "lying_size_keras": lying_size_keras,
    "huge_declared_keras": huge_declared_keras,
    "zip_bomb_keras": zip_bomb_keras,
    "h5_external_link": h5_external_link,
    "h5_external_storage": h5_external_storage,
    "h5_soft_link": h5_soft_link,
    "h5_virtual_dataset": h5_virtual_dataset,
    "h5_object_reference": h5_object_reference,
    "h5_opaque_dtype": h5_opaque_dtype,
    "h5_string_dataset": h5_string_dataset,
    "h5_unknown_filter": h5_unknown_filter,
    "h5_sparse_bomb": h5_sparse_bomb,
    "h5_compressed_bomb": h5_compressed_bomb,
    "h5_corrupt_global_heap": h5_corrupt_global_heap,
    "keras_weights_external_link": keras_weights_external_link,
    "keras_weights_external_storage": keras_weights_external_storage,
}
