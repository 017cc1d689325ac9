"""Evidence storage: the disk backend writes atomically under the content's SHA-256; the S3 backend sends the
right calls (botocore's Stubber: no network)."""

from __future__ import annotations

import io
from pathlib import Path

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from services.monitoring.storage import DiskStorage, S3Storage, StorageError, content_key, storage_from_settings
from shared.settings import MonitoringSettings

DATA = b"%PDF-1.4 evidence"
KEY = content_key(DATA)


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


async def test_disk_storage_round_trip_is_content_addressed_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    s = DiskStorage(tmp_path)
    assert not await s.exists(KEY)
    await s.put(KEY, DATA)
    await s.put(KEY, DATA)  # the same file again: nothing to do
    assert await s.exists(KEY)
    assert await s.get(KEY) == DATA
    assert [p.relative_to(tmp_path).as_posix() for p in _files(tmp_path)] == [f"{KEY[:2]}/{KEY[2:4]}/{KEY}"]


async def test_disk_storage_refuses_a_key_that_is_not_the_content_or_not_a_hash(tmp_path: Path) -> None:
    s = DiskStorage(tmp_path)
    with pytest.raises(StorageError):
        await s.put(content_key(b"other"), DATA)
    with pytest.raises(StorageError):
        await s.get("../../etc/passwd")
    with pytest.raises(StorageError):
        await s.get(KEY)  # absent
    assert _files(tmp_path) == []


def _stubbed() -> tuple[S3Storage, Stubber]:
    client = boto3.client(
        "s3",
        region_name="eu-south-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    return S3Storage(client, "desk-evidence", "evidence/"), Stubber(client)


async def test_s3_storage_puts_heads_and_gets_under_the_prefix() -> None:
    s, stub = _stubbed()
    key = {"Bucket": "desk-evidence", "Key": f"evidence/{KEY}"}
    stub.add_response("put_object", {}, {**key, "Body": DATA, "ContentType": "application/octet-stream"})
    stub.add_response("head_object", {"ContentLength": len(DATA)}, key)
    stub.add_response("get_object", {"Body": StreamingBody(io.BytesIO(DATA), len(DATA))}, key)
    stub.add_client_error("head_object", service_error_code="404", http_status_code=404, expected_params=key)
    with stub:
        await s.put(KEY, DATA)
        assert await s.exists(KEY)
        assert await s.get(KEY) == DATA
        assert not await s.exists(KEY)
    stub.assert_no_pending_responses()


async def test_s3_storage_reports_a_missing_object() -> None:
    s, stub = _stubbed()
    stub.add_client_error("get_object", service_error_code="NoSuchKey", http_status_code=404)
    with stub, pytest.raises(StorageError):
        await s.get(KEY)


def test_the_backend_follows_the_settings(tmp_path: Path) -> None:
    disk = storage_from_settings(MonitoringSettings(storage_dir=tmp_path))
    assert isinstance(disk, DiskStorage) and disk.root == tmp_path
    s3 = storage_from_settings(MonitoringSettings(storage_backend="s3", s3_bucket="b", s3_endpoint_url="http://x:9"))
    assert isinstance(s3, S3Storage) and s3.bucket == "b"
