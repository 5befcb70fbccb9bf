"""Checkpoint images in S3: committed by the manifest, verified on the way back."""

import os
from pathlib import Path

import pytest

from agent.capsule import CapsuleStore, checkpoint_prefix
from chalicelib.wire.checkpoints import CheckpointManifest
from chalicelib.wire.failures import CheckpointCorrupt, CheckpointNotFound, CheckpointUploadFailed

PART = 4096


def _describe(job_id: str, path: Path):
    def describe(seq, parts, sha256, seconds):
        return CheckpointManifest(
            jobId=job_id, seq=seq, instanceId="i-0abc", image="localhost/x:1",
            createTime="2026-11-25T10:00:00Z", reason="test", archiveSize=path.stat().st_size,
            archiveSha256=sha256, parts=parts, checkpointSeconds=0.5, uploadSeconds=seconds)
    return describe


def _archive(tmp_path: Path, name: str, size: int) -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


class FailingS3:
    """An S3 client whose put_object fails after `allowed` calls, like a dying instance."""

    def __init__(self, s3, allowed: int) -> None:
        self._s3, self.allowed, self.keys = s3, allowed, []

    def put_object(self, **kwargs):
        if len(self.keys) >= self.allowed:
            raise OSError("connection reset while uploading")
        self.keys.append(kwargs["Key"])
        return self._s3.put_object(**kwargs)

    def __getattr__(self, name):
        return getattr(self._s3, name)


@pytest.fixture
def bucket(runtime):
    return runtime.config.data_bucket


def test_an_image_goes_up_in_parts_and_comes_back_identical(runtime, bucket, tmp_path):
    store = CapsuleStore(runtime.s3, bucket, part_size=PART)
    archive = _archive(tmp_path, "c.tar.zst", PART * 5 + 123)
    manifest = store.upload(archive, _describe("job1", archive), "job1")
    assert manifest.seq == 1 and len(manifest.parts) == 6
    assert store.latest("job1") == manifest
    restored = tmp_path / "restored"
    store.download(store.require_latest("job1"), restored)
    assert restored.read_bytes() == archive.read_bytes()


def test_the_manifest_is_written_after_every_part(runtime, bucket, tmp_path):
    recording = FailingS3(runtime.s3, allowed=100)
    store = CapsuleStore(recording, bucket, part_size=PART, workers=1)
    archive = _archive(tmp_path, "c", PART * 3)
    store.upload(archive, _describe("job1", archive), "job1")
    assert recording.keys[-1].endswith("/manifest.json")
    assert all("/part-" in key for key in recording.keys[:-1]) and len(recording.keys) == 4


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_a_damaged_part_is_refused_by_checksum(runtime, bucket, tmp_path, damage):
    store = CapsuleStore(runtime.s3, bucket, part_size=PART)
    archive = _archive(tmp_path, "c", PART * 3)
    manifest = store.upload(archive, _describe("job1", archive), "job1")
    key = manifest.parts[1].key
    body = bytearray(runtime.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    if damage == "flip":
        body[100] ^= 0xFF
        runtime.s3.put_object(Bucket=bucket, Key=key, Body=bytes(body))
    elif damage == "truncate":
        runtime.s3.put_object(Bucket=bucket, Key=key, Body=bytes(body[:-1]))
    else:
        runtime.s3.delete_object(Bucket=bucket, Key=key)
    destination = tmp_path / "restored"
    with pytest.raises(CheckpointCorrupt, match="part 1"):
        store.download(manifest, destination)


def test_a_manifest_that_lies_about_the_whole_image_is_refused(runtime, bucket, tmp_path):
    store = CapsuleStore(runtime.s3, bucket, part_size=PART)
    archive = _archive(tmp_path, "c", PART * 2)
    manifest = store.upload(archive, _describe("job1", archive), "job1")
    lying = manifest.model_copy(update={"parts": manifest.parts[:1]})
    with pytest.raises(CheckpointCorrupt, match="does not match its manifest"):
        store.download(lying, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()


def test_an_interrupted_upload_leaves_the_previous_checkpoint_restorable(runtime, bucket, tmp_path):
    good = CapsuleStore(runtime.s3, bucket, part_size=PART)
    first = _archive(tmp_path, "first", PART * 3)
    committed = good.upload(first, _describe("job1", first), "job1")
    dying = CapsuleStore(FailingS3(runtime.s3, allowed=2), bucket, part_size=PART, workers=1)
    second = _archive(tmp_path, "second", PART * 4)
    with pytest.raises(CheckpointUploadFailed, match="checkpoint 2 of job job1"):
        dying.upload(second, _describe("job1", second), "job1")
    assert good.latest("job1") == committed
    restored = tmp_path / "restored"
    good.download(good.require_latest("job1"), restored)
    assert restored.read_bytes() == first.read_bytes()
    # The next attempt does not reuse the half-written prefix.
    third = good.upload(second, _describe("job1", second), "job1")
    assert third.seq == 3 and good.latest("job1") == third


def test_pruning_keeps_the_newest_commit_and_drops_older_and_broken_ones(runtime, bucket, tmp_path):
    store = CapsuleStore(runtime.s3, bucket, part_size=PART)
    archive = _archive(tmp_path, "c", PART)
    store.upload(archive, _describe("job1", archive), "job1")
    runtime.s3.put_object(Bucket=bucket, Key=checkpoint_prefix("job1", 2) + "part-00000", Body=b"x")
    newest = store.upload(archive, _describe("job1", archive), "job1")
    assert store.prune("job1", keep=newest) == 2
    listed = runtime.s3.list_objects_v2(Bucket=bucket, Prefix="checkpoints/job1/")["Contents"]
    assert {obj["Key"].split("/")[2] for obj in listed} == {f"{newest.seq:08d}"}


def test_a_job_without_a_commit_has_no_checkpoint(runtime, bucket, tmp_path):
    store = CapsuleStore(runtime.s3, bucket, part_size=PART)
    runtime.s3.put_object(Bucket=bucket, Key=checkpoint_prefix("job9", 1) + "part-00000", Body=b"x")
    assert store.latest("job9") is None
    with pytest.raises(CheckpointNotFound, match="job9"):
        store.require_latest("job9")
