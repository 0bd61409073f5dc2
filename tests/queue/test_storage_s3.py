"""The S3 storage backend against moto in server mode (a real HTTP S3 API on localhost).

MinIO, the compose file's object store, cannot run here; moto speaks the same S3
protocol through boto3, which is what the backend uses for both.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from grader.service.storage import S3Storage, StorageError, TooLarge, open_storage


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    moto_server = pytest.importorskip("moto.server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def store(endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> S3Storage:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    s = S3Storage("grader-test", endpoint_url=endpoint, cache_dir=tmp_path / "cache")
    s.ensure_bucket()
    return s


def test_put_fetch_verify(store: S3Storage, tmp_path: Path) -> None:
    data = b"PK\x03\x04" + b"x" * 5000
    sha, size = store.put(io.BytesIO(data), max_bytes=10_000)
    assert size == len(data) and store.exists(sha)
    assert store.put(data) == (sha, size)  # identical upload stored once
    assert store.head(sha, 4) == b"PK\x03\x04"
    assert store.fetch(sha, tmp_path / "m.keras").read_bytes() == data
    with store.open(sha) as fh:
        assert fh.read() == data
    with pytest.raises(TooLarge):
        store.put(io.BytesIO(data), max_bytes=100)
    assert not store.exists("0" * 64)
    with pytest.raises(StorageError):
        store.fetch("0" * 64, tmp_path / "missing")


def test_tampered_object_is_refused(store: S3Storage, tmp_path: Path) -> None:
    sha, _ = store.put(b"original bytes")
    store.client.put_object(Bucket=store.bucket, Key=store.key(sha), Body=b"tampered bytes")
    with pytest.raises(StorageError, match="corrupted"):
        store.fetch(sha, tmp_path / "x")
    with pytest.raises(StorageError, match="corrupted"):
        store.verify(sha)


def test_configuration_picks_the_backend(endpoint: str, tmp_path: Path) -> None:
    local = open_storage({"GRADER_SUBMISSIONS_DIR": str(tmp_path)})
    assert type(local).__name__ == "Storage"
    s3 = open_storage(
        {"GRADER_S3_BUCKET": "b", "GRADER_S3_ENDPOINT": endpoint, "GRADER_SUBMISSIONS_DIR": "x"}
    )
    assert isinstance(s3, S3Storage) and s3.bucket == "b"
