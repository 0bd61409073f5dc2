"""Read an uploaded model file's configuration as plain data, refusing hostile files.

This is the first thing that touches an upload, before Keras ever sees it, so it
must never execute anything: it reads bytes, zip headers, JSON and HDF5 metadata
only. It deliberately imports neither TensorFlow nor Keras (fast, and no code in
the file can run here). libhdf5 itself is a C parser that can be made to hang on
crafted input, so HDF5 metadata is read in a forked child with CPU, memory and
wall-clock limits. Every problem becomes ``NotGradable`` with a plain-English
reason; no traceback ever escapes.
"""

from __future__ import annotations

import io
import json
import math
import os
import stat
import struct
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import h5py
import numpy as np

from grader import units
from grader.errors import NotGradable, SandboxUnavailable
from grader.fingerprint import fingerprint
from grader.formats import H5_SUFFIXES, HDF5_MAGIC, KERAS_SUFFIXES, ZIP_MAGIC
from grader.inspection.isolation import DAMAGED, run_isolated
from grader.settings import Settings

__all__ = ["ModelFile", "read_model_file"]

KIB = 1024
MIB = 1024 * KIB


# What Keras 3.15.1 writes into a .keras archive for models made of plain layers.
# (An ``assets/`` folder only appears for layers with files, e.g. TextVectorization;
# ``model.weights.npz`` only with a non-default weights format.  Neither is accepted.)
CONFIG_MEMBER = "config.json"
METADATA_MEMBER = "metadata.json"
WEIGHTS_MEMBER = "model.weights.h5"
ALLOWED_MEMBERS = frozenset({CONFIG_MEMBER, METADATA_MEMBER, WEIGHTS_MEMBER})
REQUIRED_MEMBERS = (CONFIG_MEMBER, WEIGHTS_MEMBER)

MAX_CONFIG_BYTES = 10 * MIB
MAX_METADATA_BYTES = 64 * KIB
MAX_ZIP_ENTRIES = 16
MAX_CENTRAL_DIRECTORY_BYTES = 64 * KIB
MAX_JSON_DEPTH = 200  # far beyond any real Keras config; keeps later walkers off the stack limit
MAX_H5_OBJECTS = 100_000
RATIO_FLOOR_BYTES = 1 * MIB  # tiny members/datasets may compress well; their size is harmless
READ_CHUNK = 1 * MIB
H5_TIMEOUT_S = 5.0  # wall clock for the forked HDF5 reader; real files need milliseconds
H5_CHILD_MEMORY_BYTES = 1024 * MIB  # extra address space the HDF5 reader may map

# HDF5 filters built into libhdf5 (and LZF, which h5py registers itself).  Anything
# else would make HDF5 go looking for a plugin shared library when the data is read.
_BUILTIN_H5_FILTERS = frozenset({1, 2, 3, 4, 5, 6, 32000})
_NUMERIC_KINDS = frozenset("fiub")

NOT_KERAS = (
    "This is not a Keras model file (.keras or .h5){hint}. SavedModel folders, "
    "pickles, PyTorch and ONNX files are not accepted."
)
SAVE_ADVICE = (
    "Save it as one file: model.save('model.keras') (TensorFlow 2.16+, Keras 3) or "
    "model.save('model.h5') (TensorFlow 2.15 or older, Keras 2); both are graded."
)
SAVEDMODEL = (
    "This is a TensorFlow SavedModel (saved_model.pb: what model.save('name') without an "
    "extension writes on TensorFlow 2.15 or older). It holds graphs, not a Keras model. "
    + SAVE_ADVICE
)
TOO_MANY_MEMBERS = "The .keras archive contains far too many files; a Keras model has three."


@dataclass
class ModelFile:
    """What the trusted side learned from a model file without loading it."""

    format: str  # "keras" or "h5"
    model_config: dict[str, Any]  # the serialized model, exactly as stored
    keras_version: str | None
    weight_shapes: dict[str, tuple[int, ...]]  # every HDF5 dataset path -> shape
    weight_bytes: int = 0  # what the HDF5 datasets declare, uncompressed
    fingerprint: list[dict[str, Any]] = field(default_factory=list)  # see grader.fingerprint


# Given the parsed configuration, the most weight bytes it can honestly need.
WeightBudget = Callable[[dict[str, Any]], int]


def read_model_file(
    path: Path, settings: Settings, weight_budget: WeightBudget | None = None
) -> ModelFile:
    """Identify ``path`` by content, check it is a well-formed Keras file and read its config.

    Raises ``NotGradable`` with a short plain-English reason for anything that is
    not an ordinary Keras ``.keras`` or legacy ``.h5`` model. ``weight_budget``
    refuses weights far larger than the configuration needs, before they are read.
    """
    path = Path(path)
    fh = _open_upload(path, settings)
    try:
        kind = _sniff(fh)
        _check_suffix(path, kind)
        if kind == "keras":
            return _read_keras(fh, settings, weight_budget)
        return _read_h5_model(fh, settings, weight_budget)
    except (NotGradable, SandboxUnavailable):
        raise
    except RecursionError as exc:
        raise NotGradable("The model configuration is nested too deeply to read.") from exc
    except MemoryError as exc:
        raise NotGradable("The file is too large to inspect.") from exc
    except Exception as exc:  # zipfile, h5py, OSError, struct, ...: never a traceback
        raise NotGradable(DAMAGED.format(detail="")) from exc
    finally:
        fh.close()


def written_by(keras_version: str | None) -> int:
    """The Keras major version that wrote a file (3 when the file does not say)."""
    head = (keras_version or "3").strip().split(".")[0]
    return int(head) if head.isascii() and head.isdigit() and len(head) < 3 else 3


def _check_writer(keras_version: str | None) -> None:
    """Keras 1 files hold a configuration no current Keras reads: say how to re-save."""
    if written_by(keras_version) < 2:
        raise NotGradable(
            f"This file was written by Keras {keras_version}, whose format no current Keras "
            "can read. Load it in your Keras 1 setup and save it again from Keras 2 or 3. "
            + SAVE_ADVICE
        )


# --------------------------------------------------------------------------- opening


def _open_upload(path: Path, settings: Settings) -> BinaryIO:
    """Open once (no symlinks, no FIFOs blocking us) and check type and size on the fd."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    flags |= getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as exc:
        raise NotGradable("The uploaded file could not be found.") from exc
    except OSError as exc:
        if path.is_symlink():
            raise NotGradable("The upload is a symbolic link, not a model file.") from exc
        raise NotGradable("The uploaded file could not be opened.") from exc
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            if (path / "saved_model.pb").is_file():
                raise NotGradable(SAVEDMODEL)
            raise NotGradable(
                NOT_KERAS.format(hint=" (it is a folder, e.g. a TensorFlow SavedModel)")
            )
        if not stat.S_ISREG(st.st_mode):
            raise NotGradable("The upload is not a regular file.")
        if st.st_size == 0:
            raise NotGradable("The file is empty.")
        if st.st_size > settings.max_upload_bytes:
            raise NotGradable(
                f"The file is {units.size(st.st_size)}, over the upload limit of "
                f"{units.size(settings.max_upload_bytes)}."
            )
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _sniff(fh: BinaryIO) -> str:
    """Return "keras" or "h5" from magic bytes, or refuse naming what it looks like."""
    head = fh.read(64)
    if head.startswith(ZIP_MAGIC):
        return "keras"
    size = os.fstat(fh.fileno()).st_size
    offset = 0
    while offset + len(HDF5_MAGIC) <= size:  # superblock at 0, 512, 1024, 2048, ...
        fh.seek(offset)
        if fh.read(len(HDF5_MAGIC)) == HDF5_MAGIC:
            return "h5"
        offset = 512 if offset == 0 else offset * 2
    raise NotGradable(NOT_KERAS.format(hint=_guess_kind(head)))


def _guess_kind(head: bytes) -> str:
    """A friendly hint about what a refused file seems to be."""
    if head.startswith(b"PK\x05\x06"):
        return " (it is an empty zip archive)"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return " (it looks like a Python pickle)"
    if head.startswith(b"\x93NUMPY"):
        return " (it is a NumPy array file)"
    if head[:1] == b"\x08" and b"\x12" in head[:4]:
        return " (it looks like a protocol buffer, e.g. ONNX or a SavedModel .pb)"
    if head.lstrip().startswith((b"{", b"[")):
        return " (it is a JSON text file)"
    return ""


def _check_suffix(path: Path, kind: str) -> None:
    """The name must agree with the content: Keras itself picks the loader by name."""
    suffix = path.suffix.lower()
    if suffix in KERAS_SUFFIXES | H5_SUFFIXES:
        if kind == "keras" and suffix in H5_SUFFIXES:
            raise NotGradable(
                f"The file name ends in {suffix} but it contains a .keras archive. "
                "Rename it to end in .keras and upload it again."
            )
        if kind == "h5" and suffix in KERAS_SUFFIXES:
            raise NotGradable(
                "The file name ends in .keras but it contains a legacy HDF5 (.h5) model. "
                "Rename it to end in .h5, or save again with model.save('model.keras')."
            )
        return
    raise NotGradable(NOT_KERAS.format(hint=" (the file name must end in .keras or .h5)"))


# --------------------------------------------------------------------------- .keras


def _read_keras(fh: BinaryIO, settings: Settings, budget: WeightBudget | None) -> ModelFile:
    """Check the zip structure by its headers, then read config, metadata and weights."""
    _check_central_directory_size(fh)
    fh.seek(0)
    with zipfile.ZipFile(fh) as zf, tempfile.TemporaryFile(prefix="grader-weights-") as weights:
        infos = zf.infolist()
        _check_zip_members(infos, fh, settings)
        by_name = {info.filename: info for info in infos}

        config_bytes = _read_member(zf, by_name[CONFIG_MEMBER], MAX_CONFIG_BYTES)
        config = _parse_json(config_bytes, "config.json")
        if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
            raise NotGradable("config.json does not describe a Keras model.")

        keras_version = None
        if METADATA_MEMBER in by_name:
            meta = _parse_json(
                _read_member(zf, by_name[METADATA_MEMBER], MAX_METADATA_BYTES), "metadata.json"
            )
            if not isinstance(meta, dict):
                raise NotGradable(DAMAGED.format(detail=" (metadata.json is not a JSON object)"))
            version = meta.get("keras_version")
            keras_version = version if isinstance(version, str) else None
        _check_writer(keras_version)

        cap = settings.max_uncompressed_bytes - len(config_bytes)
        declared = by_name[WEIGHTS_MEMBER].file_size
        if budget is not None:
            _check_weight_budget(declared, budget(config))
        # Streamed to a temporary file, not memory: the grading process never holds it.
        _copy_member(zf, by_name[WEIGHTS_MEMBER], cap, weights)
        weights.seek(0)
        if weights.read(len(HDF5_MAGIC)) != HDF5_MAGIC:
            raise NotGradable("The weights inside the .keras file (model.weights.h5) are not HDF5.")
        weights.seek(0)
        what = "The weights file model.weights.h5"

        def work() -> dict[str, Any]:
            with _open_h5(weights, what) as h5:
                shapes, total = _inspect_hdf5(h5, settings, what)
                return {"shapes": shapes, "bytes": total, "prints": _weight_prints(h5, shapes)}

        result = _isolated(work)
    return ModelFile(
        "keras", config, keras_version, result["shapes"], result["bytes"], result["prints"]
    )


def _check_weight_budget(size: int, allowed: int) -> None:
    if size > allowed:
        raise NotGradable(
            f"The model's weights take {units.size(size)}, far more than the parameters its "
            f"configuration declares can need ({units.size(allowed)} at most). The file was edited "
            "or padded and cannot be graded."
        )


def _check_central_directory_size(fh: BinaryIO) -> None:
    """Bound the member count before ``zipfile`` builds one object per entry."""
    size = os.fstat(fh.fileno()).st_size
    tail_len = min(size, 22 + 65535)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or len(tail) - pos < 22:
        raise NotGradable(DAMAGED.format(detail=" (the zip directory is missing)"))
    _, _, _, _, entries, cd_size, _, _ = struct.unpack("<4s4H2LH", tail[pos : pos + 22])
    if entries > MAX_ZIP_ENTRIES or cd_size > MAX_CENTRAL_DIRECTORY_BYTES:
        raise NotGradable(TOO_MANY_MEMBERS)


def _check_zip_members(infos: list[zipfile.ZipInfo], fh: BinaryIO, settings: Settings) -> None:
    """Refuse anything Keras would not have written, judging by headers only."""
    names = [info.filename for info in infos]
    if len(infos) > MAX_ZIP_ENTRIES:
        raise NotGradable(TOO_MANY_MEMBERS)
    if any(name.rsplit("/", 1)[-1] == "saved_model.pb" for name in names):
        raise NotGradable(SAVEDMODEL)
    if CONFIG_MEMBER not in names:
        torch = any(n.endswith(".pkl") or "/data/" in n or n.endswith("/version") for n in names)
        hint = " (it looks like a PyTorch file)" if torch else " (a zip without config.json)"
        raise NotGradable(NOT_KERAS.format(hint=hint))
    if len(set(names)) != len(names):
        raise NotGradable("The .keras archive contains the same file name twice.")
    for info in infos:
        name = info.filename
        if (
            name.startswith(("/", "\\"))
            or "\\" in name
            or ".." in name.split("/")
            or "\x00" in name
            or (len(name) > 1 and name[1] == ":")
        ):
            raise NotGradable(f"The .keras archive contains an unsafe path: {name[:80]!r}.")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise NotGradable(f"The .keras archive contains a symbolic link: {name[:80]!r}.")
        if info.flag_bits & 0x41:  # 0x1 encrypted, 0x40 strong encryption
            raise NotGradable("The .keras archive is encrypted or password protected.")
        if name not in ALLOWED_MEMBERS:
            raise NotGradable(
                f"The .keras archive contains an unexpected file {name[:80]!r}; only "
                "config.json, metadata.json and model.weights.h5 are accepted."
            )
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise NotGradable(f"The .keras archive uses an unusual compression for {name!r}.")
        if (
            info.file_size > RATIO_FLOOR_BYTES
            and info.file_size > settings.max_compression_ratio * max(info.compress_size, 1)
        ):
            ratio = info.file_size // max(info.compress_size, 1)
            raise NotGradable(
                f"The .keras archive member {name!r} expands {ratio} times when unpacked "
                "(a zip bomb?)."
            )
    for required in REQUIRED_MEMBERS:
        if required not in names:
            raise NotGradable(f"The .keras archive has no {required}.")
    total = sum(info.file_size for info in infos)
    if total > settings.max_uncompressed_bytes:
        raise NotGradable(
            f"The .keras archive unpacks to {units.size(total)}, over the limit of "
            f"{units.size(settings.max_uncompressed_bytes)}."
        )
    # Members must not overlap (the overlapping-entries zip bomb reuses one stream many times).
    size = os.fstat(fh.fileno()).st_size
    spans = sorted((info.header_offset, info.compress_size) for info in infos)
    for (start, length), (next_start, _) in zip(spans, [*spans[1:], (size, 0)], strict=True):
        if start + 30 + length > next_start:
            raise NotGradable(DAMAGED.format(detail=" (zip members overlap)"))


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, out: BinaryIO) -> int:
    """Stream one member into ``out``, stopping at ``cap`` bytes whatever the header claims."""
    if info.file_size > cap:
        raise NotGradable(f"{info.filename} is too large ({units.size(info.file_size)}).")
    written = 0
    with zf.open(info) as member:
        while chunk := member.read(min(READ_CHUNK, cap + 1 - written)):
            out.write(chunk)
            written += len(chunk)
            if written > cap:
                raise NotGradable(f"{info.filename} is larger than allowed.")
    if written != info.file_size:
        raise NotGradable(DAMAGED.format(detail=f" ({info.filename} has the wrong size)"))
    return written


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    out = io.BytesIO()
    _copy_member(zf, info, cap, out)
    return out.getvalue()


def _parse_json(data: bytes | str, what: str) -> Any:
    """Parse JSON strictly: UTF-8, no duplicate keys, no NaN/Infinity, bounded depth."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except RecursionError as exc:
        raise NotGradable(f"{what} is nested too deeply to read.") from exc
    except NotGradable:
        raise
    except (ValueError, TypeError) as exc:  # includes UnicodeDecodeError, JSONDecodeError
        raise NotGradable(f"{what} is not valid JSON; the file is damaged.") from exc
    if _json_depth(value) > MAX_JSON_DEPTH:
        raise NotGradable(f"{what} is nested too deeply to read.")
    try:  # "\ud800" escapes parse into lone surrogates that break every later encode()
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NotGradable(f"{what} contains invalid text characters.") from exc
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise NotGradable("The model configuration repeats a key; the file was edited by hand.")
    return result


def _no_constants(name: str) -> Any:
    raise NotGradable(f"The model configuration contains the non-number {name}.")


def _json_depth(value: Any) -> int:
    """Nesting depth without recursion, so hostile nesting cannot hit the stack limit."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list):
            deepest = max(deepest, depth)
            if depth > MAX_JSON_DEPTH:
                return depth
            stack.extend((child, depth + 1) for child in node)
    return deepest


# --------------------------------------------------------------------------- HDF5


@contextmanager
def _open_h5(source: BinaryIO, what: str) -> Iterator[h5py.File]:
    """h5py.File read-only with the default driver; failing to open is a verdict."""
    try:
        h5 = h5py.File(source, "r")
    except Exception as exc:
        detail = f" ({what.lower()} cannot be opened as HDF5)"
        raise NotGradable(DAMAGED.format(detail=detail)) from exc
    try:
        yield h5
    finally:
        h5.close()


def _read_h5_model(fh: BinaryIO, settings: Settings, budget: WeightBudget | None) -> ModelFile:
    """Legacy ``.h5`` model: the architecture is the root attribute ``model_config``."""
    fh.seek(0)

    def work() -> dict[str, Any]:
        with _open_h5(fh, "The .h5 file") as h5:
            shapes, total = _inspect_hdf5(h5, settings, "The .h5 file")
            if "model_config" not in h5.attrs:
                raise NotGradable(
                    "The .h5 file stores no model architecture (was it saved with "
                    "save_weights?). Save the whole model with model.save('model.keras')."
                )
            raw = _read_string_attr(h5, "model_config", MAX_CONFIG_BYTES)
            if raw is None:
                raise NotGradable("The .h5 file stores its architecture in an unexpected form.")
            version = None
            if "keras_version" in h5.attrs:
                version = _read_string_attr(h5, "keras_version", 1 * KIB)
            prints = _weight_prints(h5, shapes)
        return {"shapes": shapes, "bytes": total, "config": raw, "version": version,
                "prints": prints}  # fmt: skip

    result = _isolated(work)
    config = _parse_json(result["config"], "The model configuration")
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise NotGradable("The .h5 file's model_config does not describe a Keras model.")
    _check_writer(result["version"])
    if budget is not None:
        _check_weight_budget(result["bytes"], budget(config))
    return ModelFile(
        "h5", config, result["version"], result["shapes"], result["bytes"], result["prints"]
    )


# --------------------------------------------------------------------------- isolation


def _isolated(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """HDF5 parsing runs in a limited child: libhdf5 can be made to hang or crash."""

    def jsonable() -> dict[str, Any]:
        result = work()
        return {**result, "shapes": [[k, list(v)] for k, v in result["shapes"].items()]}

    result = run_isolated(
        jsonable,
        timeout_s=H5_TIMEOUT_S,
        memory_bytes=H5_CHILD_MEMORY_BYTES,
        too_slow="Reading the file's HDF5 data took too long; the file is damaged or "
        "crafted to stall the grader.",
    )
    result["shapes"] = {name: tuple(shape) for name, shape in result["shapes"]}
    return result


def _read_string_attr(h5: h5py.File, name: str, cap: int) -> str | None:
    """A scalar string attribute, size-checked before it is read; None if not a string."""
    attr_id = h5.attrs.get_id(name)
    if attr_id.get_storage_size() > cap:
        raise NotGradable(f"The .h5 attribute {name!r} is too large.")
    if attr_id.shape not in ((), (1,)):
        return None
    if attr_id.get_type().get_class() != h5py.h5t.STRING:
        return None
    value = h5.attrs[name]
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0] if value.size == 1 else None
    if isinstance(value, bytes | np.bytes_):
        value = bytes(value).decode("utf-8")
    if not isinstance(value, str):
        return None
    if len(value) > cap:
        raise NotGradable(f"The .h5 attribute {name!r} is too large.")
    return value


def _inspect_hdf5(
    h5: h5py.File, settings: Settings, what: str
) -> tuple[dict[str, tuple[int, ...]], int]:
    """Refuse links, external/virtual storage, plugin filters, odd dtypes and bombs.

    Links are checked first without following any of them; only then are objects
    looked at.  The h5py visitors only collect names (an exception raised inside
    an h5py link-visit callback surfaces as a SystemError), checks run afterwards.
    """
    links = h5.id.links
    for name in _collect(h5.visit_links, what):
        # The link's type from its header alone (h5py's get(getlink=True) costs ~0.3 ms each).
        kind = links.get_info(name.encode("utf-8", "surrogateescape")).type
        if kind == h5py.h5l.TYPE_EXTERNAL:
            raise NotGradable(f"{what} links to another file ({name!r}); this is not allowed.")
        if kind == h5py.h5l.TYPE_SOFT:
            raise NotGradable(f"{what} contains a soft link ({name!r}); this is not allowed.")
        if kind != h5py.h5l.TYPE_HARD:
            raise NotGradable(f"{what} contains an unknown kind of link ({name!r}).")

    shapes: dict[str, tuple[int, ...]] = {}
    total = 0
    for name in _collect(h5.visit, what):
        obj = h5[name]  # the name came from visit(): no existence check needed
        if isinstance(obj, h5py.Group):
            continue
        if not isinstance(obj, h5py.Dataset):
            raise NotGradable(f"{what} contains an unexpected object ({name!r}).")
        total += _check_dataset(name, obj, settings, what)
        if total > settings.max_uncompressed_bytes:
            limit = units.size(settings.max_uncompressed_bytes)
            raise NotGradable(f"{what} declares more than {limit} of weights.")
        shapes[name] = tuple(int(n) for n in obj.shape)
    return shapes, total


def _weight_prints(h5: h5py.File, shapes: dict[str, tuple[int, ...]]) -> list[dict[str, Any]]:
    """The weights' fingerprint (copy detection), read only after every dataset's metadata
    passed the checks above, array by array, inside this bounded child. Optimizer state
    is left out: it says how a model was trained, not what it is."""
    arrays = (
        h5[name][()]
        for name in sorted(shapes)
        if not name.startswith(("optimizer", "/optimizer")) and h5[name].dtype.kind == "f"
    )
    return fingerprint(arrays)


def _collect(visit: Callable[[Callable[[str], Any]], Any], what: str) -> list[str]:
    """Names from an h5py visitor, stopping (by return value, not exception) at the cap."""
    names: list[str] = []

    def add(name: str) -> bool | None:
        names.append(name)
        return True if len(names) > MAX_H5_OBJECTS else None

    visit(add)
    if len(names) > MAX_H5_OBJECTS:
        raise NotGradable(f"{what} contains far too many entries.")
    return names


def _check_dataset(name: str, dset: h5py.Dataset, settings: Settings, what: str) -> int:
    """Check one dataset's metadata (never its data); return its declared size in bytes."""
    where = f"{what}: dataset {name!r}"
    if dset.external:
        raise NotGradable(f"{where} keeps its data in another file; this is not allowed.")
    if dset.is_virtual:
        raise NotGradable(f"{where} is a virtual dataset; this is not allowed.")
    if dset.shape is None:
        raise NotGradable(f"{where} has no shape.")
    _check_dtype(dset, where)
    plist = dset.id.get_create_plist()
    for i in range(plist.get_nfilters()):
        code = plist.get_filter(i)[0]
        if code not in _BUILTIN_H5_FILTERS:
            raise NotGradable(f"{where} uses an unsupported compression filter ({code}).")
    declared = math.prod(int(n) for n in dset.shape) * dset.dtype.itemsize
    if declared > settings.max_uncompressed_bytes:
        raise NotGradable(f"{where} declares {units.size(declared)}, over the limit.")
    stored = dset.id.get_storage_size()
    if declared > RATIO_FLOOR_BYTES and declared > settings.max_compression_ratio * max(stored, 1):
        raise NotGradable(
            f"{where} declares {units.size(declared)} but stores only {stored} bytes."
        )
    return declared


def _check_dtype(dset: h5py.Dataset, where: str) -> None:
    """Weights are plain numbers; Keras also writes bfloat16 as 2-byte opaque + attr."""
    dtype = dset.dtype
    if (
        dtype.kind in _NUMERIC_KINDS
        and dtype.fields is None
        and dtype.subdtype is None
        and h5py.check_enum_dtype(dtype) is None
    ):
        return
    if (
        dtype.kind == "V"
        and dtype.itemsize == 2
        and dtype.fields is None
        and dtype.subdtype is None
        and dset.id.get_type().get_class() == h5py.h5t.OPAQUE
        and _attr_equals(dset, "dtype", "bfloat16")
    ):
        return
    raise NotGradable(f"{where} holds {dtype} values, not numeric weights.")


def _attr_equals(obj: h5py.HLObject, name: str, expected: str) -> bool:
    if name not in obj.attrs:
        return False
    attr_id = obj.attrs.get_id(name)
    if attr_id.get_storage_size() > 256 or attr_id.get_type().get_class() != h5py.h5t.STRING:
        return False
    value = obj.attrs[name]
    if isinstance(value, bytes | np.bytes_):
        value = bytes(value).decode("utf-8", "replace")
    return value == expected
