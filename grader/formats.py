"""The model file formats the grader accepts: names and magic bytes, in one place.

The web form, the CLI, static inspection and the sandbox all read these, so a
file accepted at one door is accepted at every other.
"""

from __future__ import annotations

ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

KERAS_SUFFIXES = frozenset({".keras"})
H5_SUFFIXES = frozenset({".h5", ".hdf5"})
#: Every accepted extension, in the order the pages list them.
EXTENSIONS = (".keras", ".h5", ".hdf5")


def has_model_suffix(name: str) -> bool:
    return name.lower().endswith(EXTENSIONS)


def sniff_head(head: bytes) -> str:
    """ "keras" or "h5" from the first bytes (never from the name), else ""."""
    if head.startswith(ZIP_MAGIC):
        return "keras"
    if head.startswith(HDF5_MAGIC):
        return "h5"
    return ""
