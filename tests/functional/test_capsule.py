"""Checkpoint images in S3: stored part by part while they are written, committed by the
manifest, verified on the way back."""

import hashlib
import io
import os
import time
import zlib
from pathlib import Path

import pytest

from agent.capsule import CapsuleStore, checkpoint_prefix
from agent.pipes import written_by
from chalicelib.wire.checkpoints import CheckpointManifest
from chalicelib.wire.failures import (
    CheckpointCorrupt,
    CheckpointFailed,
    CheckpointNotFound,
    CheckpointUploadFailed,
)

PART = 64 * 1024


def _describe(job_id: str):
    def describe(seq, parts, size):
        return CheckpointManifest(
            jobId=job_id, seq=seq, instanceId="i-0abc", image="localhost/x:1",
            createTime="2026-11-25T10:00:00Z", reason="test", archiveSize=size,
            parts=parts, checkpointSeconds=0.5, uploadSeconds=0.5)
    return describe


def _upload(store: CapsuleStore, data: bytes, job_id: str = "job1") -> CheckpointManifest:
    return store.upload(io.BytesIO(data), _describe(job_id), job_id)


def _image(random_bytes: int, compressible_bytes: int = 0) -> bytes:
    """Bytes like a dump: incompressible memory, then memory that compresses well."""
    text = b"".join(b"read %08d ACGTTGCAAGGCTTAC quality 40\n" % n
                    for n in range(compressible_bytes // 40 + 1))[:compressible_bytes]
    return os.urandom(random_bytes) + text


class RecordingS3:
    """An S3 client that fails put_object after `allowed` calls, like a dying instance, or
    changes the bytes of the first `corrupt` parts on their way, like a bad link."""

    def __init__(self, s3, allowed: int = 10_000, corrupt: int = 0) -> None:
        self._s3, self.allowed, self.corrupt, self.keys = s3, allowed, corrupt, []

    def put_object(self, **kwargs):
        if len(self.keys) >= self.allowed:
            raise OSError("connection reset while uploading")
        self.keys.append(kwargs["Key"])
        if self.corrupt and "/part-" in kwargs["Key"]:
            self.corrupt -= 1
            body = bytearray(kwargs["Body"])
            body[len(body) // 2] ^= 0x01
            kwargs = {**kwargs, "Body": bytes(body)}
        return self._s3.put_object(**kwargs)

    def __getattr__(self, name):
        return getattr(self._s3, name)


@pytest.fixture
def bucket(runtime):
    return runtime.config.data_bucket


def test_an_image_goes_up_in_parts_and_comes_back_identical(runtime, bucket, tmp_path):
    store = CapsuleStore(runtime.s3, bucket, part_size=PART)
    data = _image(PART * 5 + 123)
    manifest = _upload(store, data)
    assert manifest.seq == 1 and len(manifest.parts) == 6
    assert manifest.formatVersion == 2 and manifest.archiveSize == len(data)
    assert store.latest("job1") == manifest
    restored = tmp_path / "restored"
    store.download(store.require_latest("job1"), restored)
    assert restored.read_bytes() == data


class SlowLink(RecordingS3):
    """An S3 reached at `rate` bytes a second, as from an instance, not from this process."""

    def __init__(self, s3, rate: float) -> None:
        super().__init__(s3)
        self.rate = rate

    def put_object(self, **kwargs):
        time.sleep(len(kwargs["Body"]) / self.rate)
        return super().put_object(**kwargs)


def test_each_part_is_compressed_only_where_that_pays(runtime, bucket, tmp_path):
    # At 50 MB/s, shrinking a part that compresses well is quicker than sending it whole.
    store = CapsuleStore(SlowLink(runtime.s3, 50e6), bucket, part_size=PART)
    data = _image(PART * 3, PART * 3)
    manifest = _upload(store, data)
    random_parts, text_parts = manifest.parts[:3], manifest.parts[3:]
    # Random memory is stored as it is: compressing it would only spend the notice.
    assert {p.compression for p in random_parts} == {"none"}
    assert all(p.size == p.rawSize == PART for p in random_parts)
    assert all(p.compression != "none" and p.size < p.rawSize / 4 for p in text_parts)
    restored = tmp_path / "restored"
    store.download(manifest, restored)
    assert restored.read_bytes() == data


def test_an_image_is_stored_while_its_writer_is_still_writing(runtime, bucket, tmp_path):
    """Through a named pipe, as podman writes a checkpoint: parts go up before the writer
    ends, and a writer that fails leaves no commit."""
    store = CapsuleStore(runtime.s3, bucket, part_size=PART)
    data = _image(PART * 4, PART * 2)
    seen_while_writing: list[int] = []

    def write(pipe: Path) -> str:
        with pipe.open("wb") as out:
            for start in range(0, len(data), PART):
                out.write(data[start:start + PART])
                out.flush()
            # Before the writer ends, parts are already in the bucket.
            seen_while_writing.append(len(runtime.s3.list_objects_v2(
                Bucket=bucket, Prefix=checkpoint_prefix("job1", 1)).get("Contents", [])))
        return "written"

    with written_by(tmp_path / "dump", write) as (stream, writer):
        manifest = store.upload(stream, _describe("job1"), "job1")
        assert writer.result() == "written"
    assert seen_while_writing[0] >= 1
    restored = tmp_path / "restored"
    store.download(manifest, restored)
    assert restored.read_bytes() == data

    def fail(pipe: Path) -> None:
        raise CheckpointFailed("podman container checkpoint failed (exit 125): no such container")

    def describe_after_writer(seq, parts, size):
        failing.result()  # a commit needs the writer's success
        return _describe("job1")(seq, parts, size)

    with written_by(tmp_path / "dump", fail) as (stream, failing), \
            pytest.raises(CheckpointFailed, match="no such container"):
        store.upload(stream, describe_after_writer, "job1")
    assert store.latest("job1") == manifest
    assert not (tmp_path / "dump").exists()


def test_a_part_changed_on_its_way_is_refused_by_the_store_and_sent_again(runtime, bucket,
                                                                         tmp_path):
    flaky = RecordingS3(runtime.s3, corrupt=1)
    store = CapsuleStore(flaky, bucket, part_size=PART, workers=1)
    data = _image(PART * 2)
    manifest = _upload(store, data)
    # The first part was sent twice: refused once for its checksum, then stored whole.
    assert flaky.keys[:2] == [manifest.parts[0].key] * 2
    restored = tmp_path / "restored"
    store.download(manifest, restored)
    assert restored.read_bytes() == data


def test_a_part_changed_on_every_try_fails_the_upload(runtime, bucket):
    store = CapsuleStore(RecordingS3(runtime.s3, corrupt=2), bucket, part_size=PART, workers=1)
    with pytest.raises(CheckpointUploadFailed, match="BadDigest"):
        _upload(store, _image(PART))
    assert store.latest("job1") is None


def test_the_manifest_is_written_after_every_part(runtime, bucket):
    recording = RecordingS3(runtime.s3)
    store = CapsuleStore(recording, bucket, part_size=PART, workers=1)
    _upload(store, _image(PART * 3))
    assert recording.keys[-1].endswith("/manifest.json")
    # An image of exactly three parts has three.
    assert all("/part-" in key for key in recording.keys[:-1]) and len(recording.keys) == 4


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "undecompressable"])
def test_a_damaged_part_is_refused_by_checksum(runtime, bucket, tmp_path, damage):
    store = CapsuleStore(runtime.s3, bucket, part_size=PART)
    manifest = _upload(store, _image(0, PART * 3))
    key = manifest.parts[1].key
    body = bytearray(runtime.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    if damage == "flip":
        body[len(body) // 2] ^= 0xFF
        runtime.s3.put_object(Bucket=bucket, Key=key, Body=bytes(body))
    elif damage == "truncate":
        runtime.s3.put_object(Bucket=bucket, Key=key, Body=bytes(body[:-1]))
    elif damage == "delete":
        runtime.s3.delete_object(Bucket=bucket, Key=key)
    else:  # a manifest whose checksum covers bytes that are not what it says they are
        junk = zlib.compress(b"not this codec")
        runtime.s3.put_object(Bucket=bucket, Key=key, Body=junk)
        parts = list(manifest.parts)
        parts[1] = parts[1].model_copy(update={"size": len(junk),
                                               "sha256": hashlib.sha256(junk).hexdigest()})
        manifest = manifest.model_copy(update={"parts": parts})
    destination = tmp_path / "restored"
    with pytest.raises(CheckpointCorrupt, match="part 1"):
        store.download(manifest, destination)
    assert not destination.exists()


def test_a_manifest_that_lies_about_the_whole_image_is_refused(runtime, bucket, tmp_path):
    store = CapsuleStore(runtime.s3, bucket, part_size=PART)
    manifest = _upload(store, _image(PART * 2))
    lying = manifest.model_copy(update={"parts": manifest.parts[:1]})
    with pytest.raises(CheckpointCorrupt, match="its manifest says the image is"):
        store.download(lying, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()


def test_an_interrupted_upload_leaves_the_previous_checkpoint_restorable(runtime, bucket, tmp_path):
    good = CapsuleStore(runtime.s3, bucket, part_size=PART)
    first = _image(PART * 3)
    committed = _upload(good, first)
    dying = CapsuleStore(RecordingS3(runtime.s3, allowed=2), bucket, part_size=PART, workers=1)
    second = _image(PART * 4)
    with pytest.raises(CheckpointUploadFailed, match="checkpoint 2 of job job1"):
        _upload(dying, second)
    assert good.latest("job1") == committed
    restored = tmp_path / "restored"
    good.download(good.require_latest("job1"), restored)
    assert restored.read_bytes() == first
    # The next attempt does not reuse the half-written prefix.
    third = _upload(good, second)
    assert third.seq == 3 and good.latest("job1") == third


def test_a_checkpoint_of_the_earlier_format_is_still_restored(runtime, bucket, tmp_path):
    """Written by an agent of before: plain slices of one archive and its whole checksum."""
    data = _image(PART + 10)
    prefix = checkpoint_prefix("job1", 1)
    parts = []
    for index, start in enumerate(range(0, len(data), PART)):
        body = data[start:start + PART]
        runtime.s3.put_object(Bucket=bucket, Key=f"{prefix}part-{index:05d}", Body=body)
        parts.append({"index": index, "key": f"{prefix}part-{index:05d}", "size": len(body),
                      "sha256": hashlib.sha256(body).hexdigest()})
    old = {"formatVersion": 1, "jobId": "job1", "seq": 1, "instanceId": "i-0abc",
           "image": "localhost/x:1", "createTime": "2026-11-25T10:00:00Z", "reason": "test",
           "compression": "zstd", "archiveSize": len(data),
           "archiveSha256": hashlib.sha256(data).hexdigest(), "parts": parts,
           "checkpointSeconds": 0.5, "uploadSeconds": 0.5}
    runtime.s3.put_object(Bucket=bucket, Key=prefix + "manifest.json",
                          Body=CheckpointManifest.model_validate(old).model_dump_json().encode())
    store = CapsuleStore(runtime.s3, bucket, part_size=PART)
    restored = tmp_path / "restored"
    store.download(store.require_latest("job1"), restored)
    assert restored.read_bytes() == data


def test_pruning_keeps_the_newest_commit_and_drops_older_and_broken_ones(runtime, bucket):
    store = CapsuleStore(runtime.s3, bucket, part_size=PART)
    data = _image(PART)
    _upload(store, data)
    runtime.s3.put_object(Bucket=bucket, Key=checkpoint_prefix("job1", 2) + "part-00000", Body=b"x")
    newest = _upload(store, data)
    assert store.prune("job1", keep=newest) == 2
    listed = runtime.s3.list_objects_v2(Bucket=bucket, Prefix="checkpoints/job1/")["Contents"]
    assert {obj["Key"].split("/")[2] for obj in listed} == {f"{newest.seq:08d}"}


def test_a_job_without_a_commit_has_no_checkpoint(runtime, bucket):
    store = CapsuleStore(runtime.s3, bucket, part_size=PART)
    runtime.s3.put_object(Bucket=bucket, Key=checkpoint_prefix("job9", 1) + "part-00000", Body=b"x")
    assert store.latest("job9") is None
    with pytest.raises(CheckpointNotFound, match="job9"):
        store.require_latest("job9")
