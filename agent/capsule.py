"""AppCapsule storage: checkpoint images in S3, committed by a manifest written last.

Layout: `checkpoints/{job}/{seq:08d}/part-{n:05d}` and `.../manifest.json`. Each checkpoint
gets a fresh sequence number, so an upload that dies half-way leaves parts without a manifest
and never touches the last committed checkpoint; the newest manifest of a dump is the one to
restore (with the pre-dump it names, if it names one).

An image goes up while it is being written: it is read from a stream (podman writes the archive
into a pipe) a part at a time, and each part is compressed if that pays (agent.compression),
checksummed and stored by a pool of uploaders as soon as it is read, with its SHA-256 sent along
so that S3 refuses bytes that changed on the way. Nothing touches local disk and nothing is read
twice. A restore fetches the parts in parallel and writes each, verified and decompressed, at
its place in the file podman imports.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from agent.compression import Throughput, choose, codec_named
from chalicelib.wire.checkpoints import MANIFEST_NAME, CheckpointManifest, CheckpointPart
from chalicelib.wire.failures import CheckpointCorrupt, CheckpointNotFound, CheckpointUploadFailed

DEFAULT_PART_SIZE = 16 * 1024 * 1024
# A first guess at the rate parts reach S3, until the first one has.
_RATE_GUESS = 200e6
_READ_CHUNK = 1024 * 1024

# Builds the manifest once every part is stored: (seq, parts, archive bytes).
Describe = Callable[[int, list[CheckpointPart], int], CheckpointManifest]


def job_prefix(job_id: str) -> str:
    return f"checkpoints/{job_id}/"


def checkpoint_prefix(job_id: str, seq: int) -> str:
    return f"{job_prefix(job_id)}{seq:08d}/"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _read_part(stream: BinaryIO, size: int) -> bytes:
    """Up to `size` bytes: less only at the end of the stream (a pipe gives what it has)."""
    chunks, wanted = [], size
    while wanted > 0:
        chunk = stream.read(wanted)
        if not chunk:
            break
        chunks.append(chunk)
        wanted -= len(chunk)
    return b"".join(chunks)


def _drain(stream: BinaryIO) -> None:
    while stream.read(_READ_CHUNK):
        pass


class CapsuleStore:
    """Upload, find, download and prune the checkpoints of jobs in one bucket."""

    def __init__(self, s3: Any, bucket: str, part_size: int = DEFAULT_PART_SIZE,
                 workers: int = 4) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._part_size = part_size
        self._workers = workers
        self._cores = os.cpu_count() or 1

    # ---- writing ---------------------------------------------------------------------------

    def next_seq(self, job_id: str) -> int:
        """One past every sequence number used so far, committed or not."""
        used = self._sequences(job_id)
        return max(used, default=0) + 1

    def upload(self, stream: BinaryIO, describe: Describe, job_id: str,
               abandon: threading.Event | None = None) -> CheckpointManifest:
        """Store the image read from `stream` as the job's next checkpoint and commit it.

        Parts are stored while the stream is still being read. `describe` builds the manifest
        once every part is stored (raising there stops the commit); the manifest is written
        only after every part succeeded; once `abandon` is set, no further part is stored and
        nothing is committed. The stream is read to its end whatever happens, so a process
        writing it is never left blocked.
        """
        seq = self.next_seq(job_id)
        prefix = checkpoint_prefix(job_id, seq)
        rate = Throughput(_RATE_GUESS)
        # Parts read but not yet stored are held in memory: at most one per uploader, and the
        # one being read.
        room = threading.BoundedSemaphore(self._workers)
        size, abandoned = 0, False
        futures: list[Future[CheckpointPart]] = []
        with ThreadPoolExecutor(max_workers=self._workers) as pool:
            try:
                while True:
                    room.acquire()
                    abandoned = abandon is not None and abandon.is_set()
                    if abandoned or any(f.done() and f.exception() for f in futures):
                        room.release()
                        break  # another checkpoint is wanted, or a part failed: drain the rest
                    body = _read_part(stream, self._part_size)
                    if not body and futures:
                        room.release()
                        break
                    future = pool.submit(self._put_part, prefix, len(futures), body, rate)
                    future.add_done_callback(lambda _: room.release())
                    futures.append(future)
                    size += len(body)
                    if len(body) < self._part_size:
                        break
            finally:
                _drain(stream)
            failure = next((f.exception() for f in futures if f.exception()), None)
        if failure is not None:
            raise CheckpointUploadFailed(
                f"checkpoint {seq} of job {job_id} was not stored: {failure}") from None
        if abandoned:
            raise CheckpointUploadFailed(f"checkpoint {seq} of job {job_id} was abandoned for "
                                         "one that stops the job")
        parts = [f.result() for f in futures]
        manifest = describe(seq, parts, size)
        try:
            self._s3.put_object(
                Bucket=self._bucket, Key=prefix + MANIFEST_NAME,
                Body=manifest.model_dump_json(indent=2).encode(), ContentType="application/json",
            )
        except (BotoCoreError, ClientError) as error:
            raise CheckpointUploadFailed(
                f"checkpoint {seq} of job {job_id} was not committed: {error}") from None
        return manifest

    def _put_part(self, prefix: str, index: int, raw: bytes, rate: Throughput) -> CheckpointPart:
        codec = choose(raw, rate.rate(), self._cores)
        body = codec.compress(raw)
        digest = hashlib.sha256(body).digest()
        key = f"{prefix}part-{index:05d}"
        rate.started()
        try:
            # S3 checks the bytes it received against the checksum: one changed on the way is
            # refused (BadDigest) and sent again from memory, once.
            for attempt in (1, 2):
                try:
                    self._s3.put_object(Bucket=self._bucket, Key=key, Body=body,
                                        ChecksumSHA256=base64.b64encode(digest).decode())
                    break
                except ClientError as error:
                    if attempt == 2 or error.response.get("Error", {}).get("Code") != "BadDigest":
                        raise
        except (BotoCoreError, ClientError, OSError) as error:
            raise CheckpointUploadFailed(f"part {index}: {error}") from None
        finally:
            rate.finished(len(body))
        return CheckpointPart(index=index, key=key, size=len(body), sha256=digest.hex(),
                              rawSize=len(raw), compression=codec.name)

    # ---- reading ---------------------------------------------------------------------------

    def latest(self, job_id: str) -> CheckpointManifest | None:
        """The newest committed checkpoint of the job that can be restored, or None: a
        pre-dump is not one, nor a dump whose pre-dump is gone."""
        for seq in sorted(self._sequences(job_id), reverse=True):
            manifest = self.manifest(job_id, seq)
            if manifest is None or manifest.kind != "dump":
                continue  # an upload that never committed, or a pre-dump
            if manifest.previousSeq is not None and self.previous(manifest) is None:
                continue
            return manifest
        return None

    def manifest(self, job_id: str, seq: int) -> CheckpointManifest | None:
        """Checkpoint `seq` of the job if it was committed, else None."""
        key = checkpoint_prefix(job_id, seq) + MANIFEST_NAME
        try:
            body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except self._s3.exceptions.NoSuchKey:
            return None
        try:
            found = CheckpointManifest.model_validate_json(body)
        except ValidationError:
            return None  # a manifest we cannot trust is no commit
        return found if found.jobId == job_id and found.seq == seq else None

    def previous(self, manifest: CheckpointManifest) -> CheckpointManifest | None:
        """The committed pre-dump a dump names, or None (for a whole dump, or one missing)."""
        if manifest.previousSeq is None:
            return None
        found = self.manifest(manifest.jobId, manifest.previousSeq)
        return found if found is not None and found.kind == "pre-dump" else None

    def require_latest(self, job_id: str) -> CheckpointManifest:
        manifest = self.latest(job_id)
        if manifest is None:
            raise CheckpointNotFound(f"job {job_id} has no committed checkpoint")
        return manifest

    def download(self, manifest: CheckpointManifest, destination: Path) -> None:
        """Fetch every part into `destination` in parallel, each verified, decompressed and
        written at its place in the image; refuse any byte that does not match."""
        parts = sorted(manifest.parts, key=lambda p: p.index)
        if [p.index for p in parts] != list(range(len(parts))):
            raise CheckpointCorrupt(f"checkpoint {manifest.seq} of job {manifest.jobId} "
                                    "has a gap in its parts")
        offsets, total = [], 0
        for part in parts:
            offsets.append(total)
            total += part.size if part.rawSize is None else part.rawSize
        if total != manifest.archiveSize:
            raise CheckpointCorrupt(
                f"checkpoint {manifest.seq} of job {manifest.jobId}: its parts hold {total} "
                f"bytes, its manifest says the image is {manifest.archiveSize}")
        try:
            with destination.open("wb") as out:
                out.truncate(total)
                with ThreadPoolExecutor(max_workers=self._workers) as pool:
                    list(pool.map(lambda item: os.pwrite(
                        out.fileno(), self._get_part(manifest, item[0]), item[1]),
                        zip(parts, offsets, strict=True)))
            if manifest.archiveSha256 is not None and sha256_of(destination) != manifest.archiveSha256:
                raise CheckpointCorrupt(f"checkpoint {manifest.seq} of job {manifest.jobId}: the "
                                        "reassembled image does not match its manifest")
        except BaseException:
            destination.unlink(missing_ok=True)
            raise

    def _get_part(self, manifest: CheckpointManifest, part: CheckpointPart) -> bytes:
        where = f"checkpoint {manifest.seq} of job {manifest.jobId}, part {part.index}"
        try:
            body = bytes(self._s3.get_object(Bucket=self._bucket, Key=part.key)["Body"].read())
        except self._s3.exceptions.NoSuchKey:
            raise CheckpointCorrupt(f"{where} is missing") from None
        if len(body) != part.size:
            raise CheckpointCorrupt(f"{where} is {len(body)} bytes, the manifest says {part.size}")
        if hashlib.sha256(body).hexdigest() != part.sha256:
            raise CheckpointCorrupt(f"{where} does not match its sha256")
        try:
            raw = codec_named(part.compression).decompress(body)
        except Exception as error:  # noqa: BLE001 - whatever the codec says, the part is bad
            raise CheckpointCorrupt(f"{where} does not decompress ({part.compression}): "
                                    f"{error}") from None
        if part.rawSize is not None and len(raw) != part.rawSize:
            raise CheckpointCorrupt(f"{where} holds {len(raw)} bytes, the manifest says "
                                    f"{part.rawSize}")
        return raw

    # ---- housekeeping ----------------------------------------------------------------------

    def prune(self, job_id: str, keep: CheckpointManifest) -> int:
        """Delete every checkpoint of the job older than `keep`, committed or not, but the
        pre-dump it names; the count."""
        removed = 0
        for seq in self._sequences(job_id):
            if seq >= keep.seq or seq == keep.previousSeq:
                continue
            keys = self._keys(checkpoint_prefix(job_id, seq))
            for start in range(0, len(keys), 1000):
                self._s3.delete_objects(Bucket=self._bucket, Delete={
                    "Objects": [{"Key": k} for k in keys[start:start + 1000]], "Quiet": True})
            removed += 1
        return removed

    def _sequences(self, job_id: str) -> list[int]:
        prefixes: list[int] = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=job_prefix(job_id), Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"].rstrip("/").rsplit("/", 1)[-1]
                if name.isascii() and name.isdigit():
                    prefixes.append(int(name))
        return prefixes

    def _keys(self, prefix: str) -> list[str]:
        paginator = self._s3.get_paginator("list_objects_v2")
        return [obj["Key"] for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix)
                for obj in page.get("Contents", [])]
