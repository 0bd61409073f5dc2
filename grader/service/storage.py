"""Content-addressed storage for uploaded model files.

Files are named by their sha256 only: the browser's file name never reaches a
path, identical uploads are stored once, and a file is verified when read so a
corrupted or tampered copy is never graded.

Two backends with one interface: :class:`Storage`, a local folder (the default,
enough for one machine or a shared mount), and :class:`S3Storage`, an
S3-compatible object store (MinIO, AWS) that workers on other machines reach
over the network. :func:`open_storage` picks one from the configuration.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from grader.settings import Settings, get_settings

CHUNK = 1024 * 1024
_SHA = re.compile(r"^[0-9a-f]{64}$")


class StorageError(Exception):
    """The file is missing, too large or does not match its hash."""


class TooLarge(StorageError):
    pass


class Empty(StorageError):
    """A 0-byte upload: never stored."""


class Unavailable(StorageError):
    """The store cannot be written (a full disk, a read-only or missing folder)."""


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_sha(sha256: str) -> str:
    if not _SHA.match(sha256 or ""):
        raise StorageError("not a sha256")
    return sha256


def _spool(data: bytes | BinaryIO, directory: Path, max_bytes: int | None) -> tuple[str, int, str]:
    """Write ``data`` to a temporary file in ``directory``; return (sha256, size, temp name).
    Nothing is left behind when it is empty, too large or cannot be written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=".upload-")
    except OSError as exc:
        raise Unavailable(f"the file store cannot be written ({exc.strerror})") from exc
    digest = hashlib.sha256()
    size = 0
    with _or_discard(tmp_name), os.fdopen(fd, "wb") as out:
        if isinstance(data, bytes | bytearray):
            chunks: Any = [bytes(data)]
        else:
            chunks = iter(lambda: data.read(CHUNK), b"")
        for chunk in chunks:
            size += len(chunk)
            if max_bytes is not None and size > max_bytes:
                raise TooLarge(f"larger than {max_bytes} bytes")
            digest.update(chunk)
            out.write(chunk)
        if size == 0:
            raise Empty("the file is empty")
    return digest.hexdigest(), size, tmp_name


@contextmanager
def _or_discard(tmp_name: str) -> Iterator[None]:
    """Nothing half-stored: the temporary file goes if anything fails, and an OSError
    means the store cannot be written."""
    try:
        yield
    except BaseException as exc:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        if isinstance(exc, OSError):
            raise Unavailable(f"the file store cannot be written ({exc.strerror})") from exc
        raise


class Storage:
    """Local folder backend: ``<root>/<sha[:2]>/<sha>``, files read-only once stored."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        sha = _check_sha(sha256)
        return self.root / sha[:2] / sha

    def put(self, data: bytes | BinaryIO, max_bytes: int | None = None) -> tuple[str, int]:
        """Store bytes or a stream; return (sha256, size). Raises TooLarge past max_bytes."""
        sha, size, tmp_name = _spool(data, self.root, max_bytes)
        with _or_discard(tmp_name):
            final = self.path(sha)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                os.unlink(tmp_name)
            else:
                os.chmod(tmp_name, 0o440)
                os.replace(tmp_name, final)
            return sha, size

    def delete(self, sha256: str) -> None:
        """Remove a stored file (an upload whose row could not be made)."""
        path = self.path(sha256)
        if path.is_file():
            path.unlink()

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
        if _hash_file(path) != sha256:
            raise StorageError(f"{sha256} is corrupted")
        return path

    def open(self, sha256: str) -> BinaryIO:
        """Open a verified file for reading."""
        return self.verify(sha256).open("rb")

    def head(self, sha256: str, n: int = 8) -> bytes:
        """The first ``n`` bytes (format sniffing), unverified."""
        with self.path(sha256).open("rb") as fh:
            return fh.read(n)

    def fetch(self, sha256: str, dest: Path) -> Path:
        """Copy the file to ``dest`` and verify the copy (what is graded is what was checked)."""
        src = self.path(sha256)
        if not src.is_file():
            raise StorageError(f"{sha256} is not stored")
        shutil.copyfile(src, dest)
        if _hash_file(dest) != sha256:
            raise StorageError(f"{sha256} is corrupted")
        return dest


class S3Storage:
    """S3-compatible object store (MinIO, AWS S3): objects ``<prefix><sha[:2]>/<sha>``.

    Uploads are spooled locally first (hash and size limit), then sent once; reads
    download to a local cache and are verified there, so a worker on any machine
    grades exactly the bytes the student uploaded.
    """

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        prefix: str = "submissions/",
        cache_dir: Path | str | None = None,
        client: Any = None,
        region: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.cache = Path(cache_dir or Path(tempfile.gettempdir()) / "grader-s3-cache")
        if client is None:
            import boto3

            client = boto3.client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            )
        self.client = client

    def key(self, sha256: str) -> str:
        sha = _check_sha(sha256)
        return f"{self.prefix}{sha[:2]}/{sha}"

    def ensure_bucket(self) -> None:
        """Create the bucket if it is missing (first start of a fresh MinIO)."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.client.create_bucket(Bucket=self.bucket)

    def put(self, data: bytes | BinaryIO, max_bytes: int | None = None) -> tuple[str, int]:
        """Store bytes or a stream; return (sha256, size). Raises TooLarge past max_bytes."""
        sha, size, tmp_name = _spool(data, self.cache, max_bytes)
        try:
            if not self.exists(sha):
                self.client.upload_file(
                    tmp_name, self.bucket, self.key(sha), ExtraArgs={"Metadata": {"sha256": sha}}
                )
            return sha, size
        except TooLarge:
            raise
        except Exception as exc:
            raise Unavailable(f"object store unavailable: {type(exc).__name__}") from exc
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)

    def delete(self, sha256: str) -> None:
        """Remove a stored object (an upload whose row could not be made)."""
        self.client.delete_object(Bucket=self.bucket, Key=self.key(sha256))

    def exists(self, sha256: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))
            return True
        except (ClientError, StorageError):
            return False

    def fetch(self, sha256: str, dest: Path) -> Path:
        """Download to ``dest`` and verify the downloaded bytes against the name."""
        from botocore.exceptions import ClientError

        try:
            self.client.download_file(self.bucket, self.key(sha256), str(dest))
        except ClientError as exc:
            raise StorageError(f"{sha256} is not stored") from exc
        if _hash_file(dest) != sha256:
            dest.unlink(missing_ok=True)
            raise StorageError(f"{sha256} is corrupted")
        return dest

    def verify(self, sha256: str) -> Path:
        """A verified local copy (cached by hash; re-verified on every call)."""
        self.cache.mkdir(parents=True, exist_ok=True)
        local = self.cache / _check_sha(sha256)
        if local.is_file() and _hash_file(local) == sha256:
            return local
        fd, tmp = tempfile.mkstemp(dir=self.cache, prefix=".get-")
        os.close(fd)
        try:
            self.fetch(sha256, Path(tmp))
            os.replace(tmp, local)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return local

    def open(self, sha256: str) -> BinaryIO:
        """Open a verified local copy for reading."""
        return self.verify(sha256).open("rb")

    def head(self, sha256: str, n: int = 8) -> bytes:
        """The first ``n`` bytes (format sniffing), unverified."""
        obj = self.client.get_object(
            Bucket=self.bucket, Key=self.key(sha256), Range=f"bytes=0-{max(0, n - 1)}"
        )
        return obj["Body"].read()


def open_storage(
    config: Mapping[str, Any], settings: Settings | None = None
) -> Storage | S3Storage:
    """The configured backend: S3 when ``GRADER_S3_BUCKET`` is set (app config or
    settings), else the local ``GRADER_SUBMISSIONS_DIR`` folder."""
    settings = settings or get_settings()

    def get(name: str) -> Any:
        return config.get(name) or getattr(settings, name.removeprefix("GRADER_").lower())

    bucket = get("GRADER_S3_BUCKET")
    if bucket:
        return S3Storage(
            bucket,
            endpoint_url=get("GRADER_S3_ENDPOINT"),
            prefix=get("GRADER_S3_PREFIX") or "submissions/",
            cache_dir=get("GRADER_S3_CACHE_DIR"),
        )
    return Storage(config["GRADER_SUBMISSIONS_DIR"])
