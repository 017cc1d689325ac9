"""Where evidence files (claim attachments) are kept: one small interface, two backends.

Files are content-addressed: the key is the SHA-256 of the bytes, so an upload retried or the same file
attached to two lines is stored once, and a stored file can be checked against its key. `DiskStorage`
writes atomically (temporary file in the same folder, fsync, rename); `S3Storage` talks to any
S3-compatible service (AWS, MinIO, Ceph) through boto3. Both are blocking libraries, so each call runs in
a worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request

from shared.settings import MonitoringSettings

_KEY_RE = re.compile(r"^[0-9a-f]{64}$")


class StorageError(Exception):
    pass


class Storage(Protocol):
    async def put(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes: ...

    async def exists(self, key: str) -> bool: ...


def content_key(data: bytes) -> str:
    """The key of a file: the hex SHA-256 of its bytes."""
    return hashlib.sha256(data).hexdigest()


def _checked(key: str) -> str:
    if not _KEY_RE.match(key):
        raise StorageError(f"invalid storage key {key!r}: expected a hex SHA-256")
    return key


class DiskStorage:
    """Files under `root/ab/cd/<sha256>`; a file is either complete or absent (rename is atomic)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        _checked(key)
        return self.root / key[:2] / key[2:4] / key

    def _put(self, key: str, data: bytes) -> None:
        if content_key(data) != key:
            raise StorageError("content does not match its key")
        path = self._path(key)
        if path.exists():  # same key, same bytes: nothing to do
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put, key, data)

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise StorageError(f"no file {key}") from None

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)


class S3Storage:
    """Objects `<prefix><sha256>` in one bucket of an S3-compatible service. `client` is a boto3 S3 client
    (injected in tests, e.g. with botocore's Stubber)."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    @classmethod
    def from_settings(cls, s: MonitoringSettings) -> S3Storage:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=s.s3_endpoint_url,
            region_name=s.s3_region,
            aws_access_key_id=s.s3_access_key_id,
            aws_secret_access_key=s.s3_secret_access_key.get_secret_value() if s.s3_secret_access_key else None,
        )
        return cls(client, s.s3_bucket, s.s3_prefix)

    def _key(self, key: str) -> str:
        return self.prefix + _checked(key)

    async def put(self, key: str, data: bytes) -> None:
        if content_key(data) != key:
            raise StorageError("content does not match its key")
        await asyncio.to_thread(
            self.client.put_object,
            Bucket=self.bucket,
            Key=self._key(key),
            Body=data,
            ContentType="application/octet-stream",
        )

    async def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            resp = await asyncio.to_thread(self.client.get_object, Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            raise StorageError(f"no object {key}: {exc}") from None
        body: bytes = await asyncio.to_thread(resp["Body"].read)
        return body

    async def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            await asyncio.to_thread(self.client.head_object, Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True


def storage_from_settings(s: MonitoringSettings) -> Storage:
    if s.storage_backend == "s3":
        return S3Storage.from_settings(s)
    return DiskStorage(s.storage_dir)


async def storage(request: Request) -> Storage:
    """The app's storage (`app.state.storage`, set by tests), else the one the settings name, made once."""
    found: Storage | None = getattr(request.app.state, "storage", None)
    if found is None:
        found = storage_from_settings(request.app.state.settings)
        request.app.state.storage = found
    return found


StorageDep = Annotated[Storage, Depends(storage)]
