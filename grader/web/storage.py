"""Content-addressed storage for uploaded model files.

Files are named by their sha256 only: the browser's file name never reaches a
path, identical uploads are stored once, and a file is verified when read so a
corrupted or tampered copy is never graded.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO

CHUNK = 1024 * 1024
_SHA = re.compile(r"^[0-9a-f]{64}$")


class StorageError(Exception):
    """The file is missing, too large or does not match its hash."""


class TooLarge(StorageError):
    pass


class Storage:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        if not _SHA.match(sha256):
            raise StorageError("not a sha256")
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes | BinaryIO, max_bytes: int | None = None) -> tuple[str, int]:
        """Store bytes or a stream; return (sha256, size). Raises TooLarge past max_bytes."""
        self.root.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(data, bytes | bytearray):
                    chunks = [bytes(data)]
                else:
                    chunks = iter(lambda: data.read(CHUNK), b"")
                for chunk in chunks:
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise TooLarge(f"larger than {max_bytes} bytes")
                    digest.update(chunk)
                    out.write(chunk)
            sha = digest.hexdigest()
            final = self.path(sha)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                os.unlink(tmp_name)
            else:
                os.chmod(tmp_name, 0o440)
                os.replace(tmp_name, final)
            return sha, size
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise

    def exists(self, sha256: str) -> bool:
        try:
            return self.path(sha256).is_file()
        except StorageError:
            return False

    def verify(self, sha256: str) -> Path:
        """Return the path after checking the content still hashes to its name."""
        path = self.path(sha256)
        if not path.is_file():
            raise StorageError(f"{sha256} is not stored")
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(CHUNK), b""):
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise StorageError(f"{sha256} is corrupted")
        return path

    def open(self, sha256: str) -> BinaryIO:
        """Open a verified file for reading."""
        return self.verify(sha256).open("rb")


def sniff_format(head: bytes) -> str:
    """Guess the Keras format from magic bytes (never from the browser's name)."""
    if head.startswith(b"PK\x03\x04"):
        return "keras"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "h5"
    return ""
